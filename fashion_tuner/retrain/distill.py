"""Knowledge distillation (Hinton et al. 2015) for ``retrain-best --distill-from TEACHER_RUN``:
softened teacher targets at temperature T, loss alpha * CE(labels) + (1 - alpha) * T^2 *
KL(teacher_T || student_T); the student is compared with the same architecture trained alone and
with the teacher, all on this run's held-out test split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fashion_tuner import hints, report, runs
from fashion_tuner.errors import UserError
from fashion_tuner.retrain.config import MODEL_FILE, say
from fashion_tuner.retrain.job import RetrainJob
from fashion_tuner.retrain.training import (batch_size, describe_learning_rate, member_extra, model_facts,
                                            model_metrics, predict, save_model_files, timed_predict, train_member,
                                            verbose)

DISTILL_TEMPERATURE = 4.0
DISTILL_ALPHA = 0.5


def soften(probs: np.ndarray, temperature: float = DISTILL_TEMPERATURE) -> np.ndarray:
    """Teacher probabilities ``(N, C)`` -> softmax(logits / T); log p equals the logits up to a constant."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def distill_targets(y: np.ndarray, teacher_probs: np.ndarray) -> np.ndarray:
    """Labels and softened teacher outputs in one target array ``(N, 1 + C)``: column 0 is the label."""
    return np.concatenate([np.asarray(y, dtype=np.float32)[:, None], soften(teacher_probs)], axis=1)


def distillation_loss(y_comb, y_pred):
    """``alpha * CE(label, p) + (1 - alpha) * T^2 * KL(teacher_T || softmax(log p / T))`` per sample."""
    import keras
    from keras import ops

    labels = ops.cast(y_comb[:, 0], "int32")
    soft = ops.cast(y_comb[:, 1:], y_pred.dtype)
    hard = keras.losses.sparse_categorical_crossentropy(labels, y_pred)
    student_log_soft = ops.log_softmax(ops.log(ops.clip(y_pred, 1e-7, 1.0)) / DISTILL_TEMPERATURE, axis=-1)
    kl = ops.sum(soft * (ops.log(ops.clip(soft, 1e-12, 1.0)) - student_log_soft), axis=-1)
    return DISTILL_ALPHA * hard + (1.0 - DISTILL_ALPHA) * DISTILL_TEMPERATURE ** 2 * kl


def _label_accuracy(y_comb, y_pred):
    from keras import ops

    return ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), ops.cast(y_comb[:, 0], "int64")), "float32")


def distill_fit(targets):
    """A ``fit`` for :func:`train_member` on ``(N, 1 + C)`` distillation ``targets`` (y_fit, y_val,
    sample_weight); the metric stays named "accuracy".

    The space's own ``fit()`` is bypassed (it would train on the hard labels). Afterwards the
    model is recompiled with the plain loss, so the saved file loads with ``safe_mode=True``
    and no custom objects.
    """
    def fit(hp, model, x, val, *, epochs, run_args, patience, label, deadline=None):
        import keras
        import keras_tuner

        from fashion_tuner import budget
        from fashion_tuner.fitting import standard_callbacks

        y_fit, y_val, sample_weight = targets
        model.compile(optimizer=model.optimizer, loss=distillation_loss,
                      metrics=[keras.metrics.MeanMetricWrapper(_label_accuracy, name="accuracy")])
        callbacks = standard_callbacks(patience) if val is not None else standard_callbacks(patience)[1:]
        guard = None
        if deadline is not None:
            guard = budget.budget_guard(deadline, replan=True, batch_size=batch_size(hp, run_args),
                                        validation_images=0 if val is None else len(val[0]))
            callbacks.append(guard)
        try:
            history = model.fit(x, y_fit, validation_data=(val[0], y_val) if val is not None else None,
                                epochs=epochs, batch_size=batch_size(hp, run_args), callbacks=callbacks,
                                sample_weight=sample_weight, verbose=verbose())
        except keras_tuner.errors.FailedTrialError as exc:
            raise UserError(f"distilling {label} failed: {exc}; try another --seed") from None
        model.compile(optimizer=model.optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return history, None if guard is None else guard.record()

    return fit


def load_teacher(teacher_dir: Path, run: dict, test_idx: np.ndarray):
    """The teacher run's retrained model(s) and what it may have seen of our test split.

    Returns ``(models, info)``; ``info`` has ``run_dir``, ``model_files`` and ``test_overlap``
    (how many of our test images the teacher used for validation).
    """
    from fashion_tuner import splits

    teacher_run = runs.read_run(teacher_dir)
    ours, theirs = run.get("data", {}).get("dataset"), teacher_run.get("data", {}).get("dataset")
    if ours != theirs:
        raise UserError(f"teacher run {teacher_dir} was trained on {theirs}, this run on {ours}; "
                        "distil from a run on the same data set")
    rep = teacher_dir / runs.REPORT_DIR
    files = [rep / MODEL_FILE] if (rep / MODEL_FILE).is_file() else sorted(
        rep.glob(f"model_*/{MODEL_FILE}"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not files:
        raise UserError(f"teacher run {teacher_dir} has no retrained model in {rep}; "
                        f"run `{hints.command('retrain-best', str(teacher_dir))}` first")
    metrics_path = rep / "metrics.json"
    teacher_metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    split = splits.load_split(teacher_dir / runs.SPLIT_FILE)
    seen_test = split.val_idx if split.val_source == "test" else np.array([], dtype=np.int64)
    overlap = int(np.intersect1d(seen_test, test_idx).size)
    train_on = teacher_metrics.get("train_on") or (teacher_metrics.get("members") or [{}])[0].get("train_on")
    if overlap and train_on == "train+val":
        raise UserError(f"teacher run {teacher_dir} was retrained on its validation images, {overlap} of which "
                        "are in this run's held-out test split; the comparison would be contaminated: "
                        "use a teacher retrained with --train-on train")
    return [runs.load_model(f) for f in files], {"run_dir": str(teacher_dir), "model_files": [str(f) for f in files],
                                                  "test_overlap_with_teacher_validation": overlap}


def teacher_probs(models, x: np.ndarray) -> np.ndarray:
    """Average of the teacher models' softmax outputs ``(N, C)``."""
    return np.mean([predict(m, x) for m in models], axis=0)


def _teacher_targets(teachers, data: dict):
    """Distillation targets for the fit, the validation set and the sample weights from class weights."""
    y_val = None
    if data["val"] is not None:
        y_val = distill_targets(data["val"][1], teacher_probs(teachers, data["val"][0]))
    cw = data["class_weight"]
    sample_weight = None if not cw else np.array([cw.get(int(c), 1.0) for c in data["y_fit"]], dtype=np.float32)
    return distill_targets(data["y_fit"], teacher_probs(teachers, data["x_fit"])), y_val, sample_weight


def _train_student(job: RetrainJob, trial: dict, sub: Path, what: str, fit, extra_info: dict | None) -> dict:
    import keras

    label = f"trial {trial['trial_id']}"
    n_epochs = job.epochs_for(trial)
    say(f"training the {what} ({label}): "
        + (f"up to {n_epochs} epoch(s)" if job.train_on != "train+val" else f"{n_epochs} epoch(s) on train+val"))
    model, hp, history, wall, guarded = train_member(
        job.space, trial, data=job.data, run=job.run, epochs=n_epochs, seed=job.seed, patience=job.patience,
        label=label, fit=fit, deadline=job.deadline,
        backup_dir=job.backup_dir(trial, what, (extra_info or {}).get("distilled_from")))
    probs, seconds = timed_predict(model, job.data["x_te"], job.tta)
    save_model_files(sub, model, dict(hp.values), history, job.data["class_names"])
    extra = {**member_extra(trial, hp, job.train_on, job.seed, wall), **describe_learning_rate(model, history),
             "model": model_facts(model, sub / MODEL_FILE, job.data["x_te"], seconds, job.tta), "tta": job.tta,
             **(extra_info or {}),
             **job.budget_record(history, guarded)}
    metrics = model_metrics(sub, title=what, history=history, probs=probs, data=job.data, extra=extra)
    say(f"{what}: test accuracy {metrics['test_accuracy']:.4f}")
    del model
    keras.backend.clear_session()
    return metrics


def distill(job: RetrainJob, trial: dict, teacher_dir: Path):
    """Train the distilled student and the student alone, evaluate the teacher; ``(summary, sections, notes, top)``."""
    say(f"loading teacher from {teacher_dir}")
    if callable(getattr(job.space, "fit", None)):
        say("note: the space defines its own fit(); the distilled student is trained with plain model.fit "
            "(the student trained alone uses the space's fit)")
    teachers, info = load_teacher(teacher_dir, job.run, job.test_idx)
    notes = []
    if info["test_overlap_with_teacher_validation"]:
        notes.append(f"The teacher early-stopped on a validation set holding "
                     f"{info['test_overlap_with_teacher_validation']} of this run's test images; "
                     "its test accuracy here is slightly optimistic.")
    say(f"teacher: {len(teachers)} model(s); computing its softened outputs (T={DISTILL_TEMPERATURE:g})")
    targets = _teacher_targets(teachers, job.data)
    t_test = teacher_probs(teachers, job.data["x_te"])
    results = {
        "student": _train_student(job, trial, job.out, "distilled student", distill_fit(targets),
                                  {"distilled_from": info, "temperature": DISTILL_TEMPERATURE, "alpha": DISTILL_ALPHA}),
        "student_alone": _train_student(job, trial, job.out / "alone", "student trained alone", None, None),
    }
    results["teacher"] = model_metrics(job.out / "teacher", title="teacher", history={}, probs=t_test, data=job.data,
                                       extra={"run_dir": info["run_dir"], "model_files": info["model_files"]})
    say(f"teacher: test accuracy {results['teacher']['test_accuracy']:.4f}")
    label = f"trial {trial['trial_id']}"
    summary = [report.summary_row(n, results[k]) for n, k in (("distilled student", "student"),
                                                              ("student trained alone", "student_alone"),
                                                              ("teacher", "teacher"))]
    sections = [
        {"name": f"Distilled student ({label}, T={DISTILL_TEMPERATURE:g}, alpha={DISTILL_ALPHA:g})", "subdir": "",
         "hyperparameters": results["student"]["hyperparameters"], "metrics": results["student"]},
        {"name": f"Student trained alone ({label})", "subdir": "alone",
         "hyperparameters": results["student_alone"]["hyperparameters"], "metrics": results["student_alone"]},
        {"name": f"Teacher ({teacher_dir})", "subdir": "teacher", "hyperparameters": None,
         "metrics": results["teacher"]},
    ]
    top = dict(results["student"])
    top["distillation"] = {"temperature": DISTILL_TEMPERATURE, "alpha": DISTILL_ALPHA, **results}
    return summary, sections, notes, top
