"""Test-set metrics on plain arrays: accuracy with its confidence interval, F1, loss, confusion.

Inputs are integer labels ``y_true`` ``(N,)`` (0..C-1) and predicted probabilities ``probs`` ``(N, C)``
(rows sum to 1). The accuracy's interval is :mod:`fashion_tuner.stats`' one method (Wilson).
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np

from fashion_tuner import stats

log = logging.getLogger(__name__)
TOP_CONFUSED = 3
REPORT_CSV_COLUMNS = ["class", "precision", "recall", "f1-score", "support"]
CI_HEADER = f"{round(stats.CI_LEVEL * 100)}% CI ({stats.CI_METHOD})"  # how tables name test_accuracy_ci95


def array_sha256(a: np.ndarray) -> str:
    """Digest of an array's dtype, shape and bytes (to prove two runs used the same images/indices)."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` int64 counts; row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def accuracy_ci(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """The 95 % Wilson interval (:func:`fashion_tuner.stats.wilson_interval`) of the accuracy of ``y_pred``
    against ``y_true``, both ``(N,)``; ``(nan, nan)`` when N is 0."""
    correct = int((np.asarray(y_true) == np.asarray(y_pred)).sum())
    n = int(np.asarray(y_true).size)
    return stats.wilson_interval(correct, n) if n else (float("nan"), float("nan"))


def cross_entropy(y_true: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean sparse categorical cross-entropy (nats) of predicted probabilities ``(N, C)``."""
    p = np.clip(probs[np.arange(len(y_true)), np.asarray(y_true, dtype=np.int64)], eps, 1.0)
    return float(-np.log(p).mean())


def most_confused_pairs(cm: np.ndarray, class_names: list[str], k: int = TOP_CONFUSED) -> list[dict]:
    """The ``k`` largest off-diagonal cells: true class mistaken for predicted class, with counts."""
    off = cm.astype(np.int64).copy()
    np.fill_diagonal(off, -1)
    order = np.argsort(-off, axis=None, kind="stable")[:k]
    pairs = []
    for flat in order:
        i, j = np.unravel_index(flat, cm.shape)
        if off[i, j] <= 0:
            break
        row = cm[i].sum()
        pairs.append({"true": class_names[i], "predicted": class_names[j], "true_index": int(i),
                      "predicted_index": int(j), "count": int(cm[i, j]),
                      "fraction_of_true": float(cm[i, j] / row) if row else 0.0})
    return pairs


def classification_table(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]):
    """scikit-learn's report as ``(text, DataFrame)``.

    The DataFrame has columns :data:`REPORT_CSV_COLUMNS`, one row per class followed by
    ``macro avg`` and ``weighted avg``.
    """
    import pandas as pd
    from sklearn.metrics import classification_report

    labels = list(range(len(class_names)))
    kwargs = dict(labels=labels, target_names=class_names, zero_division=0)
    text = classification_report(y_true, y_pred, digits=4, **kwargs)
    d = classification_report(y_true, y_pred, output_dict=True, **kwargs)
    rows = []
    for name in [*class_names, "macro avg", "weighted avg"]:
        r = d[name]
        rows.append({"class": name, "precision": r["precision"], "recall": r["recall"],
                     "f1-score": r["f1-score"], "support": int(r["support"])})
    return text, pd.DataFrame(rows, columns=REPORT_CSV_COLUMNS)


def evaluate_probs(y_true: np.ndarray, probs: np.ndarray, class_names: list[str]) -> dict:
    """Everything computed from test probabilities ``(N, C)``: accuracy, CI, F1, loss, confusion.

    Returns a dict with ``test_accuracy``, ``test_accuracy_ci95`` ([lo, hi], Wilson 95 %), ``macro_f1``,
    ``test_loss`` (cross-entropy of the probabilities, nats), ``n_test``, ``most_confused``
    and ``confusion_matrix`` (nested lists, rows = true class).
    """
    from sklearn.metrics import f1_score

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(probs).argmax(axis=1)
    cm = confusion(y_true, y_pred, len(class_names))
    lo, hi = accuracy_ci(y_true, y_pred)
    return {
        "test_accuracy": float(np.trace(cm) / cm.sum()) if cm.sum() else float("nan"),
        "test_accuracy_ci95": [lo, hi],
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(range(len(class_names))), average="macro",
                                   zero_division=0)),
        "test_loss": cross_entropy(y_true, probs),
        "n_test": int(y_true.size),
        "most_confused": most_confused_pairs(cm, class_names),
        "confusion_matrix": cm.tolist(),
    }


def best_epoch(history: dict, monitor: str = "val_accuracy", mode: str = "max") -> int:
    """0-based epoch whose weights EarlyStopping(restore_best_weights) keeps; last epoch without ``monitor``."""
    values = history.get(monitor)
    if not values:
        return max(0, len(next(iter(history.values()), [])) - 1)
    arr = np.asarray(values, dtype=np.float64)
    arr = np.where(np.isnan(arr), -np.inf if mode == "max" else np.inf, arr)
    return int(np.argmax(arr) if mode == "max" else np.argmin(arr))


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Diagonal over row sums: ``(C,)`` fraction of each true class predicted correctly."""
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1)
    return np.divide(np.diag(cm), rows, out=np.zeros_like(rows), where=rows > 0)


def confident_mistakes(y_true: np.ndarray, probs: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to ``n`` misclassified images, highest predicted probability first."""
    y_pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    conf = probs[wrong, y_pred[wrong]]
    return wrong[np.argsort(-conf, kind="stable")][:n]


