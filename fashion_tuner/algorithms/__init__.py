"""Search algorithms: one module per algorithm, each saying everything the rest of fashion_tuner needs to
know about it (how to build its Keras Tuner oracle, which arguments are part of a run's identity, how many
trials it runs, whether it sweeps again until a time budget is spent, which checkpoints its saved state may
still load, and how review describes it).

A module exposes:

- ``NAME``: the ``--tuner`` value; ``SUMMARY``: one line for ``--help`` and review;
- ``IDENTITY_ARGS``: search arguments that, besides the common ones, define a run of this algorithm;
- ``MULTI_FIDELITY``: trials carry ``tuner/epochs`` (and continue a parent's weights: Hyperband-style);
- ``CONSTRAINTS``: it honours ``OracleSettings.constraint`` (``search --max-params``);
- ``SWEEPS``: it can repeat its sweep of brackets while a time budget lasts (:func:`set_sweeps`);
- ``build_oracle(settings: OracleSettings)`` -> a Keras Tuner ``Oracle``;
- ``expected_trials(settings)`` -> trials one run (one sweep) makes;
- ``needed_checkpoints(oracle_state, trials)`` -> ``{trial_id: why}``: checkpoints the algorithm may still
  load (beyond unfinished trials and their parents, which every algorithm needs);
- ``recognizes(oracle_state)`` -> bool, and ``describe(oracle_state)`` -> str: for any Keras Tuner folder;
- optionally ``pick_order(oracle_state, ranked, n_val)`` -> ``(trials, note)``: the order in which the search's
  summary and ``retrain-best`` pick the ranked completed trials (:func:`pick_order`), when it is not the scores'.

Adding an algorithm: one module here plus its test, and its name in :data:`MODULES`. Nothing here imports
Keras or Keras Tuner at import time (validation runs before TensorFlow loads).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

# In the order review tries them on an unknown folder (the most specific oracle state first).
MODULES = ("priorband", "hyperband", "bayesian", "random_search")
DEFAULT = "priorband"
ZERO_SEED = 2 ** 31  # the seed Keras Tuner gets for --seed 0 (it treats 0 as "no seed": OracleSettings.oracle_seed)
# Keras Tuner's own oracles draw the k-th hyperparameter value of a search from random.Random(seed + k), so searches
# at nearby seeds walk the same stream shifted, and once two of their draws start at the same k every later draw is
# the same (Hyperband at --seed 14 and RandomSearch at 16 drew one identical 28-value CNN). Their seed is spread by
# this prime so that --seed 1, 2, 3 give independent searches (OracleSettings.keras_tuner_seed; < 2**53 for JSON).
SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class OracleSettings:
    """Plain values an algorithm needs to build its oracle (no SearchConfig: see the package docstring).

    ``objective``/``direction``: the metric and "max"/"min"; ``max_epochs`` per trial; ``factor``:
    Hyperband's reduction factor; ``max_trials``: the trial count of non-Hyperband algorithms; ``constraint``:
    ``values -> reason or None``, rejecting a configuration before it trains (``search --max-params``);
    ``validation_images``: how many images score a trial (None: unknown), for what counts as noise; ``cost``:
    ``values -> compute or None`` (forward FLOPs per image of the configuration's model), given to algorithms
    whose module sets ``COST_AWARE``."""

    objective: str = "val_accuracy"
    direction: str = "max"
    seed: int = 42
    max_epochs: int = 10
    factor: int = 3
    max_trials: int = 20
    max_failures: int = 5
    constraint: Callable[[dict], str | None] | None = None
    validation_images: int | None = None
    cost: Callable[[dict], float | None] | None = None

    @property
    def oracle_seed(self) -> int:
        """The seed handed to Keras Tuner: ``seed``, except 0, which Keras Tuner would replace by a random one
        (``seed or random.randint(1, 10000)``), so a search at ``--seed 0`` was not reproducible: 2**31 (one past
        ``--seed``'s range) stands for it."""
        return self.seed if self.seed else ZERO_SEED

    @property
    def keras_tuner_seed(self) -> int:
        """The seed a Keras Tuner oracle of ours gets: :attr:`oracle_seed` times :data:`SEED_STRIDE`, so the
        streams of --seed s and s + 1 start a million draws apart instead of one."""
        return self.oracle_seed * SEED_STRIDE


def noise(accuracy: float, images: int) -> float:
    """One standard error of the difference of two accuracies near ``accuracy`` measured on ``images`` images:
    ``sqrt(2 p (1 - p) / n)`` (0.65 percentage points at 0.85 on 6,000). Differences below it are noise."""
    import math

    p = min(max(accuracy, 0.0), 1.0)
    return math.sqrt(2 * p * (1 - p) / max(images, 1))


def keras_tuner_oracle(class_name: str, settings: OracleSettings, **arguments):
    """Keras Tuner's oracle ``kt.oracles.<class_name>`` for ``settings`` (objective, seed, failures) plus
    ``arguments``, its first trial the space's defaults (``kt_compat.defaults_first``)."""
    import keras_tuner as kt

    from fashion_tuner import kt_compat

    oracle = getattr(kt.oracles, class_name)(
        objective=kt.Objective(settings.objective, settings.direction), seed=settings.keras_tuner_seed,
        max_consecutive_failed_trials=settings.max_failures, **arguments)
    kt_compat.defaults_first(oracle)
    return oracle


def module(name: str) -> ModuleType:
    """The algorithm module called ``name`` (a ``--tuner`` value); KeyError for an unknown one."""
    for mod_name in MODULES:
        mod = importlib.import_module(f"{__name__}.{mod_name}")
        if mod.NAME == name:
            return mod
    raise KeyError(name)


def names() -> tuple[str, ...]:
    """Every ``--tuner`` value, the default first."""
    found = [module_by_file(m).NAME for m in MODULES]
    return tuple(sorted(found, key=lambda n: n != DEFAULT))


def module_by_file(mod_name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{mod_name}")


def is_multi_fidelity(name: str) -> bool:
    """True for Hyperband-style algorithms (trials carry epoch budgets); False for unknown names."""
    try:
        return bool(module(name).MULTI_FIDELITY)
    except KeyError:
        return False


def recognize(oracle_state: dict | None) -> tuple[str, str] | None:
    """``(name, description)`` of the algorithm whose oracle wrote ``oracle_state`` (oracle.json), if one does."""
    if not isinstance(oracle_state, dict):
        return None
    for mod_name in MODULES:
        mod = module_by_file(mod_name)
        if mod.recognizes(oracle_state):
            return mod.NAME, mod.describe(oracle_state)
    return None


def set_sweeps(oracle, another: bool) -> None:
    """Whether a sweeping (Hyperband-style) oracle may begin another sweep of its brackets after the current
    one: ``another`` False ends the search with the current sweep. Other oracles are left as they are.

    Keras Tuner restores ``hyperband_iterations`` from ``oracle.json`` on reload and compares it with
    ``==``, so a reload of a run past that count would sweep forever: the count is always set here relative
    to the sweep in progress."""
    import keras_tuner as kt

    if isinstance(oracle, kt.oracles.HyperbandOracle):
        oracle.hyperband_iterations = int(getattr(oracle, "_current_iteration", 0)) + (2 if another else 1)


def pick_order(run_dir: str | Path, ranked: list[dict]) -> tuple[list[dict], str | None]:
    """The completed trials ``ranked`` by score (trial.json dicts, best first: ``runs.ranked_trials``) in the order
    the search's summary and ``retrain-best`` pick them, and a note saying why when that is not the scores' order
    (priorband keeps the space's defaults unless a trial beats them by more than the validation noise). The run
    folder is read as untrusted input: anything unreadable or of the wrong type leaves the order as it is."""
    run_dir = Path(run_dir)
    try:
        oracle_state = json.loads((run_dir / "oracle.json").read_text())
        run = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return ranked, None
    recognized = recognize(oracle_state)
    if recognized is None or not isinstance(run, dict):
        return ranked, None
    order = getattr(module(recognized[0]), "pick_order", None)
    sizes = (run.get("split") or {}).get("sizes") if isinstance(run.get("split"), dict) else None
    n_val = sizes.get("val") if isinstance(sizes, dict) else None
    if order is None or run.get("direction", "max") != "max" or not isinstance(n_val, int) or n_val < 1:
        return ranked, None
    return order(oracle_state, ranked, n_val, reached=budget_stopped_epochs(run_dir, ranked))


def budget_stopped_epochs(run_dir: Path, trials: list[dict]) -> dict[str, int]:
    """``{trial id: epochs reached}`` of the trials a time budget stopped before their epoch budget
    (``trial_<id>/budget_stop.json``, written by ``budget.budget_guard``; a malformed or linked one is skipped)."""
    from fashion_tuner import budget, rundir

    out = {}
    for t in trials:
        tid = str(t.get("trial_id"))
        if not rundir.is_safe_component(f"trial_{tid}"):
            continue
        marker = run_dir / f"trial_{tid}" / budget.BUDGET_STOP_FILE
        try:
            if marker.is_symlink():
                continue
            done = json.loads(marker.read_text()).get("epochs_done")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(done, int) and not isinstance(done, bool) and done >= 0:
            out[tid] = done
    return out
