"""Test-time augmentation (``retrain-best --tta flip``): score each image and its left-right mirror and
average the two softmax outputs.

Garments in Fashion-MNIST are roughly left-right symmetric and the built-in spaces train with
horizontal flips by default, so the mirror is an image the model has learnt to read; the average
costs one more forward pass per image. The choice is recorded in the report's ``metrics.json``
(``"tta"``) and ``predict`` applies what is recorded beside the model, so a saved model scores new
images the way its test accuracy was measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TTA_CHOICES = ("none", "flip")
PREDICT_BATCH = 1024  # images per predict call (retrain-best scores the test split in these)


def predict(model, x: np.ndarray, tta: str = "none", batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Softmax outputs ``(N, C)`` float64 for images ``x`` ``(N, H, W, C)``; with ``tta="flip"`` the mean
    of those for ``x`` and for ``x`` mirrored along the width axis."""
    if tta not in TTA_CHOICES:
        raise ValueError(f"tta must be one of {TTA_CHOICES}, not {tta!r}")
    probs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    if tta == "flip":
        probs = (probs + np.asarray(model.predict(mirror(x), batch_size=batch_size, verbose=0), dtype=np.float64)) / 2
    return probs


def mirror(x: np.ndarray) -> np.ndarray:
    """Images ``(N, H, W, C)`` mirrored along the width axis."""
    return np.ascontiguousarray(np.asarray(x)[:, :, ::-1])


def views(x: np.ndarray, tta: str = "none") -> np.ndarray:
    """What the model reads to score images ``x`` ``(N, H, W, C)`` in one call: ``x``, or with ``"flip"``
    ``x`` followed by its mirror ``(2N, H, W, C)`` (what one image's latency under TTA pays for)."""
    return np.concatenate([np.asarray(x), mirror(x)]) if tta == "flip" else np.asarray(x)


def recorded(model_path: str | Path) -> str:
    """The TTA recorded in ``metrics.json`` beside a saved model (``"none"`` when absent or unreadable)."""
    path = Path(model_path).parent / "metrics.json"
    try:
        value = json.loads(path.read_text()).get("tta", "none")
    except (OSError, ValueError, AttributeError):
        return "none"
    return value if value in TTA_CHOICES else "none"
