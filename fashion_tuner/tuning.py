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
import math
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fashion_tuner import data as data_mod
from fashion_tuner import backend, devices, distributed, runs, spaces, splits
from fashion_tuner.errors import UserError

TUNERS = ("hyperband", "bayesian", "random")
OBJECTIVE = "val_accuracy"
DIRECTION = "max"
DEFAULT_PATIENCE = 3
DEFAULT_MAX_FAILURES = 5
# Arguments that define a run: resuming with other values would mix two different searches.
IDENTITY_ARGS = ("space", "tuner", "dataset", "subset", "val_source", "val_size", "seed")
SUMMARY_TOP = 5


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
    weights: str | None = None
    strategy: str = "none"
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
        if index not in weights or not isinstance(value, (int, float)) or value <= 0:
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
            defaults_first(self.oracle)

        def run_trial(self, trial, *args, **kwargs):
            # Each trial gets its own seed, so a resumed or repeated trial trains identically.
            keras.utils.set_random_seed(self._base_seed + int(trial.trial_id))
            return super().run_trial(trial, *args, **kwargs)

        def on_trial_begin(self, trial):
            super().on_trial_begin(trial)
            if self._progress:
                self._progress.begin(trial)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
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
            return bool(self._budget_trials and not getattr(oracle, "_retry_queue", None)
                        and not oracle.ongoing_trials and len(oracle.trials) >= self._budget_trials)

    return FashionTuner


def defaults_first(oracle) -> None:
    """Make a new search's first trial the space's defaults (a known-good model), then sample.

    Keras Tuner's Hyperband, random and Bayesian oracles draw every trial at random
    (``Oracle._random_values``), so a search could end without ever trying the configuration the
    space's author chose as its default. Only the very first trial of a run is affected; resumed
    runs and the chief/worker oracle client are left as they are.
    """
    sample = getattr(oracle, "_random_values", None)
    if sample is None:
        return
    import keras_tuner as kt

    def values():
        if oracle.trials:
            return sample()
        hps = kt.HyperParameters()
        for hp in oracle.hyperparameters.space:
            hps.merge([hp])
            if hps.is_active(hp):
                hps.values[hp.name] = hp.default
        oracle._duplicate(hps.values)  # registers them, so a random draw does not repeat them
        return hps.values

    oracle._random_values = values


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


class SpaceHyperModel:
    """Adapter from a space module to Keras Tuner's HyperModel protocol."""

    def __new__(cls, space, defaults: dict):
        import keras_tuner as kt

        class _HyperModel(kt.HyperModel):
            def build(self, hp):
                # Keras Tuner cleared the session just before this call, which reset the dtype policy
                # (--mixed-precision) and the JAX distribution to their defaults: set them again.
                devices.apply_trial_settings()
                model = space.build_model(hp)
                devices.check_output_dtype(model)  # mixed precision needs a float32 output
                devices.apply_jit(model, defaults.get("jit", "auto"))
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


class Progress:
    """One line per finished trial: id, key hyperparameters, score, best so far, elapsed, ETA."""

    def __init__(self, total: int | None, stream=None, done_before: int = 0):
        self.total = total
        self.stream = stream or sys.stdout
        self.started = time.monotonic()
        self.done_before = done_before  # trials a previous process of this run finished
        self.done = done_before
        self.trial_started = {}

    def begin(self, trial):
        self.trial_started[trial.trial_id] = time.monotonic()

    def end(self, trial, oracle):
        self.done += 1
        elapsed = time.monotonic() - self.started
        score = trial.score
        best = oracle.get_best_trials(1)
        best_score = best[0].score if best else None
        hps = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in list(hps.items())[:6])
        status = trial.status if trial.status != "COMPLETED" else ""
        eta = ""
        if self.total:
            left = max(self.total - self.done, 0)
            eta = f"  eta {_duration(elapsed / (self.done - self.done_before) * left)}" if left else ""
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        score_s = f"{score:.4f}" if score is not None else "-"
        best_s = f"{best_score:.4f}" if best_score is not None else "-"
        reason = f"  FAILED: {failure_reason(trial.message)}" if status else ""
        print(f"[{count}] trial {trial.trial_id}  {OBJECTIVE}={score_s}  best={best_s}  "
              f"elapsed {_duration(elapsed)}{eta}  {shown}{reason}", file=self.stream, flush=True)


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def failure_reason(message: str | None) -> str:
    """The last meaningful line of a trial's stored traceback."""
    if not message:
        return "unknown reason"
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown reason"


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


def prepare_run_dir(cfg: SearchConfig) -> tuple[Path, dict | None]:
    """Check the run directory: a new run, a resumable one, or one we must not touch.

    Returns ``(run_dir, previous run.json or None)``; nothing is written here.
    """
    run_dir = runs.run_dir_for(cfg.results_dir, cfg.run_name)
    if not run_dir.exists() or cfg.overwrite:
        return run_dir, None
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} exists and is not a directory; pick another --name")
    if not (run_dir / runs.RUN_JSON).is_file():
        if any(run_dir.iterdir()):
            raise UserError(f"{run_dir} exists but is not a fashion_tuner run; pick another --name "
                            "or pass --overwrite to delete it and start over")
        return run_dir, None
    previous = runs.read_run(run_dir)
    current = identity(cfg)
    before = {k: previous.get("args", {}).get(k) for k in IDENTITY_ARGS}
    before["space"] = previous.get("space")
    diffs = [f"{k} {before[k]!r} -> {current[k]!r}" for k in IDENTITY_ARGS if before[k] != current[k]]
    if diffs:
        raise UserError(f"run {cfg.run_name} already holds a different search ({'; '.join(diffs)}); "
                        "use another --name, or --overwrite to delete it and start over")
    return run_dir, previous


def identity(cfg: SearchConfig) -> dict:
    out = {k: getattr(cfg, k) for k in IDENTITY_ARGS}
    out["space"] = spaces.space_reference(cfg.space)
    return out


def build_tuner(cfg: SearchConfig, space, run_dir: Path, progress: Progress | None, strategy=None):
    import keras_tuner as kt
    from keras_tuner.src import config as kt_config

    kt_config.DEBUG = cfg.debug  # failure reasons go to trial.json and our progress lines instead

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
    """Every trial of a run directory as a dict (id, status, score, best_step, hyperparameters, reason)."""
    rows = [{"trial_id": t.get("trial_id"), "status": t.get("status"), "score": t.get("score"),
             "best_step": t.get("best_step"), "hyperparameters": t.get("hyperparameters", {}).get("values", {}),
             "reason": failure_reason(t.get("message")) if t.get("status") in ("FAILED", "INVALID") else ""}
            for t in runs.read_trials(run_dir)]
    sign = -1 if direction == "max" else 1
    rows.sort(key=lambda r: (r["score"] is None, sign * (r["score"] or 0)))
    return rows


def summarize(run_dir: Path, top: int = SUMMARY_TOP) -> tuple[str, dict]:
    """The top-N table as text and the counts/best for run.json."""
    import pandas as pd

    rows = trial_table(run_dir)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    completed = [r for r in rows if r["status"] == "COMPLETED" and r["score"] is not None]
    best = {"trial_id": completed[0]["trial_id"], "score": completed[0]["score"]} if completed else None
    table = ""
    if completed:
        frame = pd.DataFrame([{"trial": r["trial_id"], OBJECTIVE: round(r["score"], 4),
                               "epoch": (r["best_step"] or 0) + 1,
                               **{k: v for k, v in r["hyperparameters"].items() if not k.startswith("tuner/")}}
                              for r in completed[:top]])
        with pd.option_context("display.max_columns", 30, "display.width", 200, "display.float_format", "{:.4g}".format):
            table = frame.to_string(index=False)
    return table, {"counts": counts, "best": best, "failed": [r for r in rows if r["status"] in ("FAILED", "INVALID")],
                   "best_hyperparameters": completed[0]["hyperparameters"] if completed else None}


def run_search(cfg: SearchConfig, stream=None) -> Path:
    """Run (or resume) a search; returns the run directory. Raises UserError on bad input.

    Raises ``KeyboardInterrupt`` through after marking the run interrupted.
    """
    stream = stream or sys.stdout
    if cfg.backend:
        backend.select(cfg.backend)  # before Keras loads; UserError when it already runs on another
    role = distributed.resolve_role(cfg.role, cfg.oracle_address, cfg.worker_id)
    worker = role is not None and not role.is_chief
    if worker:  # the chief makes the split and run.json; a worker reads them (and never writes them)
        distributed.wait_for_chief(runs.run_dir_for(cfg.results_dir, cfg.run_name), role)
        run_dir, previous = prepare_run_dir(dataclasses.replace(cfg, overwrite=False))
    else:
        run_dir, previous = prepare_run_dir(cfg)
        if role is not None:
            distributed.check_port_free(role)
    dataset = data_mod.load_dataset(cfg.dataset, cfg.data_dir, verify_md5=not cfg.skip_md5)
    if previous:
        split = splits.load_split(run_dir / runs.SPLIT_FILE)
    else:
        split = splits.make_split(dataset.y_train, dataset.y_test, val_source=cfg.val_source,
                                  val_size=cfg.val_size, subset=cfg.subset, seed=cfg.seed)
    (x_tr, y_tr), (x_val, y_val), _ = splits.apply_split(dataset.x_train, dataset.y_train,
                                                          dataset.x_test, dataset.y_test, split)
    class_weight = resolve_class_weight(cfg.class_weight, y_tr, dataset.class_names)
    x_tr, x_val = runs.to_model_input(x_tr), runs.to_model_input(x_val)

    devices.import_tensorflow_quietly()
    space = spaces.load_space(cfg.space)  # imports keras; a broken space file fails before anything is written
    device_info = devices.setup(cfg.strategy, cfg.mixed_precision, cfg.deterministic, stream=stream,
                                jit=cfg.jit, input_pipeline=cfg.input_pipeline)
    spaces.set_data_context(make_data_context(dataset, x_tr, cfg.results_dir, cfg.seed, cfg.weights,
                                                cfg.max_epochs))

    if worker:
        return _run_worker(cfg, role, space, run_dir, (x_tr, y_tr), (x_val, y_val), class_weight, stream)
    if cfg.overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not previous:
        splits.save_split(run_dir / runs.SPLIT_FILE, split)
    manifest = {
        "name": run_dir.name, "space": spaces.space_reference(cfg.space), "tuner": cfg.tuner,
        "objective": OBJECTIVE, "direction": DIRECTION,
        "args": {k: v for k, v in asdict(cfg).items() if k not in ("command", "debug")},
        "command": cfg.command or sys.argv, "versions": versions(),
        "data": {"dataset": dataset.name, "source": dataset.source, "data_dir": cfg.data_dir,
                 "md5": dataset.md5, "skip_md5": cfg.skip_md5},
        "split": {"val_source": split.val_source, "val_size": cfg.val_size, "subset": cfg.subset,
                  "seed": split.seed, "sizes": split.sizes()},
        "class_weight": class_weight, "devices": device_info,
        "backend": {"name": device_info["backend"], "version": device_info["backend_version"]},
        "distributed": role.as_dict() if role else None,
        "max_consecutive_failed_trials": cfg.max_failures,
        "started": (previous or {}).get("started", _now()), "resumed": _now() if previous else None,
        "finished": None, "status": "running", "trials": {}, "best": None,
    }
    runs.write_json(run_dir / runs.RUN_JSON, manifest)

    total = expected_trials(cfg)
    sizes = split.sizes()
    print(f"{'Resuming' if previous else 'Starting'} {cfg.tuner} search of space {cfg.space} into {run_dir}\n"
          f"data: {dataset.name} from {dataset.source}; train {sizes['train']}, val {sizes['val']} "
          f"(from {split.val_source}), held-out test {sizes['test']} (not used by the search)\n"
          f"budget: {'max_epochs %d, factor %d (~%d trials)' % (cfg.max_epochs, cfg.factor, total) if cfg.tuner == 'hyperband' else '%d trials of up to %d epochs' % (cfg.max_trials, cfg.max_epochs)}; "
          f"EarlyStopping(val_accuracy, patience {cfg.patience}); search stops after {cfg.max_failures} "
          f"consecutive failed trials", file=stream, flush=True)

    if role is not None:
        print(f"chief: serving the oracle on {role.address} (no authentication: trusted networks only); "
              f"start workers with the same arguments plus --role worker --oracle-address {role.address} "
              f"--worker-id N; this returns when the budget is spent and every worker has finished",
              file=stream, flush=True)
    finished_before = sum(t.get("status") not in (None, "RUNNING") for t in runs.read_trials(run_dir)) if previous else 0
    progress = Progress(total, stream, finished_before)
    status, stop_error = "finished", None
    try:
        with distributed.role_environment(role), _frozen_heap():
            tuner = build_tuner(cfg, space, run_dir, progress, strategy=devices.strategy_for(cfg.strategy))
            tuner.search(x_tr, y_tr, validation_data=(x_val, y_val), epochs=cfg.max_epochs,
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
    except RuntimeError as exc:
        if "consecutive failures" not in str(exc):
            _finish(run_dir, manifest, "failed")
            raise
        status, stop_error = "failed", exc
    table, summary = _finish(run_dir, manifest, status)
    failed = summary["failed"]
    if summary["best"] is None:
        reasons = sorted({r["reason"] for r in failed}) or ["no trial ran"]
        raise UserError(f"every trial failed ({len(failed)}): " + " | ".join(reasons))
    (run_dir / runs.BEST_HP_FILE).write_text(json.dumps(summary["best_hyperparameters"], indent=2) + "\n")
    print(f"\nTop {SUMMARY_TOP} trials ({summary['counts'].get('COMPLETED', 0)} completed, "
          f"{len(failed)} failed) in {run_dir}:\n{table}", file=stream)
    for r in failed:
        print(f"trial {r['trial_id']} failed: {r['reason']}", file=stream)
    print(f"best {OBJECTIVE} {summary['best']['score']:.4f} (trial {summary['best']['trial_id']}); "
          f"hyperparameters in {run_dir / runs.BEST_HP_FILE}\n"
          f"next: python main.py retrain-best {run_dir}", file=stream, flush=True)
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
            if "consecutive failures" not in str(exc):
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
