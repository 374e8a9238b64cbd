"""Time ``review`` on a 100-trial RandomSearch directory written by plain Keras Tuner.

    python benchmarks/review_100.py [DIR]

DIR (default: ``$TMPDIR/fashion_tuner_review_100``) keeps the Keras Tuner project between runs: it is built
once (about a minute on 2 cores: 100 trials of a small Dense model, 1 epoch on 300 random samples) and
reused when it already holds 100 finished trials. Prints one JSON line
``{"trials": 100, "review_s": <median of 3>, "runs_s": [...], "build_s": ...}``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_TRIALS = 100
N_SAMPLES = 300
N_FEATURES = 16
REPEATS = 3
PROJECT = "random100"


def build_project(root: Path) -> float:
    """Run a 100-trial RandomSearch into ``root/random100``; returns seconds spent (0 when reused)."""
    project = root / PROJECT
    done = [p for p in project.glob("trial_*/trial.json") if '"COMPLETED"' in p.read_text()]
    if len(done) >= N_TRIALS:
        return 0.0
    start = time.perf_counter()
    import keras
    import keras_tuner as kt
    import numpy as np

    def build(hp):
        model = keras.Sequential([keras.Input((N_FEATURES,))])
        for i in range(hp.Int("layers", 1, 3)):
            model.add(keras.layers.Dense(hp.Int(f"units_{i}", 8, 64, step=8),
                                         activation=hp.Choice("act", ["relu", "tanh", "gelu"])))
        model.add(keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5, step=0.1)))
        model.add(keras.layers.Dense(2, activation="softmax"))
        model.compile(optimizer=keras.optimizers.Adam(hp.Float("lr", 1e-4, 1e-1, sampling="log")),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    rng = np.random.default_rng(0)
    x = rng.random((N_SAMPLES, N_FEATURES)).astype("float32")
    y = (x[:, 0] + 0.3 * rng.random(N_SAMPLES) > 0.65).astype("int64")
    tuner = kt.RandomSearch(build, objective="val_accuracy", max_trials=N_TRIALS, seed=1,
                            directory=str(root), project_name=PROJECT, overwrite=True)
    tuner.search(x, y, epochs=1, validation_split=0.3, batch_size=64, verbose=0)
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(tempfile.gettempdir()) / "fashion_tuner_review_100"
    root.mkdir(parents=True, exist_ok=True)
    build_s = build_project(root)
    from fashion_tuner.review import review_command

    times = []
    for i in range(REPEATS):
        out = root / f"review-{i}"
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            review_command([str(root / PROJECT)], out=str(out))
        times.append(time.perf_counter() - start)
    n = len(list((root / PROJECT).glob("trial_*/trial.json")))
    print(json.dumps({"trials": n, "review_s": round(statistics.median(times), 3),
                      "runs_s": [round(t, 3) for t in times], "build_s": round(build_s, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
