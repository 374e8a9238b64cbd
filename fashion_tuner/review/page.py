"""The review's output folder: every figure (PNG) and ``review.html``, one self-contained page built with
:mod:`fashion_tuner.html_page` (the report's page helper)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fashion_tuner import algorithms, checkpoints, fsio, html_page
from fashion_tuner.review import importance, pareto, plots
from fashion_tuner.review.project import Project

log = logging.getLogger(__name__)
MAX_BOARD_COLUMNS = 12  # a wider leaderboard is shown sideways on the page (one row per column)
# The review's figures in page order: file stem -> heading.
FIGURES = {"history": "Optimisation history", "curves": "Learning curves of every trial",
           "timeline": "Trial timeline", "hp_scores": "Score against each hyperparameter",
           "parallel": "Parallel coordinates of the top trials", "hyperband": "Hyperband brackets",
           "importance": "Hyperparameter importance", "heatmap": "The two most important hyperparameters",
           "pareto": "Accuracy against model size: the Pareto front"}
PARETO_CSV = "pareto.csv"
OUTPUT_FILES = ["trials.csv", PARETO_CSV, "review.html"]  # besides the figures' PNGs


def review_figures(project: Project, out: Path, top: int, front: pd.DataFrame | None = None
                   ) -> tuple[dict[str, Path], dict[str, str], pd.DataFrame | None]:
    """Write the review's PNGs into ``out``: ``({name: png}, {name: note}, importance table or None)``.
    A figure with nothing to show is not written; its note says why. ``front``: the Pareto table
    (:func:`fashion_tuner.review.pareto.pareto_table`), None to skip that figure."""
    images, notes = {}, {}

    def add(name, result):
        png, note = result if isinstance(result, tuple) else (result, "")
        if png is not None:
            images[name] = png
        if note:
            notes[name] = note

    table, importance_note = importance.hp_importance(project)
    add("history", plots.plot_history([project], out / "history.png",
                                       f"{project.name}: optimisation history ({project.tuner})"))
    add("curves", plots.plot_curves(project, out / "curves.png"))
    add("timeline", plots.plot_timeline(project, out / "timeline.png"))
    add("hp_scores", plots.plot_hp_scores(project, out / "hp_scores.png"))
    add("parallel", plots.plot_parallel(project, out / "parallel.png", top, table))
    if algorithms.is_multi_fidelity(project.tuner) and "bracket" in project.trials:
        add("hyperband", plots.plot_hyperband(project, out / "hyperband.png"))
    add("importance", (plots.plot_importance(project, table, out / "importance.png") if table is not None else None,
                       importance_note))
    add("heatmap", plots.plot_heatmap(project, table, out / "heatmap.png") if table is not None else (None, ""))
    if front is not None and len(front):
        png, note = plots.plot_pareto(project, front, out / "pareto.png")
        add("pareto", (png, "; ".join(n for n in (pareto.missing_note(front), note) if n)))
    return images, notes, table


def _cell(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def board_rows(board: pd.DataFrame) -> list[dict]:
    """The leaderboard as table rows: one per trial, or sideways (one per column, ``#rank`` headers) when
    it has more than MAX_BOARD_COLUMNS columns."""
    if board.shape[1] <= MAX_BOARD_COLUMNS:
        return [{"rank": i, **r} for i, r in zip(board.index, board.to_dict("records"))]
    side = board.T.rename(columns=lambda rank: f"#{rank}")
    return [{"": c, **r} for c, r in zip(side.index, side.to_dict("records"))]


def review_html(project: Project, lines: list[str], board: pd.DataFrame, images: dict[str, Path],
                notes: dict[str, str], commands: dict[str, list[str]] | None = None) -> str:
    """The self-contained review page: summary, leaderboard, then each figure (or, for a figure with
    nothing to show, why not) with its note and the commands to run next (``commands``: by figure name)."""
    parts = ["<h2>Summary</h2>", f"<pre>{html_page.escape(chr(10).join(lines))}</pre>",
             f"<h2>Leaderboard (top {len(board)})</h2>"]
    if len(board):
        parts += ["<p>Hyperparameters that are the same in every row are left out; trials.csv has them all.</p>",
                  html_page.table(board_rows(board), fmt=_cell)]
    else:
        parts.append("<p>no completed trials</p>")
    for name, title in FIGURES.items():
        if name not in images and name not in notes:
            continue
        parts.append(f"<h2>{html_page.escape(title)}</h2>")
        if notes.get(name):
            parts.append(html_page.note(notes[name]))
        if name in images:
            parts.append(html_page.figure(images[name], name))
        if (commands or {}).get(name):
            parts.append(f"<p>Retrain a front point (the most accurate trial under its size):</p>"
                         f"<pre>{html_page.escape(chr(10).join(commands[name]))}</pre>")
    parts.append(f"<p><small>written {time.strftime('%Y-%m-%d %H:%M')} by fashion_tuner review; "
                 "the per-trial table is trials.csv, the size/score table pareto.csv</small></p>")
    return html_page.page(f"Keras Tuner review: {project.name}", parts)


@dataclass
class WrittenReview:
    """What :func:`write_review` wrote and the text around it (printed by the review command)."""

    written: dict  # file name -> path: trials.csv, review.html, <figure>.png
    lines: list  # the summary lines
    board: pd.DataFrame  # the leaderboard
    importance: pd.DataFrame | None  # hyperparameter importance, or None (the note says why)
    notes: dict  # figure name -> why it is missing or what to know
    disk: dict  # checkpoints.disk_usage of the project folder, measured before this review wrote anything
    front: pd.DataFrame  # pareto.csv: one row per completed trial
    retrain: list  # retrain-best commands, one per front point (empty for a plain Keras Tuner directory)


def write_review(project: Project, out: Path, top: int = 10) -> WrittenReview:
    """Write trials.csv, the figures and review.html for one loaded project into ``out``; prints nothing."""
    from fashion_tuner import outdir
    from fashion_tuner.review.summary import disk_line, leaderboard, summary_lines

    names = OUTPUT_FILES + [f"{name}.png" for name in FIGURES]
    outdir.claim(out, "the review folder", names, legacy=tuple(["review.html", *names]))  # the one rule for --out
    disk = checkpoints.disk_usage(project.path)  # before this review writes (into it, by default)
    lines, board = summary_lines(project) + [disk_line(disk)], leaderboard(project, top)
    written = {"trials.csv": out / "trials.csv"}
    project.trials.to_csv(written["trials.csv"], index=False)
    front = pareto.pareto_table(project, pareto.parameter_counts(project))
    missing = pareto.missing_note(front)
    if missing:  # normal for a plain Keras Tuner directory: information, not a warning
        log.info("%s: %s", project.path, missing)
    written[PARETO_CSV] = out / PARETO_CSV
    fsio.atomic_write_text(written[PARETO_CSV], front.to_csv(index=False))
    retrain = pareto.retrain_commands(project, front)
    # a figure this review does not draw must not survive from an earlier one (only one this tool wrote)
    outdir.remove_listed(out, [f"{stale}.png" for stale in FIGURES])
    images, notes, table = review_figures(project, out, top, front)
    written.update({f"{k}.png": v for k, v in images.items()})
    written["review.html"] = out / "review.html"
    written["review.html"].write_text(review_html(project, lines, board, images, notes, {"pareto": retrain}),
                                      encoding="utf-8")
    outdir.finish(out, list(written.values()))
    return WrittenReview(written, lines, board, table, notes, disk, front, retrain)
