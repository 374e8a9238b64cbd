"""A run's trials as a table: ranked (runs.ranked_trials), the top configurations with what differs
between them, and the counts and best trial run.json records."""

from __future__ import annotations

from pathlib import Path

from fashion_tuner import algorithms, hints, runs, tables
from fashion_tuner.fitting import DIRECTION, OBJECTIVE
from fashion_tuner.search.progress import failure_reason

SUMMARY_TOP = 5


def trial_table(run_dir: Path, direction: str = DIRECTION) -> list[dict]:
    """Every trial of a run directory as a dict (id, status, score, best_step, hyperparameters, reason,
    ``parent``: the trial a Hyperband continuation resumes, else None): the ranked completed trials
    first (:func:`fashion_tuner.runs.ranked_trials`), then the others in trial order."""
    trials = runs.read_trials(run_dir)
    ranked = runs.ranked_trials(trials, direction)
    rest = [t for t in trials if all(t is not r for r in ranked)]
    return [{"trial_id": t.get("trial_id"), "status": t.get("status"), "score": runs.trial_score(t),
             "best_step": t.get("best_step"), "hyperparameters": t.get("hyperparameters", {}).get("values", {}),
             "parent": t.get("hyperparameters", {}).get("values", {}).get(tables.PARENT_KEY),
             "reason": failure_reason(t.get("message")) if t.get("status") in ("FAILED", "INVALID") else ""}
            for t in ranked + rest]


def top_table(completed: list[dict], defaults: dict, top: int = SUMMARY_TOP, width: int | None = None) -> str:
    """The best ``top`` configurations (completed trials, best first; a Hyperband continuation stands for
    its lineage and names the trial it continues) with the hyperparameters that differ between them --
    or, for a single row, from the space's defaults -- as many as fit ``width`` (default: the terminal)."""
    width = width or tables.terminal_width()
    shown = tables.one_per_configuration(completed)[:top]
    rows, names = [], []
    for r in shown:
        values = tables.hp_values(r["hyperparameters"])
        names += [n for n in values if n not in names]
        rows.append({"trial": r["trial_id"], OBJECTIVE: f"{r['score']:.4f}", "epoch": tables.best_epoch(r["best_step"] or 0, r["hyperparameters"]),
                     "continues": r.get("parent") or tables.MISSING, **values})
    fixed = ["trial", OBJECTIVE, "epoch"] + (["continues"] if any(r.get("parent") for r in shown) else [])
    varying = tables.differing(rows, names) if len(rows) > 1 else list(
        tables.changed_from_defaults(shown[0]["hyperparameters"], defaults))
    text, left_out = tables.fit_table(rows, fixed, varying, width)
    same = len(names) - len(varying)
    notes = []
    if left_out:
        notes.append(f"+{len(left_out)} more that differ ({', '.join(left_out)})")
    if same and len(rows) > 1:
        notes.append(f"{same} hyperparameter(s) the same in every row")
    if notes:
        text += "\n(" + "; ".join(notes) + f"; every value: trials.csv of `{hints.command('review', 'RUN_DIR')}`)"
    return text


def summarize(run_dir: Path, top: int = SUMMARY_TOP) -> tuple[str, dict]:
    """The top-N table as text (see :func:`top_table`) and the counts/best for run.json; ``pick_is_defaults``: the pick
    is the space's defaults (every active value at its default)."""
    rows = trial_table(run_dir)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    completed = [r for r in rows if r["status"] == "COMPLETED" and r["score"] is not None]
    table, pick, note, defaults = "", completed[0] if completed else None, None, None
    if completed:
        stored = runs.read_trials(run_dir)
        defaults = tables.space_defaults(stored[0].get("hyperparameters", {}).get("space"))
        table = top_table(completed, defaults, top)
        order, note = algorithms.pick_order(run_dir, runs.ranked_trials(stored, DIRECTION))
        picked = str(order[0].get("trial_id")) if order else None
        pick = next((r for r in completed if str(r["trial_id"]) == picked), pick)
    best = {"trial_id": pick["trial_id"], "score": pick["score"], **({"why": note} if note else {})} if pick else None
    is_defaults = bool(pick and defaults and not tables.changed_from_defaults(pick["hyperparameters"], defaults))
    return table, {"counts": counts, "best": best, "failed": [r for r in rows if r["status"] in ("FAILED", "INVALID")],
                   "best_hyperparameters": pick["hyperparameters"] if pick else None, "pick_is_defaults": is_defaults}
