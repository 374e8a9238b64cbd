"""The search: a Keras Tuner tuner over a search space, on a saved stratified split.

``run_search(cfg)`` loads the data, makes (or reloads) the split, writes ``run.json``,
builds a Keras Tuner ``Hyperband`` / ``BayesianOptimization`` / ``RandomSearch`` whose
project directory *is* the run directory, and runs it on the training and validation
arrays only: the held-out test images never reach the tuner. Every trial's fit has
EarlyStopping on ``val_accuracy`` (best weights restored) and a guard that fails the
trial on NaN/inf loss or when it runs past ``trial_timeout``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import io
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fashion_tuner import data as data_mod
from fashion_tuner import (backend, devices, distributed, epochlog, fsio, hints, kt_compat, locks, runs, spaces, splits,
                           tables)
from fashion_tuner.errors import UserError

TUNERS = ("hyperband", "bayesian", "random")
OBJECTIVE = "val_accuracy"
DIRECTION = "max"
DEFAULT_PATIENCE = 3
DEFAULT_MAX_FAILURES = 5
# Arguments that define a run: resuming with other values would mix two different searches, so a
# rerun that changes one is refused. Hyperband's oracle also keeps its own max_epochs and factor.
IDENTITY_ARGS = ("space", "tuner", "dataset", "subset", "val_source", "val_size", "seed", "max_epochs",
                 "executions_per_trial", "batch_size", "patience", "class_weight", "weights", "mixed_precision",
                 "deterministic")
HYPERBAND_IDENTITY_ARGS = ("factor",)
# Arguments a resume may change: the budget (max_trials may grow, never below the trials already
# run) and how trials are run. A change is applied and recorded in run.json's "changes".
BUDGET_ARGS = ("max_trials",)
RUNTIME_ARGS = ("max_failures", "trial_timeout", "trials_per_process", "strategy", "jit", "input_pipeline",
                "verbose", "data_dir", "skip_md5")
SUMMARY_TOP = 5
# Set by the CLI's parent process for each child of one search (cli._search_in_fresh_processes).
SEARCH_STARTED_ENV = "FASHION_TUNER_SEARCH_STARTED"
SEARCH_DONE_ENV = "FASHION_TUNER_SEARCH_DONE_AT_START"
SEARCH_BATCH_ENV = "FASHION_TUNER_SEARCH_BATCH"


class TrialBatchDone(Exception):
    """This process ran its ``trials_per_process`` trials; the run is saved and resumes in a fresh one."""


@dataclass
class SearchConfig:
    """Every argument of ``main.py search`` (names match the CLI flags)."""

    space: str = "mlp"
    tuner: str = "hyperband"
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
    skip_md5: bool = False
    weights: str | None = "auto"  # transfer backbones (the CLI's default too: see search_spaces/transfer.py)
    strategy: str = "auto"
    mixed_precision: str | None = None  # None | float16 | bfloat16 (devices.policy_for)
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
    command: list[str] = field(default_factory=list)

    @property
    def run_name(self) -> str:
        if self.name:
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


# ---------------------------------------------------------------- fitting


def resolve_class_weight(spec: str | None, y: np.ndarray, class_names: list[str] | None = None) -> dict | None:
    """``None``/"none" -> no weights; "balanced" -> inverse class frequency; a JSON file
    mapping class index (or class name) to weight. Returns ``{class_index: weight}``."""
    if spec in (None, "", "none"):
        return None
    classes = np.arange(int(y.max()) + 1)
    if spec == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        weights = compute_class_weight("balanced", classes=classes, y=y)
        return {int(c): float(w) for c, w in zip(classes, weights)}
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"--class-weight {spec}: not 'none', 'balanced' or an existing JSON file")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"--class-weight {spec} is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise UserError(f"--class-weight {spec} must hold an object like {{\"6\": 2.0, \"Shirt\": 2.0}}")
    names = {n: i for i, n in enumerate(class_names or [])}
    weights = {int(c): 1.0 for c in classes}
    for key, value in raw.items():
        index = names.get(key, None)
        if index is None:
            try:
                index = int(key)
            except ValueError:
                raise UserError(f"--class-weight {spec}: {key!r} is neither a class index nor a class name") from None
        if (index not in weights or isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value <= 0):
            raise UserError(f"--class-weight {spec}: entry {key!r}: {value!r} must map a class 0-"
                            f"{len(classes) - 1} to a positive number")
        weights[index] = float(value)
    return weights


def standard_callbacks(patience: int = DEFAULT_PATIENCE, timeout_s: float | None = None) -> list:
    """EarlyStopping on val_accuracy (best weights restored) and the NaN / timeout guard."""
    import keras

    return [
        keras.callbacks.EarlyStopping(monitor=OBJECTIVE, mode=DIRECTION, patience=patience,
                                      restore_best_weights=True),
        _trial_guard(timeout_s),
    ]


def _trial_guard(timeout_s: float | None):
    """A callback that fails the trial (Keras Tuner FailedTrialError) on NaN/inf loss or timeout."""
    import keras
    import keras_tuner

    class TrialGuard(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.started = None

        def on_train_begin(self, logs=None):
            self.started = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.model.stop_training = True
                raise keras_tuner.errors.FailedTrialError(
                    f"loss became {float(loss)} at batch {batch}: the model diverged "
                    "(learning rate too high?)")
            if timeout_s is not None and time.monotonic() - self.started > timeout_s:
                raise keras_tuner.errors.FailedTrialError(f"trial ran past --trial-timeout {timeout_s:g} s")

    return TrialGuard()


def fit_space_model(space, hp, model, x, y, *, validation_data, epochs: int, batch_size: int,
                    callbacks: list, class_weight: dict | None = None, verbose: int = 0,
                    input_pipeline: str = "auto", seed: int | None = None, **kwargs):
    """Fit ``model`` the way the space wants: its own ``fit(hp, model, ...)`` when it has one,
    else ``model.fit``; a ``batch_size`` hyperparameter overrides ``batch_size``. Returns History.

    ``batch_size`` is per replica: under a distribution strategy the global batch is
    ``batch_size x replicas``. A space's own ``fit`` always receives the arrays; only this
    default path may feed ``tf.data`` (``input_pipeline``, see devices.resolve_input_pipeline),
    shuffled with ``seed`` (default: drawn from NumPy, which each trial seeds).
    """
    if "batch_size" in hp.values:
        batch_size = int(hp.values["batch_size"])
    batch_size *= devices.replicas_of(model)
    fit_kwargs = dict(validation_data=validation_data, epochs=epochs, batch_size=batch_size,
                      callbacks=callbacks, class_weight=class_weight, verbose=verbose, **kwargs)
    custom_fit = getattr(space, "fit", None)
    if callable(custom_fit):
        return custom_fit(hp, model, x, y, **fit_kwargs)
    if devices.resolve_input_pipeline(input_pipeline) == "tfdata" and isinstance(x, np.ndarray):
        seed = int(np.random.randint(2 ** 31 - 1)) if seed is None else seed
        x = devices.make_dataset(x, y, batch_size, shuffle=fit_kwargs.pop("shuffle", True), seed=seed)
        y = None
        fit_kwargs.pop("batch_size")
        if (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2
                and isinstance(validation_data[0], np.ndarray)):
            fit_kwargs["validation_data"] = devices.make_dataset(*validation_data, batch_size, shuffle=False)
        fit_kwargs["shuffle"] = False  # the dataset shuffles itself
    return model.fit(x, y, **fit_kwargs)


def make_data_context(dataset: data_mod.Dataset, x_train: np.ndarray, results_dir: str | Path,
                      seed: int, weights: str | None = None, max_epochs: int | None = None) -> spaces.DataContext:
    """The facts model builders may read (see :func:`fashion_tuner.spaces.data_context`)."""
    digest = hashlib.md5("".join(sorted(dataset.md5.values())).encode()).hexdigest() if dataset.md5 else ""
    return spaces.DataContext(
        image_shape=tuple(x_train.shape[1:]), num_classes=data_mod.NUM_CLASSES,
        mean=float(x_train.mean()), std=float(x_train.std()), x_train=x_train, data_md5=digest,
        cache_dir=Path(results_dir) / "pretrained", weights=weights, seed=seed,
        # for schedules that need the length of training (cosine decay steps)
        extra={"train_size": int(len(x_train)), "max_epochs": int(max_epochs or 0) or None},
    )


# ---------------------------------------------------------------- the tuner


def _tuner_class(name: str):
    """A subclass of the chosen Keras Tuner tuner with our per-trial hooks."""
    import keras
    import keras_tuner as kt

    base = {"hyperband": kt.Hyperband, "bayesian": kt.BayesianOptimization, "random": kt.RandomSearch}[name]

    class FashionTuner(base):
        def __init__(self, *args, progress=None, seed=42, stop_after=0, budget_trials=None, **kwargs):
            self._progress = progress
            self._base_seed = seed
            self._stop_after = stop_after
            self._budget_trials = budget_trials
            self._trials_here = 0
            super().__init__(*args, seed=seed, **kwargs)
            kt_compat.defaults_first(self.oracle)

        def run_trial(self, trial, *args, **kwargs):
            # Each trial gets its own seed, so a resumed or repeated trial trains identically.
            keras.utils.set_random_seed(self._base_seed + int(trial.trial_id))
            # per-epoch history for the review's learning curves (Keras Tuner keeps only the best epoch)
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), epochlog.epoch_logger(self.get_trial_dir(trial.trial_id))]
            try:
                return super().run_trial(trial, *args, **kwargs)
            except Exception as exc:
                if fsio.is_disk_full(exc):  # stop the search: every further trial would fail the same way
                    raise kt_compat.fatal_error(f"No space left on device: {exc}", exc) from exc
                raise

        def on_trial_begin(self, trial):
            # libhdf5 crashes the process when a checkpoint meets a full disk: stop before that
            fsio.check_free_space(self.project_dir)
            super().on_trial_begin(trial)
            kt_compat.save_trial_start(self.get_trial_dir(trial.trial_id), trial)
            if self._progress:
                self._progress.begin(trial)

        def on_trial_end(self, trial):
            try:
                super().on_trial_end(trial)
            except RuntimeError as exc:
                if not kt_compat.is_too_many_failures(exc):
                    raise
                trial.save(str(Path(self.get_trial_dir(trial.trial_id)) / kt_compat.TRIAL_FILE))  # see kt_compat
                if self._progress:
                    self._progress.end(trial, self.oracle)
                raise
            keras.backend.clear_session()  # frees the model (and runs gc.collect) before the trim
            release_freed_memory()
            if self._progress:
                self._progress.end(trial, self.oracle)
            self._trials_here += 1
            if self._stop_after and self._trials_here >= self._stop_after and not self._budget_spent():
                raise TrialBatchDone()  # after super().on_trial_end saved the oracle: resumable

        def _budget_spent(self) -> bool:
            """True when the oracle has run every trial the budget allows, so a fresh process would
            only start, find nothing to do and exit (~7 s of imports and data loading). If the count
            is off, this process just runs the extra trials itself; nothing is lost either way."""
            oracle = self.oracle
            return bool(self._budget_trials and not kt_compat.retry_queue(oracle)
                        and not oracle.ongoing_trials and len(oracle.trials) >= self._budget_trials)

    return FashionTuner


@contextlib.contextmanager
def _frozen_heap():
    """Hide everything alive now (TensorFlow, Keras, the data: it lives as long as the search) from
    the garbage collector, so each of the four full collections Keras and Keras Tuner run per trial
    scans only the trial's own objects: milliseconds instead of ~0.2 s (benchmarks: overhead)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise, and RSS creeps up per trial)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def build_optimizer(model) -> None:
    """Create the optimizer's slot variables now, so a checkpoint's optimizer state loads into them.

    Keras Tuner's Hyperband continues a trial by loading its parent's checkpoint into a freshly built
    model. A freshly compiled optimizer has only its iteration counter, so Keras skipped the saved
    moments and step count ("Skipping variable loading for optimizer 'adam', because it has 1
    variables whereas the saved optimizer has 39 variables"): the continuation restarted Adam's
    moments and, worse, a step-based learning-rate schedule (cosine decay) from step 0. Built here,
    the optimizer state loads and the continuation resumes where the parent stopped.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and model.built and model.trainable_variables and not optimizer.built:
        optimizer.build(model.trainable_variables)


class SpaceHyperModel:
    """Adapter from a space module to Keras Tuner's HyperModel protocol."""

    def __new__(cls, space, defaults: dict):
        import keras_tuner as kt

        class _HyperModel(kt.HyperModel):
            def build(self, hp):
                import keras

                # Keras Tuner cleared the session just before this call, which reset the dtype policy
                # (--mixed-precision) and the JAX distribution to their defaults: set them again.
                devices.apply_trial_settings()
                model = space.build_model(hp)
                if not isinstance(model, keras.Model):
                    raise UserError(f"the space's build_model(hp) returned {type(model).__name__}, not a keras.Model; "
                                    "make it return the compiled model")
                devices.check_output_dtype(model)  # mixed precision needs a float32 output
                devices.apply_jit(model, defaults.get("jit", "auto"))
                if tables.PARENT_KEY in hp.values:
                    build_optimizer(model)
                return model

            def fit(self, hp, model, x, y, **kwargs):
                batch_size = kwargs.pop("batch_size", defaults["batch_size"])
                epochs = kwargs.pop("epochs", defaults["epochs"])
                return fit_space_model(space, hp, model, x, y, epochs=epochs, batch_size=batch_size,
                                       input_pipeline=defaults.get("input_pipeline", "auto"), **kwargs)

        return _HyperModel()


def expected_trials(cfg: SearchConfig) -> int | None:
    """How many trials the budget allows (Hyperband: one sweep of brackets, Keras Tuner's formulas)."""
    if cfg.tuner != "hyperband":
        return cfg.max_trials
    brackets, epochs = 0, cfg.max_epochs
    while epochs >= 1:
        epochs /= cfg.factor
        brackets += 1
    end_size = math.ceil(1 + math.log(cfg.max_epochs, cfg.factor))
    return sum(math.ceil(end_size / (b + 1) * cfg.factor ** (b - r))
               for b in range(brackets) for r in range(b + 1))


@dataclass(frozen=True)
class SearchClock:
    """When the user's search command started, across the child processes it runs (read from the
    environment the CLI's parent process sets, see :func:`search_clock`)."""

    started: float  # wall-clock seconds (time.time()) when the command started
    done_at_start: int  # trials the run had finished when the command started
    batch: int = 0  # which child process of the command this is (0: the first, or no children)


def search_clock(finished_now: int) -> SearchClock:
    """This process's clock: the parent's (``FASHION_TUNER_SEARCH_*`` variables) or a new one."""
    try:
        return SearchClock(float(os.environ[SEARCH_STARTED_ENV]), int(os.environ[SEARCH_DONE_ENV]),
                           int(os.environ.get(SEARCH_BATCH_ENV, 0)))
    except (KeyError, ValueError):
        return SearchClock(time.time(), finished_now, 0)


class Progress:
    """One line per finished trial: id, key hyperparameters, score, best so far, elapsed, ETA.

    Elapsed time and the ETA run on the command's clock, so they continue across the child
    processes of one search instead of restarting in each.
    """

    def __init__(self, total: int | None, stream=None, done_before: int = 0, clock: SearchClock | None = None):
        self.total = total
        self.stream = stream or sys.stdout
        self.clock = clock or SearchClock(time.time(), done_before)
        self.started = self.clock.started
        self.done_before = self.clock.done_at_start  # trials finished before this command: not in the ETA
        self.done = done_before
        self.trial_started = {}

    def begin(self, trial):
        self.trial_started[trial.trial_id] = time.monotonic()

    def end(self, trial, oracle):
        self.done += 1
        elapsed = time.time() - self.started
        score = trial.score
        best = oracle.get_best_trials(1)
        best_score = best[0].score if best else None
        status = trial.status if trial.status != "COMPLETED" else ""
        eta = ""
        if self.total:
            left = max(self.total - self.done, 0)
            ran = max(self.done - self.done_before, 1)
            eta = f"  eta {_duration(elapsed / ran * left)}" if left else ""
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        score_s = f"{score:.4f}" if score is not None else "-"
        best_s = f"{best_score:.4f}" if best_score is not None else "-"
        reason = f"  FAILED: {failure_reason(trial.message)}" if status else ""
        line = (f"[{count}] trial {trial.trial_id}  {OBJECTIVE}={score_s}  best={best_s}  "
                f"elapsed {_duration(elapsed)}{eta}  ")
        shown = trial_changes(trial.hyperparameters, tables.terminal_width() - len(line) - len(reason))
        print(f"{line}{shown}{reason}", file=self.stream, flush=True)


def trial_changes(hps, width: int) -> str:
    """What sets a trial apart, in ``width`` characters: "continues trial P (epochs a->b)" for a Hyperband
    continuation, else the values that differ from the space's defaults (``hps``: HyperParameters)."""
    values = hps.values
    parent = values.get(tables.PARENT_KEY)
    if parent:
        return f"continues trial {parent} (epochs {values.get('tuner/initial_epoch')}->{values.get('tuner/epochs')})"
    defaults = {hp.name: hp.default for hp in hps.space}
    return tables.short_summary(tables.changed_from_defaults(values, defaults), max(width, 30))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def failure_reason(message: str | None) -> str:
    """The meaningful line of a trial's stored traceback: the last one, unless it is TensorFlow's
    graph-node trailer (``[[{{node ...}}]]``); a label outside the model's outputs is said briefly."""
    if not message:
        return "unknown reason"
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("[[") and "{{node" not in ln] or lines or ["unknown reason"]
    label = "Received a label value"  # TensorFlow's text for a model with fewer outputs than classes
    if label in useful[-1]:
        return useful[-1][useful[-1].index(label):].split(".  ")[0]
    return useful[-1]


# ---------------------------------------------------------------- the run


def versions() -> dict:
    """Versions for run.json: the Keras backend and its framework's version (TensorFlow is not
    imported on the other backends), Keras, Keras Tuner, NumPy, Python and this package."""
    import keras
    import keras_tuner

    name = backend.current()
    return {"python": platform.python_version(), "backend": name, name: backend.version(name),
            "keras": keras.__version__, "keras_tuner": keras_tuner.__version__, "numpy": np.__version__,
            "fashion_tuner": _own_version()}


def _own_version() -> str:
    from fashion_tuner import __version__

    return __version__


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
        if any(run_dir.iterdir()):
            raise UserError(f"{run_dir} exists but is not a fashion_tuner run; pick another --name "
                            "(--overwrite only deletes runs made by this tool)")
        return RunPlan(run_dir)
    previous = runs.read_run(run_dir)
    changes = resume_changes(previous, cfg, run_dir)
    repairs = kt_compat.check_project(run_dir) if check_files else []
    return RunPlan(run_dir, previous, repairs=repairs, changes=changes)


def identity(cfg: SearchConfig) -> dict:
    keys = IDENTITY_ARGS + (HYPERBAND_IDENTITY_ARGS if cfg.tuner == "hyperband" else ())
    out = {k: getattr(cfg, k) for k in keys}
    out["space"] = spaces.space_reference(cfg.space)
    return out


def resume_changes(previous: dict, cfg: SearchConfig, run_dir: Path) -> list[dict]:
    """Compare a rerun's arguments with the run's: refuse (UserError) a change of identity or a budget
    below what already ran; return the allowed changes as ``{"arg", "from", "to"}`` dicts."""
    before = dict(previous.get("args") or {}, space=previous.get("space"))
    current = identity(cfg)
    # keys an older run.json lacks are not compared: there is nothing to compare them with
    diffs = [f"{k} {before[k]!r} -> {v!r}" for k, v in current.items() if k in before and before[k] != v]
    if diffs:
        raise UserError(f"run {cfg.run_name} already holds a different search ({'; '.join(diffs)}); "
                        "use another --name, or --overwrite to delete it and start over")
    changes = []
    if cfg.tuner != "hyperband" and before.get("max_trials") not in (None, cfg.max_trials):
        ran = len(list(run_dir.glob("trial_*")))
        if cfg.max_trials < ran:
            raise UserError(f"--max-trials {cfg.max_trials} is below the {ran} trials run {cfg.run_name} already ran; "
                            f"pass --max-trials {before['max_trials']} to resume it, or more to extend it")
        changes.append({"arg": "max_trials", "from": before["max_trials"], "to": cfg.max_trials})
    for key in RUNTIME_ARGS:
        if key in before and before[key] != getattr(cfg, key):
            changes.append({"arg": key, "from": before[key], "to": getattr(cfg, key)})
    return changes


def build_tuner(cfg: SearchConfig, space, run_dir: Path, progress: Progress | None, strategy=None):
    import keras_tuner as kt

    kt_compat.set_debug(cfg.debug)  # failure reasons go to trial.json and our progress lines instead

    hypermodel = SpaceHyperModel(space, {"batch_size": cfg.batch_size, "epochs": cfg.max_epochs, "jit": cfg.jit,
                                         "input_pipeline": cfg.input_pipeline})
    common = dict(
        hypermodel=hypermodel, objective=kt.Objective(OBJECTIVE, DIRECTION), seed=cfg.seed,
        executions_per_trial=cfg.executions_per_trial, max_consecutive_failed_trials=cfg.max_failures,
        directory=str(run_dir.parent), project_name=run_dir.name, overwrite=False,
        distribution_strategy=strategy,
    )
    tuner_cls = _tuner_class(cfg.tuner)
    batches = dict(progress=progress, stop_after=cfg.trials_per_process, budget_trials=expected_trials(cfg))
    if cfg.tuner == "hyperband":
        return tuner_cls(max_epochs=cfg.max_epochs, factor=cfg.factor, hyperband_iterations=1, **batches, **common)
    return tuner_cls(max_trials=cfg.max_trials, **batches, **common)


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
    """The top-N table as text (see :func:`top_table`) and the counts/best for run.json."""
    rows = trial_table(run_dir)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    completed = [r for r in rows if r["status"] == "COMPLETED" and r["score"] is not None]
    best = {"trial_id": completed[0]["trial_id"], "score": completed[0]["score"]} if completed else None
    table = ""
    if completed:
        stored = runs.read_trials(run_dir)
        table = top_table(completed, tables.space_defaults(stored[0].get("hyperparameters", {}).get("space")), top)
    return table, {"counts": counts, "best": best, "failed": [r for r in rows if r["status"] in ("FAILED", "INVALID")],
                   "best_hyperparameters": completed[0]["hyperparameters"] if completed else None}


def run_search(cfg: SearchConfig, stream=None) -> Path:
    """Run (or resume) a search; returns the run directory. Raises UserError on bad input.

    Holds the run's lock (:mod:`fashion_tuner.locks`) for its whole life, except as a distributed
    worker. Raises ``KeyboardInterrupt`` through after marking the run interrupted.
    """
    stream = stream or sys.stdout
    if cfg.backend:
        backend.select(cfg.backend)  # before Keras loads; UserError when it already runs on another
    role = distributed.resolve_role(cfg.role, cfg.oracle_address, cfg.worker_id)
    run_dir = runs.run_dir_for(cfg.results_dir, cfg.run_name)
    if role is not None and not role.is_chief:
        # the chief makes the split and run.json and holds the lock; a worker reads them (and never writes them)
        distributed.wait_for_chief(run_dir, role)
        plan = prepare_run_dir(dataclasses.replace(cfg, overwrite=False), check_files=False)
        return _search(cfg, role, plan, stream)
    fsio.check_free_space(run_dir)
    with locks.RunLock(run_dir, "search"):
        plan = prepare_run_dir(cfg)
        if role is not None:
            distributed.check_port_free(role)
        return _search(cfg, role, plan, stream)


def _load_search_data(cfg: SearchConfig, plan: RunPlan):
    """The data set, the split (new or the run's own) and the class weights; refuses other data on resume."""
    dataset = data_mod.load_dataset(cfg.dataset, cfg.data_dir, verify_md5=not cfg.skip_md5)
    if plan.previous:
        recorded = (plan.previous.get("data") or {}).get("md5") or {}
        changed = sorted(f for f in set(recorded) | set(dataset.md5) if recorded.get(f) != dataset.md5.get(f))
        if recorded and changed:
            raise UserError(f"the data in {dataset.source} is not the data run {cfg.run_name} was searched on "
                            f"({changed[0]}: MD5 {dataset.md5.get(changed[0])}, the run recorded "
                            f"{recorded.get(changed[0])}); pass --data-dir with the original files, or use another --name")
        split = splits.load_split(plan.run_dir / runs.SPLIT_FILE)
    else:
        split = splits.make_split(dataset.y_train, dataset.y_test, val_source=cfg.val_source,
                                  val_size=cfg.val_size, subset=cfg.subset, seed=cfg.seed)
    (x_tr, y_tr), (x_val, y_val), _ = splits.apply_split(dataset.x_train, dataset.y_train,
                                                          dataset.x_test, dataset.y_test, split)
    class_weight = resolve_class_weight(cfg.class_weight, y_tr, dataset.class_names)
    return dataset, split, (runs.to_model_input(x_tr), y_tr), (runs.to_model_input(x_val), y_val), class_weight


def _apply_plan(plan: RunPlan, stream) -> None:
    """Write what the plan decided: delete an overwritten run (only its own entries), make repairs."""
    if plan.overwrite is not None:
        delete, keep = plan.overwrite
        print(f"--overwrite: deleting run {plan.run_dir}: {', '.join(p.name for p in delete) or 'nothing'}"
              + (f"; keeping what fashion_tuner did not write: {', '.join(p.name for p in keep)}" if keep else ""),
              file=stream, flush=True)
        for path in delete:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for repair in plan.repairs:
        repair.apply()
        print(f"repaired: {repair.what}", file=stream, flush=True)
    plan.run_dir.mkdir(parents=True, exist_ok=True)


def _new_manifest(cfg: SearchConfig, plan: RunPlan, dataset, split, class_weight, device_info, role) -> dict:
    previous = plan.previous or {}
    args = {k: v for k, v in asdict(cfg).items() if k not in ("command", "debug")}
    if plan.previous:  # how retrain-best trains the winner was decided when the run started
        args["retrain_defaults"] = (previous.get("args") or {}).get("retrain_defaults")
    now = _now()
    return {
        "name": plan.run_dir.name, "space": spaces.space_reference(cfg.space), "tuner": cfg.tuner,
        "space_sha256": spaces.space_digest(cfg.space),
        "objective": OBJECTIVE, "direction": DIRECTION, "args": args,
        "command": cfg.command or sys.argv, "versions": versions(),
        "data": {"dataset": dataset.name, "source": dataset.source, "data_dir": cfg.data_dir,
                 "md5": dataset.md5, "skip_md5": cfg.skip_md5},
        "split": {"val_source": split.val_source, "val_size": cfg.val_size, "subset": cfg.subset,
                  "seed": split.seed, "sizes": split.sizes()},
        "class_weight": class_weight, "devices": device_info,
        "backend": {"name": device_info["backend"], "version": device_info["backend_version"]},
        "distributed": role.as_dict() if role else None,
        "max_consecutive_failed_trials": cfg.max_failures,
        "changes": list(previous.get("changes") or []) + [dict(c, at=now) for c in plan.changes],
        "started": previous.get("started", now), "resumed": now if plan.previous else None,
        "finished": None, "status": "running", "trials": {}, "best": None,
    }


def trial_seconds(run_dir: Path) -> list[float]:
    """Wall seconds of each finished trial of a run, from the start copy and the final trial.json."""
    out = []
    for start in sorted(Path(run_dir).glob(f"trial_*/{kt_compat.TRIAL_START_FILE}")):
        end = start.with_name(kt_compat.TRIAL_FILE)
        try:
            if json.loads(end.read_text()).get("status") == "COMPLETED":
                out.append(end.stat().st_mtime - start.stat().st_mtime)
        except (OSError, ValueError):
            continue
    return out


def _budget_left(cfg: SearchConfig, run_dir: Path, finished: int) -> str:
    """"; N trials left, about T at S per trial so far" once trials of this run have been timed."""
    seconds = trial_seconds(run_dir)
    total = expected_trials(cfg)
    if not seconds or not total:
        return ""
    per = float(np.median(seconds))
    left = max(total - finished, 0)
    return f"; {left} trial(s) left, about {_duration(per * left)} at {per:.0f} s per trial so far"


def _banner(cfg: SearchConfig, plan: RunPlan, dataset, split, role, stream) -> None:
    total = expected_trials(cfg)
    sizes = split.sizes()
    budget = (f"max_epochs {cfg.max_epochs}, factor {cfg.factor} (~{total} trials)" if cfg.tuner == "hyperband"
              else f"{cfg.max_trials} trials of up to {cfg.max_epochs} epochs")
    if plan.previous:
        finished = sum(t.get("status") not in (None, "RUNNING") for t in runs.read_trials(plan.run_dir))
        budget += _budget_left(cfg, plan.run_dir, finished)
        if plan.previous.get("status") == "finished" and not plan.changes:
            print(f"run {plan.run_dir} already finished ({finished} trials): nothing left to run (a larger "
                  "--max-trials extends a random/Bayesian search; --overwrite starts over)", file=stream, flush=True)
            return
    print(f"{'Resuming' if plan.previous else 'Starting'} {cfg.tuner} search of space {cfg.space} into {plan.run_dir}\n"
          f"data: {dataset.name} from {dataset.source}; train {sizes['train']}, val {sizes['val']} "
          f"(from {split.val_source}), held-out test {sizes['test']} (not used by the search)\n"
          f"budget: {budget}; EarlyStopping(val_accuracy, patience {cfg.patience}); search stops after "
          f"{cfg.max_failures} consecutive failed trials", file=stream, flush=True)
    for change in plan.changes:
        print(f"changed on resume: {change['arg']} {change['from']!r} -> {change['to']!r} (recorded in run.json)",
              file=stream, flush=True)
    if role is not None:
        print(f"chief: serving the oracle on {role.address} (no authentication: trusted networks only); "
              f"start workers with the same arguments plus --role worker --oracle-address {role.address} "
              f"--worker-id N; this returns when the budget is spent and every worker has finished",
              file=stream, flush=True)


def _search(cfg: SearchConfig, role, plan: RunPlan, stream) -> Path:
    run_dir = plan.run_dir
    dataset, split, train, val, class_weight = _load_search_data(cfg, plan)
    devices.import_tensorflow_quietly()
    kt_compat.install_atomic_json()
    space = spaces.load_space(cfg.space)  # imports keras; a broken space file fails before anything is written
    finished_before = (sum(t.get("status") not in (None, "RUNNING") for t in runs.read_trials(run_dir))
                       if plan.previous else 0)
    clock = search_clock(finished_before)
    said = stream if clock.batch == 0 else io.StringIO()  # later child processes do not repeat the header
    device_info = devices.setup(cfg.strategy, cfg.mixed_precision, cfg.deterministic, stream=said,
                                jit=cfg.jit, input_pipeline=cfg.input_pipeline)
    spaces.set_data_context(make_data_context(dataset, train[0], cfg.results_dir, cfg.seed, cfg.weights,
                                              cfg.max_epochs))
    if role is not None and not role.is_chief:
        return _run_worker(cfg, role, space, run_dir, train, val, class_weight, stream)
    _apply_plan(plan, stream)
    if not plan.previous:
        splits.save_split(run_dir / runs.SPLIT_FILE, split)
    manifest = _new_manifest(cfg, plan, dataset, split, class_weight, device_info, role)
    runs.write_json(run_dir / runs.RUN_JSON, manifest)
    _banner(cfg, plan, dataset, split, role, said)
    progress = Progress(expected_trials(cfg), stream, finished_before, clock)
    status, stop_error = "finished", None
    try:
        with distributed.role_environment(role), _frozen_heap():
            with contextlib.redirect_stdout(io.StringIO()):  # Keras Tuner's "Reloading Tuner from ...": our header says it
                tuner = build_tuner(cfg, space, run_dir, progress, strategy=devices.strategy_for(cfg.strategy))
            tuner.search(*train, validation_data=val, epochs=cfg.max_epochs,
                         batch_size=cfg.batch_size, class_weight=class_weight,
                         callbacks=standard_callbacks(cfg.patience, cfg.trial_timeout), verbose=cfg.verbose)
    except TrialBatchDone:
        summary = summarize(run_dir)[1]
        manifest.update(trials=summary["counts"], best=summary["best"])  # still "running": the next process resumes
        runs.write_json(run_dir / runs.RUN_JSON, manifest)
        raise
    except KeyboardInterrupt:
        _finish(run_dir, manifest, "interrupted")
        raise
    except Exception as exc:
        if fsio.is_disk_full(exc):
            _finish_quietly(run_dir, manifest, "interrupted", "no space left on device")
            raise fsio.disk_full_error(run_dir) from None
        if kt_compat.is_too_many_failures(exc):
            status, stop_error = "failed", exc
        else:
            _finish_quietly(run_dir, manifest, "failed", f"{type(exc).__name__}: {exc}")
            raise
    return _report(cfg, run_dir, manifest, status, stop_error, stream, clock)


def _report(cfg: SearchConfig, run_dir: Path, manifest: dict, status: str, stop_error, stream,
            clock: SearchClock) -> Path:
    """Mark the run finished (or failed), write best_hyperparameters.json and print the summary."""
    table, summary = _finish(run_dir, manifest, status)
    failed = summary["failed"]
    if summary["best"] is None:
        reasons = sorted({r["reason"] for r in failed}) or ["no trial ran"]
        raise UserError(f"every trial failed ({len(failed)}): " + " | ".join(reasons))
    fsio.atomic_write_text(run_dir / runs.BEST_HP_FILE, json.dumps(summary["best_hyperparameters"], indent=2) + "\n")
    print(f"\nTop {SUMMARY_TOP} trials ({summary['counts'].get('COMPLETED', 0)} completed, "
          f"{len(failed)} failed) in {run_dir}:\n{table}", file=stream)
    for r in failed:
        print(f"trial {r['trial_id']} failed: {r['reason']}", file=stream)
    print(f"best {OBJECTIVE} {summary['best']['score']:.4f} (trial {summary['best']['trial_id']}); "
          f"hyperparameters in {run_dir / runs.BEST_HP_FILE}\n"
          f"wall time of this search command: {_duration(time.time() - clock.started)}\n"
          f"next: {hints.command('retrain-best', str(run_dir))}", file=stream, flush=True)
    if stop_error is not None:
        raise UserError(f"search stopped after {cfg.max_failures} consecutive failed trials (--max-failures); "
                        "reasons: " + " | ".join(sorted({r['reason'] for r in failed})))
    return run_dir


def _run_worker(cfg: SearchConfig, role, space, run_dir: Path, train: tuple, val: tuple,
                class_weight: dict | None, stream) -> Path:
    """Run trials the chief hands out until it says stop; writes trial folders and tuner<ID>.json only."""
    print(f"worker {role.tuner_id}: running trials from the chief at {role.address} into {run_dir}",
          file=stream, flush=True)

    class WorkerProgress(Progress):
        def end(self, trial, oracle):
            # the chief scores the trial; this worker's copy has no score
            scored = oracle.get_trial(trial.trial_id)
            trial.score, trial.status = scored.score, scored.status
            super().end(trial, oracle)

    progress = WorkerProgress(None, stream)
    with distributed.role_environment(role), _frozen_heap():
        tuner = build_tuner(cfg, space, run_dir, progress, strategy=devices.strategy_for(cfg.strategy))
        try:
            tuner.search(*train, validation_data=val, epochs=cfg.max_epochs, batch_size=cfg.batch_size,
                         class_weight=class_weight, callbacks=standard_callbacks(cfg.patience, cfg.trial_timeout),
                         verbose=cfg.verbose)
        except RuntimeError as exc:
            if not kt_compat.is_too_many_failures(exc):
                raise
            raise UserError(f"worker {role.tuner_id} stopped after {cfg.max_failures} consecutive failed trials "
                            "(--max-failures); see the trial folders for the reasons") from None
    print(f"worker {role.tuner_id}: done ({progress.done} trial(s) run here); the chief writes the summary",
          file=stream, flush=True)
    return run_dir


def _finish(run_dir: Path, manifest: dict, status: str):
    table, summary = summarize(run_dir)
    manifest.update(status=status, finished=_now(), trials=summary["counts"], best=summary["best"])
    runs.write_json(run_dir / runs.RUN_JSON, manifest)
    return table, summary


def _finish_quietly(run_dir: Path, manifest: dict, status: str, reason: str) -> None:
    """Mark the run stopped on the way out of an error; a second error here (a full disk) must not hide the first."""
    try:
        _finish(run_dir, manifest, status)
        runs.mark_stopped(run_dir, status, reason)
    except Exception:  # the original error is what the user needs to see
        pass
