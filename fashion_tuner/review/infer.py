"""What a Keras Tuner directory does not say outright, inferred from what it stores.

- The search space: the union of the hyperparameter configs in ``oracle.json`` and every trial.
- The tuner: each algorithm module (:mod:`fashion_tuner.algorithms`) recognizes its oracle's state (Hyperband
  adds ``brackets``/``max_epochs``/``factor`` to ``oracle.json``, priorband its ``priorband`` draws,
  BayesianOptimization ``num_initial_points``/``alpha``/``beta``); RandomSearch and GridSearch add nothing, but GridSearch's
  first trial always takes every default value and its second differs from it in one value.
- The objective: its name is not stored. Each trial keeps its metrics (at the best epoch only) and its
  ``score``: the objective is the metric equal to the score in the most trials.
"""

from __future__ import annotations

import logging
import math

from fashion_tuner import algorithms

log = logging.getLogger(__name__)
HYPERBAND_KEYS = {"tuner/epochs": "epochs", "tuner/initial_epoch": "initial_epoch",
                  "tuner/bracket": "bracket", "tuner/round": "round", "tuner/trial_id": "parent_trial"}


def hp_space(configs: list[dict]) -> dict[str, dict]:
    """``{name: {"type", "values", "min", "max", "step", "sampling", "default", "conditional"}}`` from
    Keras Tuner hyperparameter configs (``{"class_name", "config"}``); the first config of a name wins."""
    space = {}
    for item in configs:
        cls, cfg = item.get("class_name", "?"), item.get("config", {})
        name = cfg.get("name")
        if not name or name in space:
            continue
        entry = {"type": cls, "default": cfg.get("default"), "sampling": cfg.get("sampling"),
                 "min": cfg.get("min_value"), "max": cfg.get("max_value"), "step": cfg.get("step"),
                 "values": cfg.get("values"), "conditional": bool(cfg.get("conditions"))}
        if cls == "Boolean":
            entry["values"] = [False, True]
        elif cls == "Fixed":
            entry["values"] = [cfg.get("value")]
            entry["default"] = cfg.get("value")
        space[name] = entry
    return space


def undeclared(value) -> dict:
    """A space entry for a value no config declares (plain dicts can have them): Float for numbers."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return {"type": "Float" if numeric else "Choice", "values": None, "min": None, "max": None, "step": None,
            "sampling": None, "default": None, "conditional": False}


def default_value(hp: dict):
    """The value Keras Tuner gives a hyperparameter before any search decides."""
    if hp["default"] is not None:
        return hp["default"]
    if hp["type"] in ("Int", "Float"):
        return hp["min"]
    if hp["type"] == "Boolean":
        return False
    return (hp["values"] or [None])[0]


def infer_tuner(oracle: dict | None, trials: list[dict], space: dict) -> tuple[str, str]:
    """(tuner name, detail) from oracle.json keys and the trials' hyperparameters (``values`` of each)."""
    recognized = algorithms.recognize(oracle)  # an oracle whose saved state names it (fashion_tuner.algorithms)
    if recognized is not None:
        return recognized
    if any("tuner/epochs" in t["values"] for t in trials):
        return "hyperband", "inferred from the trials' tuner/* hyperparameters"
    if oracle is None or not trials:
        return "unknown", "no oracle.json" if oracle is None else "no trials"
    by_id = {t["trial_id"]: t for t in trials}
    order = [by_id[i] for i in oracle.get("start_order", []) if i in by_id] or trials
    first = order[0]["values"]
    tunable = [n for n, hp in space.items() if hp["type"] != "Fixed"]
    if tunable and all(first.get(n) == default_value(space[n]) for n in tunable if n in first):
        if len(order) < 2 or sum(order[1]["values"].get(n) != first.get(n) for n in first) == 1:
            return "grid", "inferred: the first trial took every default value"
    return "random", "no oracle state beyond the base Oracle's"


def infer_objective(trials: list[dict]) -> tuple[str, str, str]:
    """(name, direction, how) of the metric equal to the trials' score."""
    votes: dict[str, int] = {}
    directions = {}
    for t in trials:
        if math.isnan(t["score"]):
            continue
        for name, m in t["metrics"].items():
            value = m["at_best"].get(t["best_step"], m["last"])
            if not math.isnan(value) and math.isclose(value, t["score"], rel_tol=1e-9, abs_tol=1e-12):
                votes[name] = votes.get(name, 0) + 1
                directions[name] = m["direction"]
    if not votes:
        # Multi-objective and custom scores are minimised by Keras Tuner.
        return "unknown (custom or multi-objective score)", "min", "no metric equals the score"
    name = max(votes, key=lambda n: (votes[n], n.startswith("val_"), n))
    return name, directions[name] or "max", "inferred from trial metrics"
