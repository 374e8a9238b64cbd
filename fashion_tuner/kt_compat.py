"""What we rely on inside Keras Tuner's files and private code, in one place.

Written against keras-tuner 1.4.8 (``tests/test_kt_compat.py`` pins the version and fails
loudly when these internals move):

- ``keras_tuner.src.utils.save_json`` truncates and then writes: a kill or a full disk
  leaves half a file. :func:`install_atomic_json` replaces it with an atomic write.
- ``oracle.json`` holds ``ongoing_trials`` ({tuner id: trial id}) and ``retry_queue``
  (trial ids): the trials that are not finished. On reload Keras Tuner reruns them.
- ``tuner<ID>.json`` holds no state in 1.4 (``BaseTuner.get_state`` returns ``{}``).
- ``Oracle.end_trial`` raises "consecutive failures" (a RuntimeError) *before* it saves the
  failing trial: the tuner saves that trial itself (``FashionTuner.on_trial_end``).
- Oracles draw trial values with ``Oracle._random_values()`` and register them with
  ``Oracle._duplicate(values)`` (:func:`defaults_first` wraps the first); trials to rerun wait in
  ``Oracle._retry_queue``; ``keras_tuner.src.config.DEBUG`` prints each failed trial's traceback.
- ``HyperbandOracle`` keeps ``hyperband_iterations`` in ``oracle.json`` (a reload restores it) and
  stops once ``_current_iteration + 1 == hyperband_iterations`` and its last bracket has run
  (``fashion_tuner.algorithms.set_sweeps``); it draws new configurations in ``_random_trial`` through
  ``_random_values`` and sizes rounds with ``_get_size``/``_get_epochs`` (``algorithms/priorband.py``
  subclasses it; ``algorithms/hyperband.py`` repeats the formulas for files read without Keras).
- ``Hyperband._build_hypermodel`` loads a continuation's parent checkpoint through the tuner's
  ``_get_checkpoint_fname`` / ``_get_build_config_fname`` (:func:`load_parent_weights`: our one tuner class
  does the same for every multi-fidelity oracle).
- ``conditions.Parent.to_proto`` prints a stray value (:func:`quiet_condition_protos`).
- ``BaseTuner._run_and_update_trial`` turns what ``run_trial`` returns into the metrics and the best
  step it reports with ``oracle.update_trial``; ``tuner_utils.convert_to_metrics_dict`` /
  ``get_best_step`` do the conversion (a list of results is averaged; a dict gets step 0).
  ``search --cv`` reports its own mean over folds and mean best step (:func:`report_result`), and
  bypasses Hyperband's ``run_trial`` / ``_build_hypermodel`` (no parent weights) through ``kt.Tuner``'s.
- ``trial_<ID>/trial.json`` is a trial's state; we keep a copy of it as it was when the trial
  started (``trial.start.json``), so that a damaged ``trial.json`` of an unfinished trial can
  be set aside and the trial run again.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fashion_tuner import fsio, rundir
from fashion_tuner.errors import UserError

KERAS_TUNER_VERSION = "1.4.8"  # the version these internals were read from
ORACLE_FILE = "oracle.json"
TRIAL_FILE = "trial.json"
TRIAL_START_FILE = "trial.start.json"
DAMAGED_SUFFIX = ".damaged"

log = logging.getLogger(__name__)


def install_atomic_json() -> None:
    """Make every Keras Tuner JSON write atomic (oracle, tuner and trial files). Idempotent."""
    from keras_tuner.src import utils

    if getattr(utils.save_json, "_atomic", False):
        return

    def save_json(path, obj):
        text = json.dumps(obj)
        fsio.atomic_write_text(path, text)
        return text

    save_json._atomic = True
    utils.save_json = save_json


def save_trial_start(trial_dir: str | Path, trial) -> None:
    """Keep the trial's state as it starts (hyperparameters, id), for :func:`check_project`."""
    fsio.atomic_write_text(Path(trial_dir) / TRIAL_START_FILE, json.dumps(trial.get_state()))


@dataclass
class Repair:
    """A fix :func:`check_project` found safe: ``what`` says it, ``apply()`` does it."""

    what: str
    apply: Callable[[], None]


def _load(path: Path):
    """Parsed JSON, or raise ValueError saying why it is unusable."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{exc.__class__.__name__}: {exc}; {path.stat().st_size} bytes") from None
    if not isinstance(payload, dict):
        raise ValueError(f"a JSON {type(payload).__name__}, not an object")
    return payload


def unfinished_trials(oracle: dict) -> set[str]:
    """Trial ids the oracle has not finished (running or queued to run again)."""
    ongoing = oracle.get("ongoing_trials") or {}
    queued = oracle.get("retry_queue") or []
    return {str(t) for t in ongoing.values()} | {str(t) for t in queued}


def check_project(run_dir: str | Path) -> list[Repair]:
    """Read every Keras Tuner file of a run directory before anything is written.

    Returns the repairs to make before resuming (a damaged tuner file, or a damaged
    ``trial.json`` of an unfinished trial that can be restored from ``trial.start.json`` and
    rerun). Raises UserError, naming the file, for damage that cannot be repaired (a damaged
    ``oracle.json``, or a damaged ``trial.json`` of a finished trial: its result is lost).
    """
    run_dir = Path(run_dir)
    oracle_path = run_dir / ORACLE_FILE
    oracle: dict = {}
    if oracle_path.exists():
        try:
            oracle = _load(oracle_path)
            problem = rundir.schema_problem(oracle, ORACLE_FILE)  # trial ids in it become folder names
            if problem:
                raise ValueError(problem)
        except ValueError as exc:
            raise UserError(f"{oracle_path} is damaged ({exc}): the search state cannot be resumed from it; restore "
                            "it from a copy, or start over with --overwrite") from None
    unfinished = unfinished_trials(oracle)
    repairs: list[Repair] = []
    for tuner_path in sorted(run_dir.glob("tuner*.json")):
        try:
            _load(tuner_path)
        except ValueError as exc:
            repairs.append(Repair(f"{tuner_path.name} was damaged ({exc}); it holds no state in Keras Tuner "
                                  f"{KERAS_TUNER_VERSION}: set aside as {tuner_path.name}{DAMAGED_SUFFIX} and rewritten",
                                  _rewrite_tuner_file(tuner_path)))
    for trial_path in sorted(run_dir.glob(f"trial_*/{TRIAL_FILE}")):
        try:
            problem = rundir.trial_problem(_load(trial_path), trial_path.parent)
            if problem is None:
                continue
            why = problem
        except ValueError as exc:
            why = str(exc)
        trial_id = trial_path.parent.name[len("trial_"):]
        start = trial_path.parent / TRIAL_START_FILE
        if trial_id in unfinished and start.is_file():
            try:
                _load(start)
            except ValueError:
                pass
            else:
                repairs.append(Repair(f"trial {trial_id} was unfinished and its {TRIAL_FILE} damaged ({why}): set aside "
                                      f"as {TRIAL_FILE}{DAMAGED_SUFFIX}; the trial runs again from its start",
                                      _restore_trial(trial_path, start)))
                continue
        state = "unfinished, with no start copy to restore" if trial_id in unfinished else "finished; its result is lost"
        raise UserError(f"{trial_path} is damaged ({why}; trial {state}): restore it from a copy, or start over "
                        "with --overwrite")
    return repairs


def _rewrite_tuner_file(path: Path) -> Callable[[], None]:
    def apply():
        path.replace(path.with_name(path.name + DAMAGED_SUFFIX))
        fsio.atomic_write_text(path, "{}")
    return apply


def _restore_trial(trial_path: Path, start: Path) -> Callable[[], None]:
    def apply():
        trial_path.replace(trial_path.with_name(TRIAL_FILE + DAMAGED_SUFFIX))
        fsio.atomic_write_text(trial_path, start.read_text())
    return apply


def note_running_trials(run_dir: str | Path, reason: str) -> list[str]:
    """Write ``reason`` into the message of every trial still RUNNING (a process that ran it died);
    they stay RUNNING, so a resume runs them again. Returns their ids."""
    noted = []
    for path in sorted(Path(run_dir).glob(f"trial_*/{TRIAL_FILE}")):
        try:
            trial = _load(path)
        except ValueError:
            continue
        if trial.get("status") == "RUNNING":
            trial["message"] = f"{reason} ({time.strftime('%Y-%m-%d %H:%M:%S')}); a resume runs this trial again"
            fsio.atomic_write_text(path, json.dumps(trial))
            noted.append(str(trial.get("trial_id")))
    return noted


@dataclass
class TrialResult:
    """What a trial reports to the oracle: ``metrics`` ({name: value}, the objective among them) at ``best_step``
    (0-based epoch)."""

    metrics: dict
    best_step: int

    @classmethod
    def mean_of(cls, parts: list["TrialResult"], objective: str, describe: Callable[[list], dict]) -> "TrialResult":
        """The mean of several results (every metric the parts share; the best step rounded), plus
        ``describe([each part's objective value])``: e.g. one metric per fold and their spread."""
        import numpy as np

        shared = set.intersection(*(set(p.metrics) for p in parts))
        metrics = {k: float(np.mean([p.metrics[k] for p in parts])) for k in sorted(shared)}
        metrics.update(describe([p.metrics[objective] for p in parts]))
        return cls(metrics, int(round(float(np.mean([p.best_step for p in parts])))))


def result_metrics(results, objective) -> TrialResult:
    """Keras Tuner's own reading of a ``run_trial`` return value (a History, dict, float, or a list of
    them, averaged): the metrics at the best epoch, and that epoch."""
    from keras_tuner.src.engine import tuner_utils

    tuner_utils.validate_trial_results(results, objective, "Tuner.run_trial()")
    metrics = tuner_utils.convert_to_metrics_dict(results, objective)
    return TrialResult({k: float(v) for k, v in metrics.items()}, int(tuner_utils.get_best_step(results, objective)))


def report_result(oracle, trial, result: TrialResult) -> None:
    """Report ``result`` for ``trial`` the way ``BaseTuner._run_and_update_trial`` does, with its own best step."""
    oracle.update_trial(trial.trial_id, result.metrics, step=result.best_step)


def is_too_many_failures(exc: BaseException) -> bool:
    """Keras Tuner's way of stopping a search after max_consecutive_failed_trials: a RuntimeError whose
    text says so (1.4.8 has no exception class of its own for it)."""
    return isinstance(exc, RuntimeError) and "consecutive failures" in str(exc)


def fatal_error(message: str, cause: BaseException):
    """A Keras Tuner FatalError (it stops the search instead of failing the trial) caused by ``cause``."""
    import keras_tuner

    err = keras_tuner.errors.FatalError(message)
    err.__cause__ = cause
    return err


def default_values(hyperparameters) -> dict:
    """``{name: default}`` of the active hyperparameters of a Keras Tuner ``HyperParameters`` space (conditional ones
    only where their condition holds on the defaults)."""
    import keras_tuner as kt

    hps = kt.HyperParameters()
    for hp in hyperparameters.space:
        hps.merge([hp])
        if hps.is_active(hp):
            hps.values[hp.name] = hp.default
    return dict(hps.values)


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

    def values():
        if oracle.trials:
            return sample()
        defaults = default_values(oracle.hyperparameters)
        oracle._duplicate(defaults)  # registers them, so a random draw does not repeat them
        return defaults

    oracle._random_values = values


def load_parent_weights(tuner, model, parent_id: str) -> None:
    """Load the checkpoint of trial ``parent_id`` into ``model``, as Keras Tuner 1.4.8's ``Hyperband._build_hypermodel``
    does for a continuation (on a multi-backend Keras the model is built from the parent's build config first)."""
    from keras_tuner.src import backend as kt_backend
    from keras_tuner.src import utils

    if kt_backend.config.multi_backend():
        model.build_from_config(utils.load_json(tuner._get_build_config_fname(parent_id)))
    model.load_weights(tuner._get_checkpoint_fname(parent_id))


def retry_queue(oracle) -> list:
    """Trial ids the oracle will run again (an empty list for an oracle without a queue, e.g. a client)."""
    return list(getattr(oracle, "_retry_queue", None) or [])


def set_debug(flag: bool) -> None:
    """Keras Tuner prints every failed trial's traceback when its DEBUG flag is on."""
    from keras_tuner.src import config

    config.DEBUG = bool(flag)


def quiet_condition_protos() -> None:
    """Keras Tuner 1.4.8's ``conditions.Parent.to_proto`` has a stray ``print`` of the first
    condition value, run for every conditional hyperparameter sent over gRPC: silence it."""
    import contextlib
    import io

    from keras_tuner.src.engine import conditions

    original = conditions.Parent.to_proto
    if getattr(original, "_quiet", False):
        return

    def to_proto(self):
        with contextlib.redirect_stdout(io.StringIO()):
            return original(self)

    to_proto._quiet = True
    conditions.Parent.to_proto = to_proto
