"""Our Keras Tuner tuner: one ``kt.Tuner`` subclass taking any algorithm's oracle, with per-trial hooks (seeds, disk checks,
per-epoch logs, progress, batches of trials per process), and the adapter from a space module to
Keras Tuner's HyperModel."""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import time
from pathlib import Path

import numpy as np

from fashion_tuner import (algorithms, backup, budget, checkpoints, cv, devices, epochlog, fitprogress, fsio, interrupts,
                           kt_compat, modelsize, tables)
from fashion_tuner.errors import UserError
from fashion_tuner.fitting import DIRECTION, OBJECTIVE, fit_space_model
from fashion_tuner.search.config import SearchConfig, oracle_settings, sweeps_until_deadline, trial_budget


log = logging.getLogger(__name__)

BACKUP_KWARG = "fashion_tuner_backup"  # run_trial -> HyperModel.fit: the trial's backup.FitSlots


def distributed_worker() -> bool:
    """True in a distributed worker (Keras Tuner's KERASTUNER_TUNER_ID names one other than the chief):
    the chief's oracle, not this process, knows which checkpoints may still be loaded."""
    import os

    tuner_id = os.environ.get("KERASTUNER_TUNER_ID")
    return bool(tuner_id) and tuner_id != "chief"


class TrialBatchDone(Exception):
    """This process ran its ``trials_per_process`` trials; the run is saved and resumes in a fresh one."""


class TimeBudgetSpent(Exception):
    """--time-budget: the next trial would not finish in time (the run is saved; a rerun with a budget resumes)."""


class SmallBudget(Exception):
    """--time-budget fits too few trials like the first (the space's defaults) to search
    (:func:`fashion_tuner.budget.small_budget_fits`); ``args``: (trials it fits, the first trial's seconds)."""


class SamplerExhausted(Exception):
    """The oracle could draw no new configuration (every draw a duplicate or rejected by ``--max-params``)."""


@functools.cache
def tuner_class():
    """Our Keras Tuner tuner class (defined on first use: importing Keras Tuner loads TensorFlow)."""
    return _define_tuner()


def _define_tuner():
    """One ``kt.Tuner`` subclass for every algorithm (its oracle comes from :mod:`fashion_tuner.algorithms`),
    with our per-trial hooks; a multi-fidelity oracle's trials train to their ``tuner/epochs`` and continue
    their parent's weights, as Keras Tuner's ``Hyperband`` tuner does."""
    import keras
    import keras_tuner as kt

    class FashionTuner(kt.Tuner):
        def __init__(self, *args, progress=None, seed=42, stop_after=0, budget_trials=None, deadline=None,
                     keep_checkpoints=None, folds=None, sweeps_until_deadline=False, small_budget_stop=False,
                     **kwargs):
            self._progress = progress
            self._folds = folds  # --cv: cv.Folds over the pooled (x, y) that search() passes; None: no folds
            self._deadline = deadline  # --time-budget: Unix seconds by which the search must end
            self._sweeps_until_deadline = sweeps_until_deadline  # Hyperband: sweep again while time is left
            self._small_budget_stop = small_budget_stop  # stop after the defaults when the budget is too small
            self._keep_checkpoints = keep_checkpoints  # None: keep every checkpoint (checkpoints.prune)
            self._base_seed = seed
            self._stop_after = stop_after
            self._budget_trials = budget_trials
            self._trials_here = 0
            super().__init__(*args, **kwargs)
            algorithms.set_sweeps(self.oracle, another=False)  # a reloaded run: finish the sweep it is in

        def run_trial(self, trial, *args, **kwargs):
            # Each trial gets its own seed, so a resumed or repeated trial trains identically.
            keras.utils.set_random_seed(self._base_seed + int(trial.trial_id))
            # per-epoch history for the review's learning curves (Keras Tuner keeps only the best epoch)
            trial_dir = self.get_trial_dir(trial.trial_id)
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), epochlog.epoch_logger(trial_dir)]
            if not kwargs.get("verbose"):  # Keras' own bar at --verbose 1/2; else ours (fashion_tuner.fitprogress)
                kwargs["callbacks"].append(fitprogress.fit_progress(f"trial {trial.trial_id}"))
            if self._deadline is not None:  # a trial that would overrun stops at an epoch boundary, recorded
                kwargs["callbacks"].append(budget.budget_guard(self._deadline, trial_dir))
            # each fit of the trial backed up per epoch: a rerun after a kill resumes it (fashion_tuner.backup)
            kwargs[BACKUP_KWARG] = backup.FitSlots(Path(trial_dir) / backup.TRIAL_BACKUP_DIR, f"trial {trial.trial_id}")
            epochs = trial.hyperparameters.values.get(tables.EPOCHS_KEY)
            if epochs and self._folds is None:  # a multi-fidelity trial trains to its budget (kt.Hyperband's way)
                kwargs["epochs"] = epochs
                kwargs["initial_epoch"] = trial.hyperparameters.values.get(tables.INITIAL_EPOCH_KEY, 0)
            try:
                if self._folds is not None:
                    return self._cv_trial(trial, *args, **kwargs)
                return super().run_trial(trial, *args, **kwargs)
            except Exception as exc:
                if fsio.is_disk_full(exc):  # stop the search: every further trial would fail the same way
                    raise kt_compat.fatal_error(f"No space left on device: {exc}", exc) from exc
                raise

        def _cv_trial(self, trial, x, y, **kwargs) -> kt_compat.TrialResult:
            """--cv: one Keras Tuner run_trial per fold (a fresh model each, trained on the fold's training
            part, validated on its held-out part, with the trial's callbacks: EarlyStopping etc.), scored by
            the mean over folds of each fold's best val_accuracy; each fold's score and their sd are
            recorded as the trial's metrics ``fold_1``.. ``fold_K`` and ``cv_sd``.

            Hyperband: every fold trains from scratch for the trial's full ``tuner/epochs`` (initial epoch
            0, no weights loaded from the parent trial, see ``_build_hypermodel``): a parent's checkpoint
            was trained on other folds and would carry this fold's validation images into its model."""
            kwargs.pop("validation_data", None)
            kwargs.pop("initial_epoch", None)
            epochs = trial.hyperparameters.values.get("tuner/epochs")
            if epochs:
                kwargs["epochs"] = int(epochs)
            folds = []
            for train, val in self._folds.splits():
                results = kt.Tuner.run_trial(self, trial, x[train], y[train], validation_data=(x[val], y[val]),
                                             **kwargs)
                folds.append(kt_compat.result_metrics(results, self.oracle.objective))
            result = kt_compat.TrialResult.mean_of(folds, OBJECTIVE, cv.summarize)
            # every reader (tables.best_epoch) counts a continuation's best_step from its initial epoch, as
            # Keras Tuner does; these fits started at 0, so shift it (negative: best before that epoch)
            result.best_step -= int(trial.hyperparameters.values.get("tuner/initial_epoch") or 0)
            return result

        def _build_hypermodel(self, hp):
            model = super()._build_hypermodel(hp)
            parent = hp.values.get(tables.PARENT_KEY)
            if parent and self._folds is None:  # --cv never continues from a parent's weights (see _cv_trial)
                kt_compat.load_parent_weights(self, model, parent)
            return model

        def _run_and_update_trial(self, trial, *fit_args, **fit_kwargs):
            # Keras Tuner records any Exception as a failed trial and goes on: one caused by Ctrl-C is the
            # interrupt (the trial stays RUNNING, and a resume reruns it)
            with interrupts.converted():
                if self._folds is None:
                    return super()._run_and_update_trial(trial, *fit_args, **fit_kwargs)
                kt_compat.report_result(self.oracle, trial, self.run_trial(trial, *fit_args, **fit_kwargs))

        def pre_create_trial(self):
            """--time-budget: start no trial that is not expected to finish (this run's median trial time);
            while one would, Hyperband may begin another sweep of its brackets (``sweeps_until_deadline``). After a
            first trial that was the space's defaults, stop when the budget fits too few like it (``SmallBudget``)."""
            super().pre_create_trial()
            if self._deadline is None:
                return
            from fashion_tuner.search.progress import trial_seconds

            seconds = trial_seconds(self.project_dir)
            if self._small_budget_stop and len(seconds) == 1 and len(self.oracle.trials) == 1:
                fits = budget.small_budget_fits(self._deadline - time.time(), seconds[0])
                if fits is not None:
                    self._end_sweeps()
                    raise SmallBudget(fits, seconds[0])
            expected = float(np.median(seconds)) if seconds else 0.0
            if time.time() + expected > self._deadline:
                self._end_sweeps()
                raise TimeBudgetSpent()
            if self._sweeps_until_deadline:
                algorithms.set_sweeps(self.oracle, another=True)

        def _end_sweeps(self):
            """The budget is spent: oracle.json says how many sweeps began, as without a budget (measured: a stop
            at a trial refused in on_trial_begin left it allowing one more sweep than had begun)."""
            if self._sweeps_until_deadline:
                algorithms.set_sweeps(self.oracle, another=False)
                self.oracle.save()

        def on_trial_begin(self, trial):
            self._check_trial_fits(trial)
            # libhdf5 crashes the process when a checkpoint meets a full disk: stop before that
            fsio.check_free_space(self.project_dir)
            super().on_trial_begin(trial)
            kt_compat.save_trial_start(self.get_trial_dir(trial.trial_id), trial)
            if self._progress:
                self._progress.begin(trial)

        def _check_trial_fits(self, trial):
            """--time-budget: now that the trial's epochs are known (a Hyperband trial may train 1 or
            max_epochs), do not start it when this run's median epoch time says it would not end in time; it
            stays pending, and the same command resumes it with a fresh budget (pre_create_trial only knows
            whole trials' times)."""
            if self._deadline is None:
                return
            values = trial.hyperparameters.values
            epochs = int(values.get("tuner/epochs") or 0) - int(values.get("tuner/initial_epoch") or 0)
            per_epoch = [s for s, _ in budget.epoch_seconds(self.project_dir)]
            if epochs > 0 and per_epoch and time.time() + epochs * float(np.median(per_epoch)) > self._deadline:
                log.info("time budget: trial %s (%d epoch(s) at ~%.0f s) would not end in time; not started",
                         trial.trial_id, epochs, float(np.median(per_epoch)))
                self._end_sweeps()
                raise TimeBudgetSpent()

        def on_trial_end(self, trial):
            backup.discard(Path(self.get_trial_dir(trial.trial_id)) / backup.TRIAL_BACKUP_DIR)  # the trial ended
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
            if self._keep_checkpoints is not None and not distributed_worker():
                checkpoints.prune(self.project_dir, self._keep_checkpoints)
            if self._progress:
                self._progress.end(trial, self.oracle)
            if not distributed_worker():  # the trial, live in RUN/optuna.journal (never fails the search)
                from fashion_tuner.review.optuna_bridge import record_quietly
                record_quietly(self.project_dir)
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


def build_tuner(cfg: SearchConfig, space, run_dir: Path, progress=None, strategy=None, deadline=None, folds=None,
                validation_images: int | None = None):
    """Our tuner over ``space`` in ``run_dir``, with the oracle of ``cfg.tuner`` (:mod:`fashion_tuner.algorithms`);
    ``folds`` (cv.Folds): --cv, search() then gets the pooled images."""
    kt_compat.set_debug(cfg.debug)  # failure reasons go to trial.json and our progress lines instead

    hypermodel = SpaceHyperModel(space, {"batch_size": cfg.batch_size, "epochs": cfg.max_epochs, "jit": cfg.jit,
                                         "input_pipeline": cfg.input_pipeline})
    facts = candidate_facts(hypermodel)
    constraint = params_constraint(facts, cfg.max_params) if cfg.max_params else None
    module = algorithms.module(cfg.tuner)
    cost = (lambda values: facts(values)["flops"]) if getattr(module, "COST_AWARE", False) else None
    oracle = module.build_oracle(oracle_settings(cfg, constraint, validation_images, cost))
    return tuner_class()(
        oracle=oracle, hypermodel=hypermodel, executions_per_trial=cfg.executions_per_trial,
        directory=str(run_dir.parent), project_name=run_dir.name, overwrite=False, distribution_strategy=strategy,
        progress=progress, seed=cfg.seed, stop_after=cfg.trials_per_process, budget_trials=trial_budget(cfg),
        deadline=deadline, keep_checkpoints=cfg.keep_checkpoints, folds=folds,
        sweeps_until_deadline=sweeps_until_deadline(cfg) and deadline is not None,
        small_budget_stop=(deadline is not None and cfg.small_budget == "defaults" and cfg.role is None
                           and cfg.tuner == algorithms.DEFAULT))


def candidate_facts(hypermodel):
    """``values -> {"parameters", "flops"}`` of a configuration's model, built without training (``flops``:
    forward FLOPs per image, :func:`modelsize.forward_flops`; None when not countable); each configuration is
    built once (cached by its values)."""
    import keras
    import keras_tuner as kt

    cache: dict[str, dict] = {}

    def facts(values: dict) -> dict:
        clean = tables.hp_values(values)
        key = json.dumps(clean, sort_keys=True, default=str)
        if key not in cache:
            hp = kt.HyperParameters()
            hp.values = clean
            try:
                model = hypermodel.build(hp)
                cache[key] = {"parameters": int(model.count_params()), "flops": modelsize.forward_flops(model)}
            finally:
                keras.backend.clear_session()
        return cache[key]

    return facts


def params_constraint(facts, max_params: int):
    """``values -> reason or None``: rejects a configuration whose model (``facts``: :func:`candidate_facts`) has
    more than ``max_params`` parameters (``search --max-params``)."""

    def check(values: dict) -> str | None:
        count = facts(values)["parameters"]
        return f"{count:,} parameters > --max-params {max_params:,}" if count > max_params else None

    return check


@contextlib.contextmanager
def frozen_heap():
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
                # (--mixed-precision) and the JAX distribution to their defaults: build_model sets them
                # again (and a mixed policy needs a float32 output).
                model = devices.build_model(lambda: space.build_model(hp))
                if not isinstance(model, keras.Model):
                    raise UserError(f"the space's build_model(hp) returned {type(model).__name__}, not a keras.Model; "
                                    "make it return the compiled model")
                devices.apply_jit(model, defaults.get("jit", "auto"))
                if tables.PARENT_KEY in hp.values:
                    build_optimizer(model)
                return model

            def fit(self, hp, model, x, y, **kwargs):
                slots = kwargs.pop(BACKUP_KWARG, None)
                if slots is not None:  # what the review and retrain-best --max-params read
                    modelsize.record(slots.root.parent, model)
                batch_size = kwargs.pop("batch_size", defaults["batch_size"])
                epochs = kwargs.pop("epochs", defaults["epochs"])
                return fit_space_model(space, hp, model, x, y, epochs=epochs, batch_size=batch_size,
                                       input_pipeline=defaults.get("input_pipeline", "auto"), backup=slots, **kwargs)

        return _HyperModel()
