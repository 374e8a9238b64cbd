"""Each trial's model size, recorded when the trial's model is built: ``trial_<id>/model.json``
``{"parameters": N, "trainable_parameters": M}`` (counts of weights). The review and
``retrain-best --max-params`` read it without Keras (:func:`parameters`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fashion_tuner import fsio

MODEL_FILE = "model.json"


def facts(model) -> dict:
    """``{"parameters", "trainable_parameters"}`` of a built Keras model (weights, not bytes)."""
    return {"parameters": int(model.count_params()),
            "trainable_parameters": int(sum(int(np.prod(v.shape)) for v in model.trainable_weights))}


def record(trial_dir: str | Path, model) -> None:
    """Write ``trial_dir/model.json`` for ``model`` (atomically)."""
    path = Path(trial_dir)
    path.mkdir(parents=True, exist_ok=True)
    fsio.atomic_write_text(path / MODEL_FILE, json.dumps(facts(model)) + "\n")


def read(trial_dir: str | Path) -> dict | None:
    """``model.json`` of a trial folder, or None when absent or unreadable."""
    try:
        data = json.loads((Path(trial_dir) / MODEL_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def parameters(trial_dir: str | Path) -> int | None:
    """The trial's parameter count, or None when it was not recorded (a run made before it was)."""
    value = (read(trial_dir) or {}).get("parameters")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
