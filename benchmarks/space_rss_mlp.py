"""Search space for the memory benchmark: ``search_spaces/mlp.py`` unchanged, plus the resident
memory of the process after every trial's fit, appended to ``benchmarks.common.RSS_LOG`` (MiB)."""

from benchmarks import common
from search_spaces.mlp import build_model  # noqa: F401  (the space's builder, unchanged)


def fit(hp, model, x, y=None, **kwargs):
    before = common.rss_mb()
    history = model.fit(x, y, **kwargs)
    common.RSS_LOG.append({"before_fit_mb": round(before, 1), "after_fit_mb": round(common.rss_mb(), 1)})
    return history
