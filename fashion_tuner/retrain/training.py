"""Training one member of a retrain from scratch, and what is written about it: its files, figures,
metrics, size, speed and learning-rate schedule."""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fashion_tuner import fitprogress, report, runs
from fashion_tuner.errors import UserError
from fashion_tuner.retrain.config import CLASS_NAMES_FILE, DEFAULT_BATCH_SIZE, LATENCY_REPEATS, PROBS_FILE


class Fitted(NamedTuple):
    """One member trained from scratch (:func:`train_member`)."""

    model: object  # the fitted Keras model
    hp: object  # its keras_tuner.HyperParameters
    history: dict  # metric -> value per epoch
    wall_s: float  # this process's seconds to fit it
    budget: dict | None  # --time-budget: what the budget guard did (``BudgetGuard.record()``), else None


def verbose() -> int:
    return 1 if sys.stdout.isatty() else 2  # progress bar in a terminal, a line per epoch in logs


def batch_size(hp, run_args: dict) -> int:
    return int(hp.values.get("batch_size", run_args.get("batch_size") or DEFAULT_BATCH_SIZE))


def class_weight(run: dict, y: np.ndarray, class_names: list[str]) -> dict | None:
    """The class weights the search used (recorded in run.json), else resolved from its --class-weight."""
    stored = run.get("class_weight")
    if isinstance(stored, dict):
        return {int(k): float(v) for k, v in stored.items()}
    from fashion_tuner.fitting import resolve_class_weight

    return resolve_class_weight(run.get("args", {}).get("class_weight"), y, class_names)


def plain_fit(space, hp, model, x, y, val, *, epochs, run_args, class_weight, patience, label, deadline=None,
              extend_to=None):
    """One fit with the search's callbacks; a diverging fit becomes a UserError. ``deadline`` (a
    ``budget.Deadline``, --time-budget): the fit stops at an epoch boundary, or inside an epoch, rather than
    leave too little time for the scoring and report after it, and a first epoch slower
    than planned shortens the learning-rate schedule to the epochs left (``budget.budget_guard``); with
    ``extend_to`` (more than ``epochs``) a faster one lengthens it, to that many epochs at most. Returns
    ``(History, the guard's record)``: ``BudgetGuard.record()``, None without ``deadline``."""
    import keras_tuner

    from fashion_tuner import budget
    from fashion_tuner.fitting import fit_space_model, standard_callbacks

    callbacks = standard_callbacks(patience)
    if val is None:
        callbacks = callbacks[1:]  # no validation set to stop on: keep only the NaN guard
    guard, most = None, epochs
    if deadline is not None:
        most = max(epochs, extend_to or 0)
        guard = budget.budget_guard(deadline, replan=True, batch_size=batch_size(hp, run_args),
                                    validation_images=0 if val is None else len(val[1]),
                                    planned=epochs if most > epochs else None)
        callbacks.append(guard)
    callbacks.append(fitprogress.fit_progress(  # batch progress and time left, or a line per epoch
        f"[retrain-best] {label}", planned=None if guard is None else (lambda: guard.replanned_epochs)))
    try:
        history = fit_space_model(space, hp, model, x, y, validation_data=val, epochs=most,
                                  batch_size=batch_size(hp, run_args), callbacks=callbacks,
                                  class_weight=class_weight, verbose=0)
    except keras_tuner.errors.FailedTrialError as exc:
        raise UserError(f"retraining {label} failed: {exc}; try another --seed") from None
    return history, None if guard is None else guard.record()


def history_dict(history) -> dict:
    return {k: [float(v) for v in vals] for k, vals in (getattr(history, "history", None) or {}).items()}


def predict(model, x: np.ndarray, tta: str = "none") -> np.ndarray:
    """Softmax outputs ``(N, C)`` as float64 (with ``tta="flip"``, averaged with the mirrored images', :mod:`fashion_tuner.tta`)."""
    from fashion_tuner import tta as tta_mod

    return tta_mod.predict(model, x, tta)


def timed_predict(model, x: np.ndarray, tta: str = "none") -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    probs = predict(model, x, tta)
    return probs, time.perf_counter() - started


def describe_learning_rate(model, history: dict) -> dict:
    """The learning rate the fit actually used: the optimizer, its schedule (a Keras schedule's class and
    settings, or a constant), the rate per epoch when a callback changed it (ReduceLROnPlateau logs
    ``learning_rate``) and the rate at the end."""
    opt = model.optimizer
    opt = getattr(opt, "inner_optimizer", opt)  # mixed precision wraps the real optimizer
    lr = opt.get_config().get("learning_rate")
    if isinstance(lr, dict):
        settings = {k: v for k, v in (lr.get("config") or {}).items() if k != "name" and v is not None}
        schedule = f"{lr.get('class_name')}(" + ", ".join(f"{k}={report.fmt_number(v)}" for k, v in settings.items()) + ")"
    else:
        schedule = f"constant {report.fmt_number(lr)}"
    per_epoch = [float(v) for v in history.get("learning_rate", [])]
    changes = [f"epoch {i + 1}: {report.fmt_number(b)}" for i, (a, b) in enumerate(zip(per_epoch, per_epoch[1:]), start=1)
               if not np.isclose(a, b)]
    if changes:
        schedule += f", reduced on plateau to {'; '.join(changes)}"
    return {"optimizer": type(opt).__name__, "learning_rate_schedule": schedule,
            "final_learning_rate": float(np.asarray(opt.learning_rate))}


def model_facts(model, path: Path, x: np.ndarray, batch_seconds: float, tta: str = "none") -> dict:
    """Size and speed of a saved model: parameters, the .keras file's size on disk (MB), and inference
    time per image in milliseconds, batched (``batch_seconds`` to predict ``x`` in batches of
    ``fashion_tuner.tta.PREDICT_BATCH``) and for one image alone (median of LATENCY_REPEATS calls after a
    warm-up; under ``tta="flip"`` one call scores the image and its mirror, ``views_per_image`` 2), both
    on this machine's devices."""
    from fashion_tuner import tta as tta_mod

    one = tta_mod.views(x[:1], tta)
    model(one, training=False)  # warm-up: the first call traces the graph
    times = []
    for _ in range(LATENCY_REPEATS):
        started = time.perf_counter()
        model(one, training=False)
        times.append(time.perf_counter() - started)
    return {"parameters": int(model.count_params()),
            "trainable_parameters": int(sum(int(np.prod(v.shape)) for v in model.trainable_weights)),
            "size_mb": round(Path(path).stat().st_size / 1e6, 2),
            "ms_per_image_batched": round(1000.0 * batch_seconds / max(len(x), 1), 4),
            "ms_per_image_single": round(1000.0 * float(np.median(times)), 3), "views_per_image": len(one)}


def save_model_files(out: Path, model, hp_values: dict, history: dict, class_names: list[str]) -> None:
    from fashion_tuner.retrain.config import MODEL_FILE

    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)
    (out / CLASS_NAMES_FILE).write_text(json.dumps(class_names) + "\n")
    save_history(out, hp_values, history)


def save_history(out: Path, hp_values: dict, history: dict) -> None:
    """``hyperparameters.json`` and ``history.csv`` (one row per epoch) of a fit in ``out``."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    (out / "hyperparameters.json").write_text(json.dumps(hp_values, indent=2, default=str) + "\n")
    frame = pd.DataFrame(history)
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    frame.to_csv(out / "history.csv", index=False)


def model_metrics(out: Path, *, title: str, history: dict, probs: np.ndarray, data: dict, extra: dict,
                  compare: dict | None = None) -> dict:
    """Figures + classification report in ``out``; returns metrics (also written as metrics.json).
    Figure titles name the run, the model and its test accuracy."""
    train_on = extra.get("train_on", "train")
    accuracy = float(np.mean(np.asarray(probs).argmax(axis=1) == np.asarray(data["y_te"])))
    title = f"{data['run_name']}: {title}, test accuracy {accuracy:.4f}" if data.get("run_name") else title
    best = report.best_epoch(history) if history and train_on != "train+val" else (
        len(history.get("loss", [])) - 1 if history else None)
    metrics = report.write_model_figures(out, history=history, best=best, x_test=data["x_te"],
                                         y_test=data["y_te"], probs=probs, class_names=data["class_names"],
                                         title=title, compare=compare)
    np.save(out / PROBS_FILE, probs.astype(np.float32))
    metrics["train_images"] = int(len(data["y_fit"]))  # what compare puts beside the test accuracy
    if history:
        metrics["epochs_trained"] = len(history.get("loss", []))
        metrics["best_epoch"] = best + 1
        if history.get("val_accuracy") and train_on != "train+val":
            metrics["val_accuracy"] = history["val_accuracy"][best]
    metrics.update(extra)
    metrics.update(provenance_now(data["provenance"]))
    runs.write_json(out / "metrics.json", metrics)
    return metrics


def member_extra(trial: dict, hp, train_on: str, seed: int, wall_s: float) -> dict:
    return {"trial_id": trial["trial_id"], "search_score": trial["score"], "train_on": train_on, "seed": seed,
            "wall_s": round(wall_s, 2), "hyperparameters": dict(hp.values)}


def check_same_space(run: dict, trial: dict, recorded: set[str], built: set[str]) -> None:
    """UserError when building ``trial``'s model declared hyperparameters its trial.json never had: run.json's
    space is not the one the trials were searched with (a trial records every name its build declared)."""
    new = sorted(built - recorded)
    if new:
        raise UserError(f"run.json's space {run.get('space')!r} declares hyperparameters trial {trial.get('trial_id')} "
                        f"never had ({', '.join(new[:4])}{' ...' if len(new) > 4 else ''}): the trials were searched "
                        "with another space; restore run.json's space (or pass --space with the space searched)")


def provenance_now(provenance: dict) -> dict:
    """The retrain's provenance with the dtype policy the models really trained in: under auto, a space
    without a float32 output falls back to float32 after start-up (devices.build_model updates the
    precision record), so the backend's policy follows that record."""
    if "precision" not in provenance or "backend" not in provenance:
        return provenance
    return {**provenance, "backend": {**provenance["backend"], "policy": provenance["precision"]["policy"]}}


def train_member(space, trial: dict, *, data: dict, run: dict, epochs: int, seed: int, patience: int, label: str,
                 fit=None, deadline=None, backup_dir: Path | None = None, extend_to: int | None = None):
    """Build the trial's model from its hyperparameters and fit it from scratch.

    ``fit``: ``fit(hp, model, x, val, *, epochs, run_args, patience, label, deadline) -> (History, guard
    record)``, as :func:`plain_fit`, to train differently (distillation); None for :func:`plain_fit`.
    ``backup_dir``: every epoch is backed up there and a rerun resumes from it (:mod:`fashion_tuner.backup`);
    the caller deletes it once the retrain is done. ``extend_to``: see :func:`plain_fit`. Returns a :class:`Fitted`.
    """
    from fashion_tuner import backup
    import keras
    import keras_tuner

    from fashion_tuner import devices

    # from_config turns the nested condition dicts into objects in place: give it a copy.
    hp = keras_tuner.HyperParameters.from_config(copy.deepcopy(trial["hyperparameters"]))
    known = {p.name for p in hp.space}

    def build():
        keras.utils.set_random_seed(seed)  # the same weights if auto precision builds it again in float32
        return space.build_model(hp)

    try:  # the policy and distribution, reset by every clear_session()
        model = devices.build_model(build)
    except keras_tuner.errors.FailedTrialError as err:  # an explicit mixed policy and a space without a float32 output
        raise UserError(str(err)) from None
    check_same_space(run, trial, known, {p.name for p in hp.space})
    started = time.monotonic()
    with backup.attached(model, backup.FitSlots(backup_dir, label) if backup_dir is not None else None):
        if fit is None:
            history, guarded = plain_fit(space, hp, model, data["x_fit"], data["y_fit"], data["val"], epochs=epochs,
                                         run_args=run.get("args", {}), class_weight=data["class_weight"],
                                         patience=patience, label=label, deadline=deadline, extend_to=extend_to)
        else:
            history, guarded = fit(hp, model, data["x_fit"], data["val"], epochs=epochs,
                                   run_args=run.get("args", {}), patience=patience, label=label, deadline=deadline)
    return Fitted(model, hp, history_dict(history), time.monotonic() - started, guarded)
