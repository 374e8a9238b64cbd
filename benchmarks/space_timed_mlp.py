"""Search space for the overhead benchmark: mlp's default model, every fit timed.

    FASHION_TUNER_BENCH_TIMING=timing.json python main.py search --space benchmarks/space_timed_mlp.py ...

Every trial builds the same model (``search_spaces/mlp.py`` at its default hyperparameters);
the only hyperparameter, ``repeat``, just makes trials distinct. ``fit`` times the whole
``model.fit`` call and each epoch, and rewrites the timing file after every fit:
``{"imported_at": unix s, "fits": [{"fit_s", "epoch_s": [...]}], "exit_at": unix s, "earlier_s": s}``
(``exit_at`` when the process ends). A search runs in several processes (``--trials-per-process``),
one after another: each starts from the file the last one left, keeping its fits and adding its
import-to-exit seconds to ``earlier_s`` (the last process, which may only find the budget spent,
used to overwrite the file with no fits). ``benchmarks/overhead.py`` times a bare ``model.fit``
of the same model, batch size and data.
"""

import atexit
import json
import os
import time

import keras
import keras_tuner

from search_spaces import mlp

TIMING_FILE = os.environ.get("FASHION_TUNER_BENCH_TIMING")


def _earlier_processes() -> tuple[list[dict], float]:
    """(fits, seconds from import to exit) of the search's earlier processes, from the timing file."""
    try:
        with open(TIMING_FILE) as fh:
            prev = json.load(fh)
    except (TypeError, OSError, ValueError):
        return [], 0.0
    ran = (prev["exit_at"] - prev["imported_at"]) if prev.get("exit_at") else 0.0
    return list(prev.get("fits", [])), float(prev.get("earlier_s", 0.0)) + ran


_STATE = {"imported_at": time.time(), "exit_at": None}
_STATE["fits"], _STATE["earlier_s"] = _earlier_processes()


def _write() -> None:
    if TIMING_FILE:
        tmp = f"{TIMING_FILE}.tmp"
        with open(tmp, "w") as fh:
            json.dump(_STATE, fh)
        os.replace(tmp, TIMING_FILE)


@atexit.register
def _at_exit() -> None:
    _STATE["exit_at"] = time.time()
    _write()


class EpochTimer(keras.callbacks.Callback):
    """Seconds per epoch (training and validation), in ``self.epoch_s``."""

    def __init__(self):
        super().__init__()
        self.epoch_s, self._t = [], None

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_s.append(time.perf_counter() - self._t)


def build_model(hp) -> keras.Model:
    hp.Int("repeat", 0, 1_000_000)
    return mlp.build_model(keras_tuner.HyperParameters())  # mlp's defaults: 2 x 256 relu, dropout 0.2, Adam


def fit(hp, model, x, y=None, **kwargs):
    timer = EpochTimer()
    kwargs["callbacks"] = [timer] + list(kwargs.get("callbacks") or [])
    started = time.perf_counter()
    history = model.fit(x, y, **kwargs)
    _STATE["fits"].append({"fit_s": time.perf_counter() - started, "epoch_s": timer.epoch_s})
    _write()
    return history
