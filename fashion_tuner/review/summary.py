"""A project in words: the summary lines, the hyperparameter space, and the leaderboard of the best trials."""

from __future__ import annotations

import logging

import pandas as pd

from fashion_tuner import tables
from fashion_tuner.review.project import Project, fold_columns

log = logging.getLogger(__name__)
KNOWN_STATUSES = ["completed", "failed", "invalid", "running"]


def describe_hp(name: str, hp: dict) -> str:
    """One line: ``name: Type range/values (sampling)``."""
    t = hp["type"]
    if t in ("Int", "Float"):
        step = f" step {hp['step']}" if hp.get("step") else ""
        return f"{name}: {t} {hp['min']}..{hp['max']}{step} ({hp.get('sampling') or 'linear'})"
    if t == "Fixed":
        return f"{name}: Fixed {hp['default']}"
    values = hp.get("values")
    return f"{name}: {t} " + (", ".join(map(str, values)) if values else "(values not declared)")


def leaderboard(project: Project, top: int) -> pd.DataFrame:
    """The ``top`` ranked trials, best first (index: rank from 1): id, score, ``search --cv``'s per-fold
    scores ``fold_1``.. ``fold_K`` and their ``cv_sd``, best epoch (1-based), epochs
    run, Hyperband's bracket/round and the trial a continuation resumes (``continues``), then only the
    hyperparameters that differ between the rows (the full table is trials.csv)."""
    ok = project.ranked().head(max(top, 0))
    board = ok[["trial_id", "score", *fold_columns(ok.columns)]].copy()  # --cv: the score is the folds' mean
    initial = ok["initial_epoch"].fillna(0) if "initial_epoch" in ok else 0
    board["best_epoch"] = (ok["best_step"] + 1 + initial).astype("Int64")  # 1-based, from the start of training
    board["epochs_run"] = ok["epochs_run"].astype("Int64") if ok["epochs_run"].notna().any() else None
    for col in ("bracket", "round"):
        if col in ok:
            board[col] = pd.to_numeric(ok[col], errors="coerce").astype("Int64")
    if "parent_trial" in ok and ok["parent_trial"].notna().any():
        board["continues"] = ok["parent_trial"].fillna(tables.MISSING)
    names = [n for n in project.space if n in ok]
    rows = ok[names].to_dict("records")
    keep = tables.differing(rows, names) if len(rows) > 1 else names
    for n in keep:
        board[n] = ok[n].map(tables.fmt)
    board.index += 1
    return board.dropna(axis=1, how="all")


def board_text(board: pd.DataFrame) -> str:
    """The leaderboard as text that fits the terminal (sideways when there are many hyperparameters)."""
    rows = [{"rank": str(i), **{c: (f"{v:.5g}" if isinstance(v, float) else v) for c, v in r.items()}}
            for i, r in zip(board.index, board.to_dict("records"))]
    fixed = ["rank", "trial_id", "score"]
    text, _ = tables.fit_table(rows, fixed, [c for c in board.columns if c not in fixed], tables.terminal_width())
    return text


def disk_line(usage: dict) -> str:
    """The run folder's disk use in one line (``usage``: :func:`fashion_tuner.checkpoints.disk_usage`)."""
    text = (f"disk: {usage['bytes'] / 1e6:.1f} MB ({usage['bytes']:,} bytes) in the project folder; checkpoints "
            f"{usage['checkpoint_bytes'] / 1e6:.1f} MB ({usage['checkpoint_bytes']:,} bytes) in "
            f"{usage['checkpoints_kept']} trial(s)")
    if usage.get("checkpoints_deleted"):
        text += (f"; {usage['checkpoints_deleted']} deleted by --keep-checkpoints, "
                 f"{usage['freed_bytes'] / 1e6:.1f} MB freed")
    return text


def summary_lines(project: Project) -> list[str]:
    """Where, which tuner and objective, trials by status, the best, the search's pick when the algorithm says
    why it is another trial or the defaults (:func:`fashion_tuner.algorithms.pick_order`), epochs spent, the space."""
    counts = project.trials["status"].value_counts().to_dict()
    status = ", ".join(f"{k} {counts.get(k, 0)}" for k in KNOWN_STATUSES) + \
        "".join(f", {k} {v}" for k, v in counts.items() if k not in KNOWN_STATUSES)
    best = project.best
    best_txt = f"{best['score']:.6g} (trial {best['trial_id']})" if best is not None else "none (no completed trial)"
    epochs = (f"{project.epochs_spent}" if project.epochs_exact else
              f"at least {project.epochs_spent} (Keras Tuner records only each trial's best epoch)")
    run = project.run or {}
    lines = [f"project: {project.path}" + (f" (run {run['name']})" if run.get("name") else ""),
             f"tuner: {project.tuner} ({project.tuner_detail})",
             f"objective: {project.objective} ({project.direction}; {project.objective_how})",
             f"trials: {len(project.trials)} ({status})",
             f"best: {best_txt}",
             *([f"pick (what retrain-best trains): trial {project.pick}: {project.pick_note}"] if project.pick else []),
             f"epochs spent: {epochs}"]
    folds = [c for c in fold_columns(project.trials.columns) if c != "cv_sd"]
    if folds:
        cv = run.get("cv") or {}
        lines.append(f"cross-validation: {len(folds)} folds" + (f" of {cv['pool']} pooled train + validation images"
                                                                 if cv.get("pool") else "")
                     + "; score = mean of fold_1..fold_%d (each fold's best %s), cv_sd their spread"
                     % (len(folds), project.objective))
    lines.append("hyperparameters:")
    lines += ["  " + describe_hp(n, hp) for n, hp in project.space.items()] or ["  (none)"]
    return lines
