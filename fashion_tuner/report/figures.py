"""The report's figures of one model (or ensemble) on the held-out test split, as PNG files.

Inputs: integer labels ``(N,)``, probabilities ``(N, C)``, images ``(N, 28, 28[, 1])`` in 0-255 pixel
units, Keras ``History.history`` dicts (metric name -> list per epoch). matplotlib's Agg backend.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fashion_tuner.report.metrics import classification_table, confident_mistakes, evaluate_probs, per_class_accuracy

log = logging.getLogger(__name__)
MISCLASSIFIED_GRID = (5, 5)
FIG_DPI = 100
# Figures in the order the report shows them: file name -> caption.
FIGURES = {
    "learning_curves.png": "Learning curves (train vs validation; dashed line: epoch whose weights were kept)",
    "confusion_matrix.png": "Confusion matrix on the held-out test split (counts and row-normalised)",
    "per_class_accuracy.png": "Per-class accuracy (recall) on the held-out test split",
    "misclassified.png": "The most confident mistakes (true / predicted label, predicted probability)",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt



def _as_images(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x[..., 0] if x.ndim == 4 and x.shape[-1] == 1 else x


def plot_learning_curves(history: dict, path: Path, best: int | None = None, title: str = "") -> Path:
    """Two panels (loss, accuracy), train vs validation per epoch (1-based), best epoch marked."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    n = len(history.get("loss", []))
    epochs = np.arange(1, n + 1)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, label, style in ((metric, "train", "-o"), (f"val_{metric}", "validation", "-s")):
            if history.get(key):
                ax.plot(epochs[: len(history[key])], history[key], style, label=label, markersize=3)
        if best is not None and n:
            ax.axvline(best + 1, color="grey", linestyle="--", label=f"best epoch ({best + 1})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(plt, fig, path, title)


def _save(plt, fig, path: Path, title: str = "") -> Path:
    """Title, lay out, write the PNG and free the figure."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=FIG_DPI)
    plt.close(fig)
    return Path(path)


def plot_confusion_matrix(cm: np.ndarray, class_names: list[str], path: Path, title: str = "") -> Path:
    """Two seaborn heatmaps: counts and row-normalised fractions (each row sums to 1)."""
    plt = _plt()
    import seaborn as sns

    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    fig, axes = plt.subplots(1, 2, figsize=(18, 7.5))
    sns.heatmap(cm, annot=True, fmt="d", cmap="Blues", xticklabels=class_names, yticklabels=class_names,
                ax=axes[0], cbar=False)
    sns.heatmap(norm, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, xticklabels=class_names,
                yticklabels=class_names, ax=axes[1], cbar=True)
    for ax, sub in zip(axes, ("counts", "row-normalised (recall per class)")):
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(sub)
        ax.tick_params(axis="x", labelrotation=45)
        ax.tick_params(axis="y", labelrotation=0)
    return _save(plt, fig, path, title)


def plot_per_class_accuracy(cms: dict[str, np.ndarray], class_names: list[str], path: Path,
                            title: str = "") -> Path:
    """Grouped horizontal bars, one group per class, one bar per model (``name -> confusion matrix``)."""
    plt = _plt()
    names = list(cms)
    fig, ax = plt.subplots(figsize=(9, min(0.35 + 0.12 * len(names), 1.0) * len(class_names) + 1.5))
    height = 0.8 / len(names)
    ypos = np.arange(len(class_names))
    for i, name in enumerate(names):
        acc = per_class_accuracy(cms[name])
        bars = ax.barh(ypos + i * height - 0.4 + height / 2, acc, height=height, label=name)
        if len(names) == 1:
            ax.bar_label(bars, labels=[f"{a:.3f}" for a in acc], padding=3, fontsize=8)
    ax.set_yticks(ypos, class_names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("accuracy (recall)")
    ax.grid(axis="x", alpha=0.3)
    if len(names) > 1:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=min(len(names), 4), fontsize=8)
    ax.set_title(title or "per-class accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=FIG_DPI)
    plt.close(fig)
    return Path(path)


def plot_misclassified(x: np.ndarray, y_true: np.ndarray, probs: np.ndarray, class_names: list[str],
                       path: Path, grid: tuple[int, int] = MISCLASSIFIED_GRID, title: str = "") -> Path:
    """Grid of the most confident mistakes, each titled with true and predicted label."""
    plt = _plt()
    images = _as_images(x)
    idx = confident_mistakes(np.asarray(y_true), np.asarray(probs), grid[0] * grid[1])
    fig, axes = plt.subplots(*grid, figsize=(2.0 * grid[1], 2.3 * grid[0]))
    y_pred = probs.argmax(axis=1)
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, i in zip(np.ravel(axes), idx):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"true: {class_names[y_true[i]]}\npred: {class_names[y_pred[i]]} "
                     f"({probs[i, y_pred[i]]:.2f})", fontsize=8)
    if len(idx) == 0:
        fig.text(0.5, 0.5, "no misclassified test images", ha="center", va="center")
    fig.suptitle(title or "most confident mistakes")
    fig.tight_layout()
    fig.savefig(path, dpi=FIG_DPI)
    plt.close(fig)
    return Path(path)


def write_model_figures(out_dir: Path, *, history: dict | None, best: int | None, x_test: np.ndarray,
                        y_test: np.ndarray, probs: np.ndarray, class_names: list[str], title: str = "",
                        compare: dict[str, np.ndarray] | None = None) -> dict:
    """Write the figures and classification report of one model (or ensemble) into ``out_dir``.

    ``compare`` optionally adds other models' confusion matrices to the per-class bars.
    Returns :func:`evaluate_probs` output.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = evaluate_probs(y_test, probs, class_names)
    cm = np.asarray(metrics["confusion_matrix"])
    if history:
        plot_learning_curves(history, out_dir / "learning_curves.png", best, title)
    plot_confusion_matrix(cm, class_names, out_dir / "confusion_matrix.png", title)
    plot_per_class_accuracy({title or "model": cm, **(compare or {})}, class_names,
                            out_dir / "per_class_accuracy.png", title)
    plot_misclassified(x_test, np.asarray(y_test), np.asarray(probs), class_names, out_dir / "misclassified.png",
                       title=f"{title}: most confident mistakes" if title else "")
    text, table = classification_table(y_test, np.asarray(probs).argmax(axis=1), class_names)
    (out_dir / "classification_report.txt").write_text(text)
    table.to_csv(out_dir / "classification_report.csv", index=False)
    return metrics


