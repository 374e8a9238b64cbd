"""The accuracy-against-size trade-off of a search: which trials are on the Pareto front.

:func:`pareto_front` is a pure function (lists in, list out); :func:`pareto_table` joins it to a
:class:`~fashion_tuner.review.project.Project` and the parameter counts recorded per trial
(``trial_*/model.json``, :mod:`fashion_tuner.modelsize`); :func:`retrain_commands` spells the
``retrain-best RUN --max-params N`` that retrains each front point. No Keras import.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import pandas as pd

from fashion_tuner import hints, modelsize
from fashion_tuner.review.project import Project

log = logging.getLogger(__name__)
CSV_COLUMNS = ["trial_id", "parameters", "score", "on_front"]  # then one column per hyperparameter


def _count(value) -> int | None:
    """A parameter count as an int, or None when missing, NaN or negative."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) and number >= 0 else None


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def pareto_front(parameters: Sequence, scores: Sequence, direction: str = "max") -> list[bool]:
    """Which points are on the Pareto front of score against parameter count.

    ``parameters[i]``: trial i's parameter count (weights; None or NaN: unknown); ``scores[i]``: its
    objective value; ``direction``: "max" (higher is better, e.g. val_accuracy) or "min" (e.g. val_loss).
    Returns one bool per point, in the input order.

    The rule: point j dominates point i when j has at most as many parameters AND a score at least as
    good, and is strictly better in one of the two. A point is on the front when no point dominates it.
    Ties: two points with the same count and the same score do not dominate each other, so both are on
    the front (or both off); a point with the same count as another but a worse score is off; one with
    the same score but more parameters is off. A point with a NaN/missing score or an unknown count is
    never on the front and dominates nothing.
    """
    if len(parameters) != len(scores):
        raise ValueError(f"{len(parameters)} parameter counts but {len(scores)} scores")
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be 'max' or 'min', not {direction!r}")
    sign = 1.0 if direction == "max" else -1.0
    points = []
    for i, (n, s) in enumerate(zip(parameters, scores)):
        n, s = _count(n), _finite(s)
        if n is not None and s is not None:
            points.append((n, -sign * s, i))  # sorted: fewest parameters first, best score first among equals
    on = [False] * len(scores)
    best, best_n = -math.inf, None
    for n, neg, i in sorted(points):
        good = -neg
        if good > best:  # better than every point with at most as many parameters
            on[i], best, best_n = True, good, n
        elif good == best and n == best_n:  # an exact tie with the front point just kept
            on[i] = True
    return on


def parameter_counts(project: Project) -> dict[str, int | None]:
    """``{trial_id: parameters or None}`` for every trial of the project, from ``trial_<id>/model.json``."""
    return {tid: modelsize.parameters(project.path / f"trial_{tid}") for tid in project.trials["trial_id"]}


def pareto_table(project: Project, counts: dict[str, int | None]) -> pd.DataFrame:
    """One row per completed trial (start order): ``trial_id``, ``parameters`` (nullable Int64),
    ``score`` (the project's objective), ``on_front`` (0/1, :func:`pareto_front`), then every
    hyperparameter of the space (blank where a trial did not use it)."""
    done = project.trials[project.trials["status"] == "completed"]
    table = pd.DataFrame({"trial_id": done["trial_id"].astype(str).to_numpy(),
                          "parameters": pd.array([counts.get(t) for t in done["trial_id"]], dtype="Int64"),
                          "score": done["score"].astype(float).to_numpy()})
    front = pareto_front([counts.get(t) for t in done["trial_id"]], table["score"].tolist(), project.direction)
    table["on_front"] = [int(f) for f in front]
    for name in project.space:  # a hyperparameter named like a core column gets an "hp:" prefix
        table[name if name not in CSV_COLUMNS else f"hp:{name}"] = done[name].to_numpy() if name in done else None
    return table


def front_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The front's rows, fewest parameters first."""
    return table[table["on_front"] == 1].sort_values(["parameters", "trial_id"], kind="stable")


def missing_note(table: pd.DataFrame) -> str:
    """Why the front is partial or absent ("" when every completed trial has a count)."""
    missing = int(table["parameters"].isna().sum())
    if not len(table) or not missing:
        return ""
    if missing == len(table):
        return (f"parameter counts missing for all {missing} completed trial(s): no trial_*/{modelsize.MODEL_FILE} "
                "(a plain Keras Tuner directory, or a search made before fashion_tuner recorded them); "
                "no Pareto front can be drawn")
    return (f"parameter counts missing for {missing} of {len(table)} completed trial(s) (no "
            f"trial_*/{modelsize.MODEL_FILE}): they are left out of the front")


def retrain_commands(project: Project, table: pd.DataFrame) -> list[str]:
    """``retrain-best RUN --max-params N`` for each front point, fewest parameters first: the most
    accurate trial under N parameters is that point (the front's definition; of an exact tie,
    retrain-best takes the one that started first). Empty for a directory that is not a fashion_tuner
    run (retrain-best needs run.json)."""
    if project.run is None:
        return []
    commands, seen = [], set()
    for row in front_rows(table).itertuples():
        if row.parameters in seen:  # an exact tie: the same command retrains the first of them
            continue
        seen.add(row.parameters)
        line = hints.command("retrain-best", str(project.path), "--max-params", str(int(row.parameters)),
                             *hints.space_args(project.run.get("space")))
        commands.append(f"{line}   # trial {row.trial_id}: {int(row.parameters):,} parameters, "
                        f"{project.objective} {row.score:.4g}")
    return commands
