"""Search space for the memory benchmark: ``search_spaces/mlp.py`` unchanged, plus the resident
memory of the process after every trial's fit, appended as a JSON line ``{"pid", "before_fit_mb",
"after_fit_mb"}`` to the file named by ``$FASHION_TUNER_RSS_LOG`` (MiB; nothing when unset)."""

import json
import os

from benchmarks import common
from search_spaces.mlp import build_model  # noqa: F401  (the space's builder, unchanged)

LOG_ENV = "FASHION_TUNER_RSS_LOG"


def fit(hp, model, x, y=None, **kwargs):
    before = common.rss_mb()
    history = model.fit(x, y, **kwargs)
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "before_fit_mb": round(before, 1),
                                "after_fit_mb": round(common.rss_mb(), 1)}) + "\n")
    return history
