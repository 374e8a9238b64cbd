"""What a retrain-best is: its arguments (:class:`RetrainConfig`) and the plan they give for a run
(epochs, training images, patience; which space code may run)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fashion_tuner import runs, spaces
from fashion_tuner.errors import UserError

TRAIN_ON = ("train", "train+val", "full")
DEFAULT_EPOCHS = 10
DEFAULT_PATIENCE = 3
DEFAULT_BATCH_SIZE = 128
LATENCY_REPEATS = 20  # single-image inference calls timed for the report (median)
MODEL_FILE = "best_model.keras"
BACKUP_DIR = "retrain_backup"  # RUN_DIR/retrain_backup/<member key>/: per-epoch backups (fashion_tuner.backup)
PROBS_FILE = "test_probabilities.npy"
CLASS_NAMES_FILE = "class_names.json"

log = logging.getLogger("fashion_tuner.retrain")


def say(msg: str) -> None:
    """What retrain-best tells the user, prefixed as every line of this command is."""
    log.info("[retrain-best] %s", msg)


@dataclass
class RetrainConfig:
    """Every argument of ``main.py retrain-best`` (names match the CLI flags)."""

    run: str | None = None  # a run directory, or a run name under results_dir
    results_dir: str = str(runs.DEFAULT_RESULTS_DIR)
    name: str | None = None
    epochs: int | None = None  # None: the run's retrain_defaults, else the search's max epochs
    top_k: int = 1
    train_on: str | None = None  # train | train+val | full; None: the run's retrain_defaults, else train
    seed: int = 42
    distill_from: str | None = None  # a teacher run directory
    data_dir: str | None = None
    space: str | None = None  # the space file of a run searched with one (never read from the run)
    time_budget: float | None = None  # --time-budget, seconds (fashion_tuner.budget)
    started: float | None = None  # when the command started (Unix seconds); the budget counts from here
    max_params: int | None = None  # only trials whose model has at most this many parameters (trial_*/model.json)
    cv: int | None = None  # --cv K: also K-fold cross-validate the best configuration (retrain.crossval)
    tta: str = "none"  # --tta: none | flip (fashion_tuner.tta), how the test images are scored
    patience: int | None = None  # EarlyStopping patience; None: the run's retrain_defaults, else the search's
    race: str = "auto"  # --race: auto | on | off, the pick against the space's defaults (retrain.race)

    def validate(self) -> "RetrainConfig":
        """UserError for values no retrain can use (checked before anything is loaded)."""
        if self.train_on is not None and self.train_on not in TRAIN_ON:
            raise UserError(f"--train-on must be one of {', '.join(TRAIN_ON)}, not {self.train_on!r}")
        if self.top_k < 1:
            raise UserError(f"--top-k must be at least 1, not {self.top_k}")
        if self.epochs is not None and self.epochs < 1:
            raise UserError(f"--epochs must be at least 1, not {self.epochs}")
        if self.patience is not None and self.patience < 1:
            raise UserError(f"--patience must be at least 1, not {self.patience}")
        from fashion_tuner.tta import TTA_CHOICES

        if self.tta not in TTA_CHOICES:
            raise UserError(f"--tta must be one of {', '.join(TTA_CHOICES)}, not {self.tta!r}")
        if self.max_params is not None and self.max_params < 1:
            raise UserError(f"--max-params must be at least 1, not {self.max_params}")
        from fashion_tuner.retrain.race import RACE_CHOICES

        if self.race not in RACE_CHOICES:
            raise UserError(f"--race must be one of {', '.join(RACE_CHOICES)}, not {self.race!r}")
        from fashion_tuner.cv import check_k

        check_k(self.cv)
        if self.distill_from and self.top_k > 1:
            raise UserError("--distill-from trains one student: leave out --top-k (the teacher may be an ensemble)")
        return self


def retrain_plan(search_args: dict, epochs: int | None, train_on: str | None,
                 patience: int | None = None) -> tuple[int, str, int]:
    """``(max_epochs, train_on, patience)`` for retraining: the flags when given, else the run's
    ``retrain_defaults`` (recorded by a default-budget search of a built-in space), else the search's own
    max epochs and patience and ``"train"``."""
    defaults = search_args.get("retrain_defaults") or {}
    return (int(epochs or defaults.get("epochs") or search_args.get("max_epochs") or DEFAULT_EPOCHS),
            train_on or defaults.get("train_on") or "train",
            int(patience or defaults.get("patience") or search_args.get("patience") or DEFAULT_PATIENCE))


def trial_epochs(trial: dict, fallback: int) -> int:
    """Epochs the trial's configuration needed to reach its best score, counted from the start of
    training: ``best_step + 1``, plus ``tuner/initial_epoch`` for a Hyperband continuation (whose
    ``best_step`` Keras Tuner counts from the continuation's own fit); else ``tuner/epochs``."""
    from fashion_tuner import tables

    values = (trial.get("hyperparameters") or {}).get("values", {})
    step = trial.get("best_step")
    if isinstance(step, int) and (tables.best_epoch(step, values) or 0) >= 1:  # search --cv: step may be < 0
        return tables.best_epoch(step, values)
    epochs = values.get("tuner/epochs")
    return int(epochs) if epochs else fallback


def resolve_space(run: dict, space: str | None) -> str:
    """The space to build the run's models with, importing nothing.

    A run directory is data: a built-in space named in run.json is ours to import, but a space
    *file* named there is code, and runs only when the user names it with ``--space PATH``.
    """
    recorded = run.get("space")
    if not recorded:
        raise UserError(f"{run['run_dir']}/run.json names no search space; the manifest is incomplete")
    if not spaces.is_space_file(recorded):
        if recorded not in spaces.BUILTIN_SPACES:
            raise UserError(f"run.json names space {recorded!r}, which is not a built-in space "
                            f"({', '.join(spaces.BUILTIN_SPACES)}); the manifest is damaged")
        if space and space != recorded:
            raise UserError(f"the run was searched with the built-in space {recorded}; leave out --space {space}")
        return recorded
    if not space:
        raise UserError(f"the run was searched with the space file {recorded}; code named in a run directory is "
                        "never run on its own: pass --space PATH naming the space file you trust")
    if not spaces.is_space_file(space):
        raise UserError(f"--space {space}: this run was searched with a space file; pass the path of that .py file")
    spaces.check_space_name(space)
    digest = run.get("space_sha256")
    if digest and spaces.space_digest(space) != digest:
        say(f"note: {space} is not byte-identical to the file the run was searched with; its build_model must "
            "accept the run's hyperparameters")
    return space
