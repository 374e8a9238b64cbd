"""The report's pages: ``report.html`` (self-contained, figures base64-embedded) and ``report.md``, and
the rows of their tables (test results, search leaderboard, model facts)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from fashion_tuner import html_page, tables
from fashion_tuner.report.figures import FIGURES
from fashion_tuner.report.metrics import CI_HEADER, REPORT_CSV_COLUMNS
from fashion_tuner.runs import ranked_trials

log = logging.getLogger(__name__)
LEADERBOARD_ROWS = 10
MAX_TABLE_COLUMNS = 12  # wider tables are shown sideways in the report (one row per column)
SUMMARY_KEYS = ["test_accuracy", "test_accuracy_ci95", "macro_f1", "test_loss", "n_test", "epochs_trained",
                "best_epoch", "wall_s", "tta"]
# a column named by its method; test-time augmentation by its flag
SUMMARY_HEADERS = {"test_accuracy_ci95": f"test_accuracy {CI_HEADER}", "tta": "--tta"}
MODEL_FACTS = {"parameters": "parameters", "size_mb": "size on disk (MB, .keras)",
               "ms_per_image_batched": "inference, ms per image (batches of 1024)",
               "ms_per_image_single": "inference, ms for one image alone (with its mirror under --tta flip)"}
LR_FACTS = {"optimizer": "optimizer", "learning_rate_schedule": "learning-rate schedule",
            "final_learning_rate": "learning rate at the end"}
CONFUSED_COLUMNS = ["true", "predicted", "count", "fraction_of_true"]


# ----------------------------------------------------------------------------- rows

def leaderboard_rows(trials: list[dict], direction: str = "max", top: int = LEADERBOARD_ROWS) -> list[dict]:
    """Top completed trials (Keras Tuner ``trial.json`` dicts), best first, flattened for a table.

    Each row: ``rank``, ``trial_id``, ``score``, ``best_epoch`` (1-based), for Hyperband ``epoch_budget`` (the
    trial's budget) and ``continues`` (the trial whose checkpoint it resumed), then the hyperparameter
    values that differ between the rows (all of them for a single row; ``tuner/*`` bookkeeping dropped).
    """
    rows, names = [], []
    for rank, t in enumerate(ranked_trials(trials, direction)[:top], start=1):
        values = (t.get("hyperparameters") or {}).get("values", {})
        step = t.get("best_step")
        row = {"rank": rank, "trial_id": t.get("trial_id"), "score": t["score"],
               "best_epoch": tables.best_epoch(step, values) if isinstance(step, int) else None}
        if "tuner/epochs" in values:
            row["epoch_budget"] = values["tuner/epochs"]
            row["continues"] = values.get(tables.PARENT_KEY) or tables.MISSING
        hps = tables.hp_values(values)
        names += [n for n in hps if n not in names]
        rows.append((row, hps))
    keep = tables.differing([h for _, h in rows], names) if len(rows) > 1 else names
    return [{**row, **{n: tables.fmt(h.get(n)) for n in keep}} for row, h in rows]


def fmt_number(v) -> str:
    """A setting as a person writes it: ints as ints, other numbers to 4 significant digits."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return str(v)
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.4g}"


def _fmt(v) -> str:
    """A table cell: floats to 4 decimals (3 significant digits when tiny), lists of floats likewise."""
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3g}"
    if isinstance(v, (list, tuple)) and v and all(isinstance(e, float) for e in v):
        return "[" + ", ".join(_fmt(e) for e in v) + "]"
    return str(v)


def summary_row(name: str, metrics: dict) -> dict:
    """One row of the test-results table: the metrics (the interval under a header naming its method),
    training time in seconds (one decimal), and the model's size and speed when measured."""
    row = {"model": name}
    for k in SUMMARY_KEYS:
        if k in metrics:
            row[SUMMARY_HEADERS.get(k, k)] = f"{metrics[k]:.1f}" if k == "wall_s" else metrics[k]
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


def sideways(rows: list[dict], key: str = "trial_id", max_columns: int = MAX_TABLE_COLUMNS) -> list[dict]:
    """``rows`` unchanged when they have at most ``max_columns`` columns, else turned sideways: one row per
    column, one column per original row headed by its ``key`` (a page then never scrolls sideways)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    if len(columns) <= max_columns:
        return rows
    return [{"": c, **{f"trial {r.get(key)}": r.get(c, "") for r in rows}} for c in columns if c != key]


# ----------------------------------------------------------------------------- pages

def html_table(rows: list[dict], columns: list[str] | None = None) -> str:
    return html_page.table(rows, columns, fmt=_fmt)


def md_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "_none_\n"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(esc(_fmt(r.get(c, ""))) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _read_table(path: Path) -> list[dict]:
    import pandas as pd

    return pd.read_csv(path).to_dict("records") if Path(path).is_file() else []


class _Pages:
    """The HTML and Markdown pages written side by side: every part goes into both."""

    def __init__(self):
        self.html: list[str] = []
        self.md: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.html.append(f"<h{level}>{html_page.escape(text)}</h{level}>")
        self.md.append(f"{'#' * level} {text}\n")

    def table(self, title: str | None, rows: list[dict], columns: list[str] | None = None, level: int = 3) -> None:
        if title:
            self.heading(title, level)
        self.html.append(html_table(rows, columns))
        self.md.append(md_table(rows, columns))


def _model_section(pages: _Pages, report_dir: Path, sec: dict) -> None:
    """One model's part: its facts, hyperparameters, most confused pairs, figures, classification report."""
    sub = Path(report_dir) / sec.get("subdir", "")
    rel = f"{sec['subdir']}/" if sec.get("subdir") else ""
    pages.heading(sec["name"])
    m = sec.get("metrics", {})
    facts = model_rows(m)
    if facts:
        pages.table("Model", facts)
    if sec.get("hyperparameters") is not None:
        pages.table("Hyperparameters", [{"hyperparameter": k, "value": fmt_number(v)}
                                        for k, v in sec["hyperparameters"].items()
                                        if not str(k).startswith("tuner/")])  # Keras Tuner's Hyperband bookkeeping
    if m.get("most_confused"):
        pages.table("Most confused class pairs", m["most_confused"], CONFUSED_COLUMNS)
    for fname, caption in FIGURES.items():
        if (sub / fname).is_file():
            pages.html.append(html_page.figure(sub / fname, fname, caption))
            pages.md.append(f"![{caption}]({rel}{fname})\n")
    table = _read_table(sub / "classification_report.csv")
    if table:
        pages.table("Classification report", table, REPORT_CSV_COLUMNS)


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
    pages = _Pages()
    pages.md.append(f"# {title}\n")
    for text in notes or []:
        pages.html.append(html_page.note(text))
        pages.md.append(f"> {text}\n")
    pages.table("Test results", summary, level=2)
    pages.table("Search leaderboard", sideways(leaderboard), level=2)
    if review_link:
        what = "every trial, plots of the search, which hyperparameters mattered"
        pages.html.append(f"<p>The whole search: <a href='{html_page.escape(review_link)}'>review page</a> ({what}).</p>")
        pages.md.append(f"The whole search: [review page]({review_link}) ({what}).\n")
    for sec in sections:
        _model_section(pages, report_dir, sec)
    pages.heading("Run manifest (run.json)")
    pages.html.append(f"<pre>{html_page.escape(manifest)}</pre>")
    pages.md.append("```json\n" + manifest + "\n```\n")
    html_path, md_path = report_dir / "report.html", report_dir / "report.md"
    html_path.write_text(html_page.page(title, pages.html), encoding="utf-8")
    md_path.write_text("\n".join(pages.md), encoding="utf-8")
    return html_path, md_path
