"""The final race (``retrain-best --race``): the search's pick against the space's defaults at the retrain's
fidelity, decided on validation before anything sees the test split.

The search scores configurations on a subset for a few epochs; retrain-best trains for many more epochs, often
on every training image. A short fit favours what learns fast over what regularises: measured
(docs/benchmarks.md, "The seed-16 pick at the full retrain"), two picks that beat the cnn defaults by about
+2.1 pp at 10 epochs on 10,000 images (both turn augmentation off) lost to them at 30 epochs on 60,000 (-0.55 and
-0.32 pp validation, -0.10 and -0.55 pp test). So when the pick is not the defaults, both are trained here as
the report's model would be, and the one with the higher validation accuracy at its best epoch (the weights
EarlyStopping keeps) becomes the report's model; only that one is evaluated on the test split. A tie keeps the
defaults (the prior the search had to beat). The other's learning curve stays in ``report/race/``.

What counts as "the defaults" is read from the run itself, for any space: the default value of every active
hyperparameter of the stored search space (:func:`fashion_tuner.kt_compat.default_values`), and the trial that
trained exactly that configuration (every search's first trial; ``kt_compat.defaults_first``).
"""

from __future__ import annotations

import copy
import logging
import math

from fashion_tuner import report, tables

RACE_CHOICES = ("auto", "on", "off")
DEFAULT_RACE = "auto"
RACE_DIR = "race"  # report/race/<role>/: the loser's history.csv and hyperparameters.json (no model, never tested)
ROLES = {"pick": "the search's pick", "defaults": "the space's defaults"}
RULE = "the higher validation accuracy at its best epoch wins; a tie keeps the defaults; only the winner is tested"

log = logging.getLogger(__name__)


def defaults_config(trial: dict) -> dict | None:
    """``{name: default}`` of the active hyperparameters of the search space stored in ``trial`` (a trial.json
    dict), without Keras Tuner's ``tuner/*`` values; None when the trial stores no space."""
    import keras_tuner as kt

    from fashion_tuner import kt_compat

    stored = trial.get("hyperparameters")
    if not isinstance(stored, dict) or not stored.get("space"):
        return None
    space = kt.HyperParameters.from_config(copy.deepcopy(stored))
    return tables.hp_values(kt_compat.default_values(space))


def same_config(a: dict, b: dict) -> bool:
    """True when two ``{name: value}`` configurations are the same (floats equal to 1e-9 relative)."""
    if set(a) != set(b):
        return False
    for name, x in a.items():
        y = b[name]
        if isinstance(x, bool) != isinstance(y, bool):
            return False  # True == 1.0 in Python; not as hyperparameter values
        both_float = isinstance(x, float) or isinstance(y, float)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
        if both_float and numbers:
            if not math.isclose(x, y, rel_tol=1e-9, abs_tol=0.0):
                return False
        elif x != y:
            return False
    return True


def config_of(trial: dict) -> dict:
    return tables.hp_values((trial.get("hyperparameters") or {}).get("values"))


def is_defaults(config: dict, defaults: dict) -> bool:
    """True when every value of ``config`` is its default. A hyperparameter a space declares only on some paths
    (in a Python ``if`` rather than a conditional scope) is in the stored space's defaults but not in the values
    of a trial that took another path; a build is a function of its values, so the values it has decide."""
    return bool(config) and set(config) <= set(defaults) and same_config(config, {k: defaults[k] for k in config})


def opponent(mode: str, pick: dict, done: list[dict], *, train_on: str, top_k: int, distilling: bool,
             budgeted: bool, cv: bool) -> tuple[dict | None, str | None]:
    """The completed trial of the space's defaults that ``pick`` races against, or None; and a note for the
    user when a race would apply but does not run (None when there is nothing to say).

    ``mode``: "auto" races when the pick is not the defaults, one model is retrained (no ``top_k`` > 1, no
    distillation, no --cv), a validation split exists (not train+val) and there is no time budget; "on" races
    under a time budget and with --cv too (each model then gets half the budget); "off" never. ``done``: the
    completed trials the pick was chosen from (after --max-params), best first."""
    if mode == "off":
        return None, None
    defaults = defaults_config(pick)
    if defaults is None or is_defaults(config_of(pick), defaults):
        return None, None  # the pick is the defaults: nothing to race
    rival = next((t for t in done if is_defaults(config_of(t), defaults)), None)
    if rival is None:
        return None, ("note: no race against the space's defaults: no completed trial of this run (within "
                      "--max-params) trained them")
    why = None
    if top_k > 1 or distilling:
        why = "--top-k and --distill-from retrain their own set of models"
    elif train_on == "train+val":
        why = "--train-on train+val leaves no validation images to judge it"
    elif mode == "auto" and budgeted:
        why = "--time-budget gives one model the whole budget (--race on races within it, half each)"
    elif mode == "auto" and cv:
        why = "--cv studies the pick (--race on races too)"
    if why:
        return None, f"note: no race of the pick against the space's defaults (trial {rival['trial_id']}): {why}"
    return rival, None


def outcome(fits: dict[str, tuple[dict, dict, float]], validation_images: int) -> dict:
    """The race's record: ``fits`` maps "pick" and "defaults" to ``(trial, history dict, wall seconds)``.

    Returns ``{"winner", "loser", "rule", "validation_images", "noise_pp", "pick": {...}, "defaults": {...},
    "note"}``, each side with its trial id, validation accuracy and epoch (1-based) of its best epoch, epochs
    trained, wall seconds and validation accuracy per epoch."""
    sides = {}
    for role, (trial, history, wall) in fits.items():
        curve = [float(v) for v in history.get("val_accuracy", [])]
        best = report.best_epoch(history) if curve else None
        score = curve[best] if curve and math.isfinite(curve[best]) else None  # JSON has no -inf
        sides[role] = {"trial_id": trial["trial_id"], "val_accuracy": score,
                       "best_epoch": None if best is None else best + 1,
                       "epochs_trained": len(history.get("loss", [])), "wall_s": round(wall, 2),
                       "val_accuracy_per_epoch": [v if math.isfinite(v) else None for v in curve]}
    pick, defaults = (sides[r]["val_accuracy"] for r in ("pick", "defaults"))
    winner = "pick" if pick is not None and (defaults is None or pick > defaults) else "defaults"
    loser = "defaults" if winner == "pick" else "pick"
    from fashion_tuner.algorithms import noise

    margin = 100 * noise(defaults, validation_images) if validation_images and defaults is not None else None
    gap = None if pick is None or defaults is None else round(100 * (pick - defaults), 3)
    record = {"winner": winner, "loser": loser, "rule": RULE, "validation_images": validation_images,
              "noise_pp": None if margin is None else round(margin, 3), "pick_minus_defaults_val_pp": gap, **sides}
    record["note"] = describe(record)
    return record


def describe(record: dict) -> str:
    """One sentence for the log and the report: both validation scores, the winner, and whether the gap was
    within the validation noise."""
    def side(role: str) -> str:
        s = record[role]
        score = "no validation score" if s["val_accuracy"] is None else f"{s['val_accuracy']:.4f}"
        return f"{ROLES[role]} (trial {s['trial_id']}) {score} at epoch {s['best_epoch']} of {s['epochs_trained']}"

    gap, margin = record.get("pick_minus_defaults_val_pp"), record.get("noise_pp")
    close = (f"; the gap, {abs(gap):.2f} pp, is within the validation noise ({margin:.2f} pp)"
             if gap is not None and margin is not None and abs(gap) <= margin else "")
    return (f"race at this retrain's fidelity, validation accuracy: {side('pick')}, {side('defaults')}: "
            f"{ROLES[record['winner']]} won and is the report's model, the only one tested{close} (--race off: "
            "retrain the pick alone)")
