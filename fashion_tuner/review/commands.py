"""The commands ``review PATH...``, ``list`` and ``compare RUN...``: the only code in the package that prints
(tables and where files went); problems go through logging as warnings."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path

import pandas as pd

from fashion_tuner import algorithms, hints, outdir, rundir
from fashion_tuner.errors import UserError
from fashion_tuner.review import plots
from fashion_tuner.review.page import write_review
from fashion_tuner.review.project import (ORACLE, REVIEW_DIR, RUN_JSON, Project, as_float, find_projects, is_project,
                                          load_project, read_project)
from fashion_tuner.review.summary import board_text

log = logging.getLogger(__name__)
METRICS_JSON = Path("report") / "metrics.json"
COMPARE_FILES = ("compare.csv", "history.png")
BUDGET_KEYS = ("max_epochs", "factor", "max_trials", "batch_size", "seed", "subset")


# ----------------------------------------------------------------------------- review

def _writable_dir(path: Path) -> bool:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def _default_out(path: Path) -> Path:
    rundir.refuse_symlink(path / REVIEW_DIR)  # a link in the folder reviewed may lead anywhere
    if _writable_dir(path / REVIEW_DIR):
        return path / REVIEW_DIR
    beside = path.parent / f"{path.name}-{REVIEW_DIR}"
    if _writable_dir(beside):
        return beside
    raise UserError(f"cannot write the review next to {path} (not writable); pass --out DIR")


def _unique(name: str, taken: set) -> str:
    base, i = name, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def _print_summary(project: Project, lines: list[str], board: pd.DataFrame) -> None:
    print("\n".join(lines))
    print(f"leaderboard (top {len(board)} by {project.objective}, {project.direction}):")
    if len(board):
        print(board_text(board))
        print("(hyperparameters that are the same in every row are left out; trials.csv has them all)")
    else:
        print("  (no completed trials)")


def _print_front(front: pd.DataFrame, retrain: list[str]) -> None:
    """The Pareto front in one line, then the command that retrains each of its points."""
    on = front[front["on_front"] == 1].sort_values(["parameters", "trial_id"], kind="stable")
    if on.empty:
        return  # no counts: the warning said so
    print("Pareto front (score against parameters, fewest first): " + ", ".join(
        f"trial {r.trial_id} {int(r.parameters):,} params {r.score:.4g}" for r in on.itertuples()))
    if retrain:
        print("retrain a front point (the most accurate trial under its size):")
        print("\n".join(f"  {c}" for c in retrain))


def review_project(project: Project, out: Path, top: int = 10) -> dict[str, Path]:
    """Print the summary and leaderboard of one loaded project; write trials.csv, plots and review.html
    (:func:`fashion_tuner.review.page.write_review`). Returns what was written, by file name."""
    review = write_review(project, out, top)
    _print_summary(project, review.lines, review.board)
    if review.importance is not None:
        print("hyperparameter importance: " + ", ".join(
            f"{r.hyperparameter} {r.importance:.3g}" for r in review.importance.itertuples()))
    else:
        print(f"hyperparameter importance: {review.notes.get('importance', '')}")
    _print_front(review.front, review.retrain)
    print(f"written: {review.written['review.html']} (+ trials.csv, pareto.csv, {len(review.written) - 3} plots "
          f"in {out})")
    return review.written


def _target(out: str | None, root: Path, project_dir: Path, several: bool, taken: set) -> Path:
    """Where one project's review goes (see :func:`review_command`)."""
    if out is not None:
        target = Path(out).expanduser()
        if several:
            rel = project_dir.relative_to(root).as_posix() if project_dir != root else project_dir.name
            target = target / _unique(rel.replace("/", "__") or project_dir.name, taken)
        return target
    return _default_out(project_dir)  # one place per run, however it was named: RUN/review/


def named_path(path: str, results_dir: Path) -> Path:
    """``path`` as given, or the run of that name under ``results_dir`` when ``path`` is a bare name that is
    not a folder here (``review cnn3`` as ``retrain-best cnn3``)."""
    given = Path(path).expanduser()
    if not given.exists() and os.sep not in path and (results_dir / path).is_dir():
        return results_dir / path
    return given


def review_command(paths: list[str], out: str | None = None, top: int = 10, results_dir: str = "results") -> int:
    """``review PATH... [--out DIR] [--top N]``: review every Keras Tuner project at or under each PATH
    (a folder, or the name of a run under ``results_dir``).

    Output per project: ``trials.csv``, PNG plots and ``review.html`` in ``--out`` (one subfolder per
    project when there are several), else the project's own ``review/`` folder (``PROJECT-review`` beside
    it if it is not writable), also when the project was found under a parent PATH.
    """
    if top < 1:
        raise UserError(f"--top must be at least 1 (got {top})")
    root = Path(results_dir).expanduser()
    named = [named_path(p, root) for p in paths]
    found = [(p, find_projects(p)) for p in named]  # all path errors before any work
    several = sum(len(projects) for _, projects in found) > 1
    taken: set = set()
    for root, projects in found:
        for project_dir in projects:
            target = _target(out, root, project_dir, several, taken)
            print(f"== {project_dir}")
            review_project(load_project(project_dir), target, top)
            print()
    return 0


# ----------------------------------------------------------------------------- list and compare

def _retrain_metrics(path: Path) -> tuple[dict, list[dict]]:
    """(the retrain's figures, its models' figures) from report/metrics.json: for an ensemble (--top-k) the
    ensemble's and its members'; for one model its own twice; ({}, []) when there is no retrain."""
    try:
        metrics = json.loads((path / METRICS_JSON).read_text())
    except (OSError, ValueError):
        return {}, []
    if not isinstance(metrics, dict):
        return {}, []
    if isinstance(metrics.get("ensemble"), dict):
        return metrics["ensemble"], [m for m in metrics.get("members") or [] if isinstance(m, dict)]
    return metrics, [metrics]


def _test_accuracy(path: Path) -> float:
    return as_float(_retrain_metrics(path)[0].get("test_accuracy"))


def _trained_on(path: Path) -> str:
    """``"60000 images (full) x 30 epochs"``: what the test accuracy beside it was trained on ("-": no retrain;
    an ensemble: its members' epochs, each)."""
    top, models = _retrain_metrics(path)
    if not top or not models:
        return "-"
    images = {m.get("train_images") for m in models}
    text = f"{images.pop()} images" if len(images) == 1 and None not in images else "images not recorded"
    text += f" ({top['train_on']})" if top.get("train_on") else ""
    epochs = [m["epochs_trained"] for m in models if isinstance(m.get("epochs_trained"), int)]
    if epochs:
        text += f" x {epochs[0]} epochs" if len(models) == 1 else f" x {'/'.join(map(str, epochs))} epochs"
    return text


def _quiet_load(path: Path) -> Project:
    """The project, its problems summed up in one warning (``review`` lists them)."""
    project = read_project(path)
    if project.problems:
        log.warning("%s: %d problem(s) reading it; `%s` lists them", path.name, len(project.problems),
                    hints.command("review", str(path)))
    return project


def _space_name(run: dict | None) -> str:
    space = (run or {}).get("space")
    if not space:
        return "-"
    return Path(space).stem if str(space).endswith(".py") else str(space)


def _fmt(value) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return "-" if value is None else str(value)


def _counts(p: Project) -> tuple[int, int]:
    """(completed, failed or invalid) trials."""
    status = p.trials["status"]
    return int((status == "completed").sum()), int(status.isin(["failed", "invalid"]).sum())


def _list_row(d: Path) -> dict:
    p = _quiet_load(d)
    completed, failed = _counts(p)
    status = "damaged" if p.run is None and (d / RUN_JSON).is_file() else (p.run or {}).get("status", "-")
    return {"name": d.name, "space": _space_name(p.run), "tuner": p.tuner, "status": status,
            "completed": completed, "failed": failed,
            "objective": p.objective if len(str(p.objective)) < 20 else "?",
            "best": p.best["score"] if p.best is not None else math.nan, "test_acc": _test_accuracy(d),
            "modified": time.strftime("%Y-%m-%d %H:%M", time.localtime(p.mtime)) if p.mtime else "-"}


def list_command(results_dir: str) -> int:
    """``list [--results-dir DIR]``: one row per run (subfolder holding oracle.json or run.json).

    A missing or empty results directory is not an error: a message says so and the exit code is 0.
    A results "directory" that is a file is a UserError.
    """
    root = Path(results_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise UserError(f"--results-dir {root} is a file, not a directory; pass the folder holding your runs")
    if not root.is_dir():
        print(f"no runs: {root} does not exist yet (`{hints.main_py()} search` creates runs there)")
        return 0
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and ((d / ORACLE).is_file() or (d / RUN_JSON).is_file()))
    if not dirs:
        print(f"no runs in {root} (no subfolder holds oracle.json or run.json)")
        return 0
    table = pd.DataFrame([_list_row(d) for d in dirs]).sort_values("modified", kind="stable")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-"))
    return 0


def _resolve(run: str, results_dir: Path) -> Path:
    path = named_path(run, results_dir)
    if not path.is_dir():
        raise UserError(f"run {run!r} not found (neither a directory nor a run under {results_dir}); "
                        f"`{hints.command('list')}` shows the runs")
    if not is_project(path):
        raise UserError(f"{path} is not a Keras Tuner project (no oracle.json or trial_*/trial.json)")
    return path


def _compare_column(p: Project) -> dict:
    """One run's column of the compare table: what it searched, its budget, its outcome, its best values."""
    args = (p.run or {}).get("args") or {}
    best = p.best
    col = {"path": str(p.path), "space": _space_name(p.run), "tuner": p.tuner,
           "objective": f"{p.objective} ({p.direction})"}
    for key in BUDGET_KEYS:
        # a Hyperband budget is max_epochs and factor; --max-trials only counts for the other tuners
        irrelevant = (key == "factor") != algorithms.is_multi_fidelity(p.tuner) and key in ("factor", "max_trials")
        searched = key in p.space  # e.g. a space that searches batch_size: --batch-size did not apply
        col[f"budget: {key}"] = "searched (hp row)" if searched else "-" if irrelevant else _fmt(args.get(key))
    completed, failed = _counts(p)
    col.update({"trials completed": completed, "trials failed": failed,
                "epochs spent": p.epochs_spent if p.epochs_exact else f">= {p.epochs_spent}",
                "best score": _fmt(best["score"]) if best is not None else "-",
                "best trial": best["trial_id"] if best is not None else "-",
                "test accuracy": _fmt(_test_accuracy(p.path)), "retrained on": _trained_on(p.path)})
    values = p.values.get(best["trial_id"], {}) if best is not None else {}
    for name in p.space:  # as trial.json has it: 256, not the 256.0 of a table column with blanks
        col[f"hp: {name}"] = _fmt(values.get(name))
    return col


def _write_compare(table: pd.DataFrame, projects: list[Project], dirs: list[Path], out: str) -> None:
    target = Path(out).expanduser()
    if any(target.resolve() == d.resolve() or d.resolve() in target.resolve().parents for d in dirs):
        raise UserError(f"--out {target} is inside a run directory; pick a folder outside the runs")
    outdir.claim(target, "--out", COMPARE_FILES, legacy=COMPARE_FILES)  # the one rule for output folders
    table.to_csv(target / "compare.csv")
    plots.plot_history(projects, target / "history.png", "optimisation history: " + ", ".join(p.name for p in projects))
    outdir.finish(target, [target / name for name in COMPARE_FILES])
    print(f"written: {target / 'compare.csv'}, {target / 'history.png'}")


def compare_command(runs: list[str], results_dir: str, out: str | None = None) -> int:
    """``compare RUN...``: runs side by side; with ``--out DIR`` also ``compare.csv`` and an overlaid
    optimisation-history plot ``history.png`` in DIR (never inside a run). Without ``--out`` nothing is
    written, so the results folder holds runs only.
    """
    if not runs:
        raise UserError(f"name at least one run to compare (`{hints.command('list')}` shows them)")
    root = Path(results_dir).expanduser()
    dirs = [_resolve(r, root) for r in runs]
    taken: set = set()
    projects = [dataclasses.replace(p, name=_unique(p.path.name, taken)) for p in map(_quiet_load, dirs)]
    table = pd.DataFrame({p.name: _compare_column(p) for p in projects}).fillna("-")
    table = table[(table != "-").any(axis=1)]  # a row that is empty in every run says nothing
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(table.to_string())
    if out is None:
        print("(add --out DIR to save this table as compare.csv with an overlaid optimisation-history plot)")
        return 0
    _write_compare(table, projects, dirs, out)
    return 0
