"""What a search is: its arguments (:class:`SearchConfig`), the space's default budget, and the rules
for rerunning a run (what must not change, what may grow, what is recorded) decided before anything
is written (:func:`prepare_run_dir`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fashion_tuner import algorithms, devices, kt_compat, runs, spaces
from fashion_tuner.checkpoints import DEFAULT_KEEP
from fashion_tuner.devices import DEFAULT_MIXED_PRECISION
from fashion_tuner.errors import UserError
from fashion_tuner.fitting import DEFAULT_PATIENCE

TUNERS = algorithms.names()  # the default (algorithms.DEFAULT) first
DEFAULT_MAX_FAILURES = 5
# Arguments that define a run: resuming with other values would mix two different searches, so a
# rerun that changes one is refused. Hyperband's oracle also keeps its own max_epochs and factor.
IDENTITY_ARGS = ("space", "tuner", "dataset", "subset", "val_source", "val_size", "seed", "max_epochs",
                 "executions_per_trial", "batch_size", "patience", "class_weight", "weights", "mixed_precision",
                 "deterministic", "cv", "max_params")
# and each algorithm's own (Hyperband-style: factor), from its module in fashion_tuner.algorithms
# Arguments a resume may change: the budget (max_trials may grow, never below the trials already
# run) and how trials are run. A change is applied and recorded in run.json's "changes".
BUDGET_ARGS = ("max_trials",)
RUNTIME_ARGS = ("max_failures", "trial_timeout", "trials_per_process", "strategy", "jit", "input_pipeline",
                "verbose", "data_dir", "skip_md5", "time_budget", "keep_checkpoints", "tensorboard", "small_budget")
SMALL_BUDGET_CHOICES = ("defaults", "search")  # --small-budget: what a search too small to search does (budget.py)


@dataclass
class SearchConfig:
    """Every argument of ``main.py search`` (names match the CLI flags)."""

    space: str = "mlp"
    tuner: str = algorithms.DEFAULT
    max_epochs: int = 10
    factor: int = 3
    max_trials: int = 20
    executions_per_trial: int = 1
    subset: int | None = None
    results_dir: str = str(runs.DEFAULT_RESULTS_DIR)
    name: str | None = None
    seed: int = 42
    overwrite: bool = False
    data_dir: str | None = None
    dataset: str = "fashion_mnist"
    val_source: str = "test"
    val_size: float | None = None
    batch_size: int = 128
    patience: int = DEFAULT_PATIENCE
    class_weight: str | None = None
    max_failures: int = DEFAULT_MAX_FAILURES
    trial_timeout: float | None = None
    time_budget: float | None = None  # --time-budget, seconds from the start of this command (fashion_tuner.budget)
    small_budget: str = "defaults"  # defaults: a budget too small to search stops after trial 0 (the defaults); search
    skip_md5: bool = False
    weights: str | None = "auto"  # transfer backbones (the CLI's default too: see search_spaces/transfer.py)
    strategy: str = "auto"
    mixed_precision: str | None = DEFAULT_MIXED_PRECISION  # auto | float32 (None) | float16 | bfloat16 (devices)
    backend: str | None = None  # tensorflow | jax | torch; None: $KERAS_BACKEND or tensorflow (fashion_tuner.backend)
    jit: str = "auto"  # auto | on | off (devices.apply_jit)
    input_pipeline: str = "auto"  # auto | tfdata | arrays (devices.resolve_input_pipeline)
    role: str | None = None  # None | chief | worker (distributed search; see fashion_tuner.distributed)
    oracle_address: str | None = None  # HOST:PORT of the chief's oracle
    worker_id: str | None = None
    deterministic: bool = False
    verbose: int = 0
    debug: bool = False  # Keras Tuner prints each failed trial's traceback
    trials_per_process: int = 0  # stop (TrialBatchDone) after this many trials; 0: no limit
    retrain_defaults: dict | None = None  # {"epochs", "train_on"} for retrain-best (spaces.SPACE_DEFAULTS)
    keep_checkpoints: int | None = DEFAULT_KEEP  # best K trials' checkpoints kept (+ those still needed); None: all
    max_params: int | None = None  # --max-params N: configurations with more parameters are rejected before training
    cv: int | None = None  # --cv K: each trial scored by K-fold cross-validation (fashion_tuner.cv); None: off
    tensorboard: bool = True  # write RUN/tensorboard (an HParams logdir) when each search process ends
    command: list[str] = field(default_factory=list)

    @property
    def run_name(self) -> str:
        if self.name is not None:  # --name "" is refused (check_run_name), not taken as the default
            return self.name
        stem = Path(self.space).stem if spaces.is_space_file(self.space) else self.space
        return f"{stem}-{self.tuner}"


def apply_space_defaults(cfg: SearchConfig) -> SearchConfig:
    """Fill ``max_epochs``, ``subset`` and ``trial_timeout`` left as None from
    :data:`fashion_tuner.spaces.SPACE_DEFAULTS`. Only a search at the space's default budget (neither
    max_epochs nor subset given) records the space's ``retrain`` defaults for retrain-best."""
    defaults = spaces.SPACE_DEFAULTS.get(cfg.space, {})
    if cfg.max_epochs is None and cfg.subset is None:
        cfg.retrain_defaults = defaults.get("retrain")
    if cfg.max_epochs is None:
        cfg.max_epochs = defaults.get("max_epochs", spaces.DEFAULT_MAX_EPOCHS)
    if cfg.subset is None:
        cfg.subset = defaults.get("subset")
    if cfg.trial_timeout is None:
        cfg.trial_timeout = defaults.get("trial_timeout")
    return cfg


def oracle_settings(cfg: SearchConfig, constraint=None, validation_images: int | None = None,
                    cost=None) -> algorithms.OracleSettings:
    """The plain values an algorithm module builds its oracle from (``validation_images``: the images scoring a trial;
    ``cost``: values -> a configuration's compute, for a cost-aware algorithm)."""
    from fashion_tuner.fitting import DIRECTION, OBJECTIVE

    return algorithms.OracleSettings(objective=OBJECTIVE, direction=DIRECTION, seed=cfg.seed, max_epochs=cfg.max_epochs,
                                     factor=cfg.factor, max_trials=cfg.max_trials, max_failures=cfg.max_failures,
                                     constraint=constraint, validation_images=validation_images, cost=cost)


def sweeps_until_deadline(cfg: SearchConfig) -> bool:
    """True when a sweeping algorithm (Hyperband-style) repeats its sweep of brackets (new configurations each
    time) until the --time-budget is spent, instead of ending after one sweep. Not in a distributed search: its
    workers keep to the budget, but the chief's oracle must end by itself, after one sweep."""
    return algorithms.module(cfg.tuner).SWEEPS and bool(cfg.time_budget) and cfg.role is None


def trial_budget(cfg: SearchConfig) -> int | None:
    """How many trials the search will run when it runs to its end; None when the time budget decides."""
    return None if sweeps_until_deadline(cfg) else expected_trials(cfg)


def expected_trials(cfg: SearchConfig) -> int | None:
    """How many trials the budget allows (Hyperband-style: one sweep of brackets)."""
    return algorithms.module(cfg.tuner).expected_trials(oracle_settings(cfg))


@dataclass
class RunPlan:
    """What a search will do with its run directory, decided before anything is written."""

    run_dir: Path
    previous: dict | None = None  # run.json of the run being resumed
    overwrite: tuple[list[Path], list[Path]] | None = None  # (delete, keep) when starting over
    repairs: list = field(default_factory=list)  # kt_compat.Repair: damage fixed before resuming
    changes: list[dict] = field(default_factory=list)  # budget / runtime changes of a resume


def prepare_run_dir(cfg: SearchConfig, check_files: bool = True) -> RunPlan:
    """Check the run directory: a new run, one to overwrite, a resumable one, or one we must not touch.

    Nothing is written here. ``check_files``: read every Keras Tuner file of a resumed run first
    (see :func:`fashion_tuner.kt_compat.check_project`); off for distributed workers (the chief does it).
    """
    run_dir = runs.run_dir_for(cfg.results_dir, cfg.run_name)
    if not run_dir.exists():
        return RunPlan(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} exists and is not a directory; pick another --name")
    if cfg.overwrite:
        return RunPlan(run_dir, overwrite=runs.overwrite_plan(run_dir))
    if not (run_dir / runs.RUN_JSON).is_file():
        if runs.overwrite_in_progress(run_dir) is not None:
            raise UserError(f"an --overwrite of {run_dir} was interrupted while deleting it; rerun with --overwrite "
                            "to finish it (it deletes only what fashion_tuner wrote)")
        if any(run_dir.iterdir()):
            raise UserError(f"{run_dir} exists but is not a fashion_tuner run; pick another --name "
                            "(--overwrite only deletes runs made by this tool)")
        return RunPlan(run_dir)
    previous = runs.read_run(run_dir)
    changes = resume_changes(previous, cfg, run_dir)
    repairs = kt_compat.check_project(run_dir) if check_files else []
    return RunPlan(run_dir, previous, repairs=repairs, changes=changes)


def identity(cfg: SearchConfig) -> dict:
    keys = IDENTITY_ARGS + algorithms.module(cfg.tuner).IDENTITY_ARGS
    out = {k: getattr(cfg, k) for k in keys}
    out["space"] = spaces.space_reference(cfg.space)
    return out


def check_same_content(cfg: SearchConfig, previous: dict | None, class_weight: dict | None) -> None:
    """On resume, the files named by identity arguments must hold what they held (the names alone are
    compared by :func:`resume_changes`): the space file's SHA-256 and the class weights the --class-weight
    file gave, as run.json recorded them. UserError naming the file otherwise; a run that recorded neither
    is not checked."""
    if not previous:
        return
    digest, recorded = spaces.space_digest(cfg.space), previous.get("space_sha256")
    if recorded and digest and digest != recorded:
        raise UserError(f"the space file {cfg.space} has changed since run {cfg.run_name} was searched with it (SHA-256 "
                        "differs from run.json's): restore it, or use another --name (--overwrite starts over)")
    if "class_weight" in previous:
        plain = lambda w: {str(k): float(v) for k, v in w.items()} if isinstance(w, dict) else w  # noqa: E731
        if plain(class_weight) != plain(previous["class_weight"]):
            raise UserError(f"--class-weight {cfg.class_weight} now gives other weights than run {cfg.run_name} was "
                            "searched with (run.json's class_weight): restore the file, or use another --name")


def resume_changes(previous: dict, cfg: SearchConfig, run_dir: Path) -> list[dict]:
    """Compare a rerun's arguments with the run's: refuse (UserError) a change of identity or a budget
    below what already ran; return the allowed changes as ``{"arg", "from", "to"}`` dicts."""
    before = dict(previous.get("args") or {}, space=previous.get("space"))
    current = identity(cfg)
    for args in (before, current):  # float32 asked for equals a run recorded before the flag had a default
        if "mixed_precision" in args:
            args["mixed_precision"] = devices.mixed_policy(args["mixed_precision"])
    # keys an older run.json lacks are not compared: there is nothing to compare them with
    diffs = [f"{k} {before[k]!r} -> {v!r}" for k, v in current.items() if k in before and before[k] != v]
    if diffs:
        hint = (" (it was searched in float32: pass --mixed-precision float32 to resume it)"
                if before.get("mixed_precision", "") is None and current["mixed_precision"] is not None else "")
        raise UserError(f"run {cfg.run_name} already holds a different search ({'; '.join(diffs)}){hint}; "
                        "use another --name, or --overwrite to delete it and start over")
    changes = []
    if not algorithms.module(cfg.tuner).MULTI_FIDELITY and before.get("max_trials") not in (None, cfg.max_trials):
        ran = len(list(run_dir.glob("trial_*")))
        if cfg.max_trials < ran:
            raise UserError(f"--max-trials {cfg.max_trials} is below the {ran} trials run {cfg.run_name} already ran; "
                            f"pass --max-trials {before['max_trials']} to resume it, or more to extend it")
        changes.append({"arg": "max_trials", "from": before["max_trials"], "to": cfg.max_trials})
    for key in RUNTIME_ARGS:
        if key in before and before[key] != getattr(cfg, key):
            changes.append({"arg": key, "from": before[key], "to": getattr(cfg, key)})
    return changes
