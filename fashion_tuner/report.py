"""Test-set metrics, figures and the HTML / Markdown report: pure functions on numpy arrays.

Nothing here imports Keras. Inputs are integer labels ``y_true`` ``(N,)`` (0..C-1),
predicted probabilities ``probs`` ``(N, C)`` (rows sum to 1), images ``(N, 28, 28[, 1])``
in 0-255 pixel units, and Keras ``History.history`` dicts (metric name -> list per epoch).
Figures are written as PNG files with matplotlib's Agg backend.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
CI_LEVEL = 0.95
TOP_CONFUSED = 3
MISCLASSIFIED_GRID = (5, 5)
LEADERBOARD_ROWS = 10
MAX_TABLE_COLUMNS = 12  # wider tables are shown sideways in the report (one row per column)
FIG_DPI = 100
REPORT_CSV_COLUMNS = ["class", "precision", "recall", "f1-score", "support"]
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


# ----------------------------------------------------------------------------- metrics

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


def bootstrap_accuracy_ci(y_true: np.ndarray, y_pred: np.ndarray, n_resamples: int = BOOTSTRAP_RESAMPLES,
                          seed: int = BOOTSTRAP_SEED, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of accuracy (resampling test images with replacement)."""
    correct = (np.asarray(y_true) == np.asarray(y_pred)).astype(np.float64)
    n = correct.size
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    accs = np.empty(n_resamples)
    chunk = max(1, 4_000_000 // n)  # bound memory to ~32 MB of indices
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        accs[start:stop] = correct[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(accs, [tail, 100.0 - tail])
    return (float(lo), float(hi))


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

    Returns a dict with ``test_accuracy``, ``test_accuracy_ci95`` ([lo, hi]), ``macro_f1``,
    ``test_loss`` (cross-entropy of the probabilities, nats), ``n_test``, ``most_confused``
    and ``confusion_matrix`` (nested lists, rows = true class).
    """
    from sklearn.metrics import f1_score

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(probs).argmax(axis=1)
    cm = confusion(y_true, y_pred, len(class_names))
    lo, hi = bootstrap_accuracy_ci(y_true, y_pred)
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


def leaderboard_rows(trials: list[dict], direction: str = "max", top: int = LEADERBOARD_ROWS) -> list[dict]:
    """Top completed trials (Keras Tuner ``trial.json`` dicts), best first, flattened for a table.

    Each row: ``rank``, ``trial_id``, ``score``, ``best_epoch`` (1-based), for Hyperband ``epochs`` (the
    trial's budget) and ``continues`` (the trial whose checkpoint it resumed), then the hyperparameter
    values that differ between the rows (all of them for a single row; ``tuner/*`` bookkeeping dropped).
    """
    from fashion_tuner import tables

    from fashion_tuner.runs import ranked_trials

    done = ranked_trials(trials, direction)
    rows, names = [], []
    for rank, t in enumerate(done[:top], start=1):
        values = (t.get("hyperparameters") or {}).get("values", {})
        step = t.get("best_step")
        row = {"rank": rank, "trial_id": t.get("trial_id"), "score": t["score"],
               "best_epoch": tables.best_epoch(step, values) if isinstance(step, int) else None}
        if "tuner/epochs" in values:
            row["epochs"] = values["tuner/epochs"]
            row["continues"] = values.get(tables.PARENT_KEY) or tables.MISSING
        hps = tables.hp_values(values)
        names += [n for n in hps if n not in names]
        rows.append((row, hps))
    keep = tables.differing([h for _, h in rows], names) if len(rows) > 1 else names
    return [{**row, **{n: tables.fmt(h.get(n)) for n in keep}} for row, h in rows]


# ----------------------------------------------------------------------------- figures

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
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=FIG_DPI)
    plt.close(fig)
    return Path(path)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Diagonal over row sums: ``(C,)`` fraction of each true class predicted correctly."""
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1)
    return np.divide(np.diag(cm), rows, out=np.zeros_like(rows), where=rows > 0)


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


def confident_mistakes(y_true: np.ndarray, probs: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to ``n`` misclassified images, highest predicted probability first."""
    y_pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    conf = probs[wrong, y_pred[wrong]]
    return wrong[np.argsort(-conf, kind="stable")][:n]


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


# ----------------------------------------------------------------------------- HTML / Markdown

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1150px;color:#222}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:0.5em 0 1em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
pre{background:#f7f7f7;padding:0.8em;overflow-x:auto;font-size:0.8em}
img{max-width:100%;border:1px solid #eee}figure{margin:1em 0}figcaption{color:#555;font-size:0.9em}
.scroll{overflow-x:auto}.note{color:#8a5a00}
"""


def fmt_number(v) -> str:
    """A setting as a person writes it: ints as ints, other numbers to 4 significant digits."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return str(v)
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.4g}"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3g}"
    if isinstance(v, (list, tuple)) and v and all(isinstance(e, float) for e in v):
        return "[" + ", ".join(_fmt(e) for e in v) + "]"
    return str(v)


def html_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def sideways(rows: list[dict], key: str = "trial_id", max_columns: int = MAX_TABLE_COLUMNS) -> list[dict]:
    """``rows`` unchanged when they have at most ``max_columns`` columns, else turned sideways: one row per
    column, one column per original row headed by its ``key`` (a page then never scrolls sideways)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    if len(columns) <= max_columns:
        return rows
    return [{"": c, **{f"trial {r.get(key)}": r.get(c, "") for r in rows}} for c in columns if c != key]


def md_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "_none_\n"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(esc(_fmt(r.get(c, ""))) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


SUMMARY_KEYS = ["test_accuracy", "test_accuracy_ci95", "macro_f1", "test_loss", "n_test", "epochs_trained",
                "best_epoch", "wall_s"]
MODEL_FACTS = {"parameters": "parameters", "size_mb": "size on disk (MB, .keras)",
               "ms_per_image_batched": "inference, ms per image (batches of 1024)",
               "ms_per_image_single": "inference, ms for one image alone"}
LR_FACTS = {"optimizer": "optimizer", "learning_rate_schedule": "learning-rate schedule",
            "final_learning_rate": "learning rate at the end"}


def summary_row(name: str, metrics: dict) -> dict:
    """One row of the test-results table: the metrics, training time in seconds (one decimal), and the
    model's size and speed when measured."""
    row = {"model": name}
    for k in SUMMARY_KEYS:
        if k in metrics:
            row[k] = f"{metrics[k]:.1f}" if k == "wall_s" else metrics[k]
    facts = metrics.get("model") or {}
    if facts:
        row["parameters"] = f"{facts['parameters']:,}"
    return row


def model_rows(metrics: dict) -> list[dict]:
    """``[{"": label, "value": text}]``: the model's size and speed and the learning rate it trained with."""
    rows = []
    facts = metrics.get("model") or {}
    for key, label in MODEL_FACTS.items():
        if key in facts:
            rows.append({"": label, "value": f"{facts[key]:,}" if key == "parameters" else fmt_number(facts[key])})
    for key, label in LR_FACTS.items():
        if key in metrics:
            rows.append({"": label, "value": fmt_number(metrics[key])})
    return rows


def _read_table(path: Path) -> list[dict]:
    import pandas as pd

    return pd.read_csv(path).to_dict("records") if Path(path).is_file() else []


def write_report_pages(report_dir: Path, *, title: str, run: dict, leaderboard: list[dict],
                       summary: list[dict], sections: list[dict], notes: list[str] | None = None,
                       review_link: str | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained, figures base64-embedded) and ``report.md`` in ``report_dir``.

    ``summary``: rows for the comparison table (see :func:`summary_row`). ``sections``: one per
    model, dicts with ``name``, ``subdir`` (relative to ``report_dir``, "" for the top),
    ``hyperparameters`` (dict) and ``metrics`` (dict); its figures and classification report are
    read from that folder. ``run``: the run manifest (run.json) shown verbatim. ``review_link``: a path,
    relative to ``report_dir``, of the search's review page, linked under the leaderboard.
    """
    report_dir = Path(report_dir)
    manifest = json.dumps({k: v for k, v in run.items() if k != "run_dir"}, indent=2, default=str)
    h = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
         f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    md = [f"# {title}\n"]
    for note in notes or []:
        h.append(f"<p class='note'>{html.escape(note)}</p>")
        md.append(f"> {note}\n")
    h += ["<h2>Test results</h2>", html_table(summary)]
    md += ["## Test results\n", md_table(summary)]
    h += ["<h2>Search leaderboard</h2>", html_table(sideways(leaderboard))]
    md += ["## Search leaderboard\n", md_table(sideways(leaderboard))]
    if review_link:
        what = "every trial, plots of the search, which hyperparameters mattered"
        h.append(f"<p>The whole search: <a href='{html.escape(review_link)}'>review page</a> ({what}).</p>")
        md.append(f"The whole search: [review page]({review_link}) ({what}).\n")
    for sec in sections:
        sub = Path(report_dir) / sec.get("subdir", "")
        rel = f"{sec['subdir']}/" if sec.get("subdir") else ""
        name = sec["name"]
        h.append(f"<h2>{html.escape(name)}</h2>")
        md.append(f"## {name}\n")
        m = sec.get("metrics", {})
        confused = m.get("most_confused", [])
        facts = model_rows(m)
        if facts:
            h += ["<h3>Model</h3>", html_table(facts)]
            md += ["### Model\n", md_table(facts)]
        if sec.get("hyperparameters") is not None:
            hp_rows = [{"hyperparameter": k, "value": fmt_number(v)} for k, v in sec["hyperparameters"].items()
                       if not str(k).startswith("tuner/")]  # Keras Tuner's Hyperband bookkeeping
            h += ["<h3>Hyperparameters</h3>", html_table(hp_rows)]
            md += ["### Hyperparameters\n", md_table(hp_rows)]
        if confused:
            cols = ["true", "predicted", "count", "fraction_of_true"]
            h += ["<h3>Most confused class pairs</h3>", html_table(confused, cols)]
            md += ["### Most confused class pairs\n", md_table(confused, cols)]
        for fname, caption in FIGURES.items():
            if (sub / fname).is_file():
                h.append(f"<figure><img src='{png_data_uri(sub / fname)}' alt='{html.escape(fname)}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
                md.append(f"![{caption}]({rel}{fname})\n")
        table = _read_table(sub / "classification_report.csv")
        if table:
            h += ["<h3>Classification report</h3>", html_table(table, REPORT_CSV_COLUMNS)]
            md += ["### Classification report\n", md_table(table, REPORT_CSV_COLUMNS)]
    h += ["<h2>Run manifest (run.json)</h2>", f"<pre>{html.escape(manifest)}</pre>", "</body></html>"]
    md += ["## Run manifest (run.json)\n", "```json\n" + manifest + "\n```\n"]
    html_path, md_path = report_dir / "report.html", report_dir / "report.md"
    html_path.write_text("\n".join(h), encoding="utf-8")
    md_path.write_text("\n".join(md), encoding="utf-8")
    return html_path, md_path
