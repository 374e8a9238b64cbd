"""``python main.py retrain-best``: retrain the best trial (or the top K, or a distilled student)
from scratch and evaluate it once on the run's held-out test split.

The search never saw the test images; this is the one place they are used. Everything
lands in ``RUN_DIR/report/`` (see :func:`retrain_best`), built in a temporary folder and
swapped in at the end, so a failed or interrupted retrain leaves the previous report and
the tuner's own files untouched.

Layout of ``report/``:

- one model: ``best_model.keras``, ``class_names.json``, ``history.csv``,
  ``hyperparameters.json``, ``test_probabilities.npy`` ``(n_test, C)``, the figures,
  ``classification_report.{txt,csv}``, ``metrics.json``, ``report.html``, ``report.md``;
- ``--top-k K > 1``: the above per member in ``model_1..K/`` (best first); the top folder
  holds the ensemble's (average of the members' softmax outputs) figures, probabilities and
  a ``metrics.json`` with ``"ensemble"`` and ``"members"``;
- ``--distill-from TEACHER_RUN``: the top folder is the distilled student; ``alone/`` is
  the same architecture trained without the teacher and ``teacher/`` the teacher's
  evaluation on this run's test split; ``metrics.json`` has ``"distillation"``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from fashion_tuner import hints, locks, report, runs, spaces
from fashion_tuner.errors import UserError

TRAIN_ON = ("train", "train+val", "full")
DEFAULT_EPOCHS = 10
DEFAULT_PATIENCE = 3
DEFAULT_BATCH_SIZE = 128
PREDICT_BATCH = 1024
LATENCY_REPEATS = 20  # single-image inference calls timed for the report (median)
# Knowledge distillation (Hinton et al. 2015): softened targets at temperature T, loss
# alpha * CE(labels) + (1 - alpha) * T^2 * KL(teacher_T || student_T).
DISTILL_TEMPERATURE = 4.0
DISTILL_ALPHA = 0.5
MODEL_FILE = "best_model.keras"
PROBS_FILE = "test_probabilities.npy"
CLASS_NAMES_FILE = "class_names.json"


def say(msg: str) -> None:
    print(f"[retrain-best] {msg}", flush=True)


# ----------------------------------------------------------------------------- reading the run

def trial_epochs(trial: dict, fallback: int) -> int:
    """Epochs the trial's configuration needed to reach its best score, counted from the start of
    training (a Hyperband continuation adds its parent's ``tuner/initial_epoch``), else ``tuner/epochs``."""
    from fashion_tuner.tables import best_epoch

    step = trial.get("best_step")
    values = (trial.get("hyperparameters") or {}).get("values", {})
    if isinstance(step, int) and step >= 0:
        return best_epoch(step, values)
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


def _clean_stale(run_dir: Path) -> None:
    """Remove temporary report folders left by killed retrains (their process is gone)."""
    for path in Path(run_dir).glob(".report.*-*"):
        try:
            pid = int(path.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, PermissionError, OSError):
            continue


def swap_in(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` (both in one folder, so each rename is atomic)."""
    if final.exists():
        old = final.with_name(f".report.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


# ----------------------------------------------------------------------------- training

def _verbose() -> int:
    return 1 if sys.stdout.isatty() else 2  # progress bar in a terminal, a line per epoch in logs


def _batch_size(hp, run_args: dict) -> int:
    return int(hp.values.get("batch_size", run_args.get("batch_size") or DEFAULT_BATCH_SIZE))


def _class_weight(run: dict, y: np.ndarray, class_names: list[str]) -> dict | None:
    stored = run.get("class_weight")
    if isinstance(stored, dict):
        return {int(k): float(v) for k, v in stored.items()}
    from fashion_tuner.tuning import resolve_class_weight

    return resolve_class_weight(run.get("args", {}).get("class_weight"), y, class_names)


def _fit(space, hp, model, x, y, val, *, epochs, run_args, class_weight, patience, label):
    """One fit with the search's callbacks; a diverging fit becomes a UserError."""
    import keras_tuner

    from fashion_tuner.tuning import fit_space_model, standard_callbacks

    callbacks = standard_callbacks(patience)
    if val is None:
        callbacks = callbacks[1:]  # no validation set to stop on: keep only the NaN guard
    try:
        return fit_space_model(space, hp, model, x, y, validation_data=val, epochs=epochs,
                               batch_size=_batch_size(hp, run_args), callbacks=callbacks,
                               class_weight=class_weight, verbose=_verbose())
    except keras_tuner.errors.FailedTrialError as exc:
        raise UserError(f"retraining {label} failed: {exc}; try another --seed") from None


def _history_dict(history) -> dict:
    return {k: [float(v) for v in vals] for k, vals in (getattr(history, "history", None) or {}).items()}


def _predict(model, x: np.ndarray) -> np.ndarray:
    probs = np.asarray(model.predict(x, batch_size=PREDICT_BATCH, verbose=0), dtype=np.float64)
    return probs


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


def model_facts(model, path: Path, x: np.ndarray, batch_seconds: float) -> dict:
    """Size and speed of a saved model: parameters, the .keras file's size on disk (MB), and inference
    time per image in milliseconds, batched (``batch_seconds`` to predict ``x`` in batches of
    PREDICT_BATCH) and for one image alone (median of LATENCY_REPEATS calls after a warm-up), both on
    this machine's devices."""
    one = x[:1]
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
            "ms_per_image_single": round(1000.0 * float(np.median(times)), 3)}


def _timed_predict(model, x: np.ndarray) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    probs = _predict(model, x)
    return probs, time.perf_counter() - started


def _save_model_files(out: Path, model, hp_values: dict, history: dict, class_names: list[str]) -> None:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)
    (out / CLASS_NAMES_FILE).write_text(json.dumps(class_names) + "\n")
    (out / "hyperparameters.json").write_text(json.dumps(hp_values, indent=2, default=str) + "\n")
    frame = pd.DataFrame(history)
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    frame.to_csv(out / "history.csv", index=False)


def _model_metrics(out: Path, *, title: str, history: dict, probs: np.ndarray, data: dict, extra: dict,
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
    if history:
        metrics["epochs_trained"] = len(history.get("loss", []))
        metrics["best_epoch"] = best + 1
        if history.get("val_accuracy") and train_on != "train+val":
            metrics["val_accuracy"] = history["val_accuracy"][best]
    metrics.update(extra)
    metrics.update(data["provenance"])
    runs.write_json(out / "metrics.json", metrics)
    return metrics


def train_member(space, trial: dict, *, data: dict, run: dict, epochs: int, train_on: str, seed: int,
                 patience: int, label: str, targets=None):
    """Build the trial's model from its hyperparameters and fit it from scratch.

    ``targets``: ``(y_train, y_val, sample_weight)`` for distillation (see :func:`distill_member`);
    ``None`` for ordinary training. Returns ``(model, hp, history dict, wall seconds)``.
    """
    import keras
    import keras_tuner

    from fashion_tuner import devices

    # from_config turns the nested condition dicts into objects in place: give it a copy.
    hp = keras_tuner.HyperParameters.from_config(copy.deepcopy(trial["hyperparameters"]))
    keras.utils.set_random_seed(seed)
    devices.apply_trial_settings()  # the policy and distribution, reset by every clear_session()
    model = space.build_model(hp)
    x, y = data["x_fit"], data["y_fit"]
    val = data["val"]
    class_weight = data["class_weight"]
    started = time.monotonic()
    if targets is None:
        history = _fit(space, hp, model, x, y, val, epochs=epochs, run_args=run.get("args", {}),
                       class_weight=class_weight, patience=patience, label=label)
    else:
        history = distill_fit(hp, model, x, targets, val, epochs=epochs, run_args=run.get("args", {}),
                              patience=patience, label=label)
    return model, hp, _history_dict(history), time.monotonic() - started


# ----------------------------------------------------------------------------- distillation

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


def distill_fit(hp, model, x, targets, val, *, epochs, run_args, patience, label):
    """Fit ``model`` on ``(N, 1 + C)`` distillation targets; the metric stays named "accuracy".

    The space's own ``fit()`` is bypassed (it would train on the hard labels). Afterwards the
    model is recompiled with the plain loss, so the saved file loads with ``safe_mode=True``
    and no custom objects.
    """
    import keras
    import keras_tuner

    from fashion_tuner.tuning import standard_callbacks

    y_fit, y_val, sample_weight = targets
    model.compile(optimizer=model.optimizer, loss=distillation_loss,
                  metrics=[keras.metrics.MeanMetricWrapper(_label_accuracy, name="accuracy")])
    callbacks = standard_callbacks(patience) if val is not None else standard_callbacks(patience)[1:]
    try:
        history = model.fit(x, y_fit, validation_data=(val[0], y_val) if val is not None else None,
                            epochs=epochs, batch_size=_batch_size(hp, run_args), callbacks=callbacks,
                            sample_weight=sample_weight, verbose=_verbose())
    except keras_tuner.errors.FailedTrialError as exc:
        raise UserError(f"distilling {label} failed: {exc}; try another --seed") from None
    model.compile(optimizer=model.optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return history


def load_teacher(teacher_dir: Path, run: dict, test_idx: np.ndarray):
    """The teacher run's retrained model(s) and what it may have seen of our test split.

    Returns ``(models, info)``; ``info`` has ``run_dir``, ``model_files`` and ``test_overlap``
    (how many of our test images the teacher used for validation).
    """
    from fashion_tuner import splits
    from fashion_tuner.predict import load_model

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
    return [load_model(f) for f in files], {"run_dir": str(teacher_dir), "model_files": [str(f) for f in files],
                                             "test_overlap_with_teacher_validation": overlap}


def teacher_probs(models, x: np.ndarray) -> np.ndarray:
    """Average of the teacher models' softmax outputs ``(N, C)``."""
    return np.mean([_predict(m, x) for m in models], axis=0)


# ----------------------------------------------------------------------------- the command

def retrain_plan(search_args: dict, epochs: int | None, train_on: str | None) -> tuple[int, str, int]:
    """``(max_epochs, train_on, patience)`` for retraining: the flags when given, else the run's
    ``retrain_defaults`` (recorded by a default-budget search of a built-in space), else the search's own
    max epochs and patience and ``"train"``."""
    defaults = search_args.get("retrain_defaults") or {}
    return (int(epochs or defaults.get("epochs") or search_args.get("max_epochs") or DEFAULT_EPOCHS),
            train_on or defaults.get("train_on") or "train",
            int(defaults.get("patience") or search_args.get("patience") or DEFAULT_PATIENCE))


def retrain_best(run: str | None, results_dir: str = str(runs.DEFAULT_RESULTS_DIR), name: str | None = None,
                 epochs: int | None = None, top_k: int = 1, train_on: str | None = None, seed: int = 42,
                 distill_from: str | None = None, data_dir: str | None = None, space: str | None = None) -> Path:
    """Retrain, evaluate on the held-out test split, write ``RUN_DIR/report/``; returns that folder.

    ``epochs`` / ``train_on`` left as None take the run's ``retrain_defaults`` (a default-budget
    search of a built-in space: more epochs; cnn/transfer on every training image), else the
    search's max epochs and "train".
    """
    if train_on is not None and train_on not in TRAIN_ON:
        raise UserError(f"--train-on must be one of {', '.join(TRAIN_ON)}, not {train_on!r}")
    if top_k < 1:
        raise UserError(f"--top-k must be at least 1, not {top_k}")
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs must be at least 1, not {epochs}")
    if distill_from and top_k > 1:
        raise UserError("--distill-from trains one student: leave out --top-k (the teacher may be an ensemble)")
    _check_some_run_exists(run, results_dir)
    run_dir = runs.resolve_run(run, results_dir, name)
    with locks.RunLock(run_dir, "retrain-best"):  # one writer per run: not during its search or another retrain
        return _retrain_best(run_dir, results_dir, epochs, top_k, train_on, seed, distill_from, data_dir, space)


def _retrain_best(run_dir: Path, results_dir: str, epochs: int | None, top_k: int, train_on: str | None, seed: int,
                  distill_from: str | None, data_dir: str | None, space_arg: str | None) -> Path:
    run_info = runs.read_run(run_dir)
    direction = run_info.get("direction", "max")
    trials = runs.read_trials(run_dir)
    done = runs.ranked_trials(trials, direction)
    if not done:
        counts = {}
        for t in trials:
            counts[t.get("status")] = counts.get(t.get("status"), 0) + 1
        seen = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no trials"
        raise UserError(f"run {run_dir} has no completed trial ({seen}); run or resume the search first")
    space_name = resolve_space(run_info, space_arg)
    teacher_dir = None
    if distill_from:
        teacher_dir = runs.resolve_run(distill_from, results_dir)
        if teacher_dir.resolve() == run_dir.resolve():
            raise UserError("--distill-from names the run being retrained; the teacher must be another run "
                            "(retraining would replace the teacher's own report)")
    if top_k > len(done):
        say(f"only {len(done)} completed trial(s): using {len(done)} instead of --top-k {top_k}")
        top_k = len(done)
    chosen = done[:top_k]
    args = run_info.get("args", {})
    max_epochs, train_on, patience = retrain_plan(args, epochs, train_on)

    say(f"run {run_dir}: {len(done)} completed trial(s); retraining "
        + ", ".join(f"trial {t['trial_id']} ({t['score']:.4f})" for t in chosen))
    from fashion_tuner import devices, tuning

    device_info = devices.setup("none", args.get("mixed_precision"), bool(args.get("deterministic")))
    space = spaces.load_space(space_name)
    say("loading data and the saved split")
    dataset, split, (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = runs.load_run_data(run_info, data_dir)
    class_names = dataset.class_names
    if train_on == "full":
        # a search on a --subset chose the architecture; the final model gets every training image
        # of the pool (never a validation or held-out test image)
        pool = np.setdiff1d(np.arange(dataset.y_train.size),
                            split.val_idx if split.val_source == "train" else np.array([], dtype=np.int64))
        x_tr, y_tr = runs.to_model_input(dataset.x_train[pool]), dataset.y_train[pool]
    if train_on == "train+val":
        x_fit, y_fit, val = np.concatenate([x_tr, x_val]), np.concatenate([y_tr, y_val]), None
    else:
        x_fit, y_fit, val = x_tr, y_tr, (x_val, y_val)
    # the images and epochs of this training (a cosine schedule decays over exactly these)
    spaces.set_data_context(tuning.make_data_context(dataset, x_fit, run_dir.parent, int(args.get("seed", 42)),
                                                     args.get("weights"), max_epochs))
    data = {
        "x_fit": x_fit, "y_fit": y_fit, "val": val, "x_te": x_te, "y_te": y_te, "class_names": class_names,
        "run_name": run_info.get("name", run_dir.name),
        "class_weight": _class_weight(run_info, y_tr, class_names),
        "provenance": {
            "class_names": class_names,
            "test_indices_sha256": report.array_sha256(np.asarray(split.test_idx, dtype=np.int64)),
            "test_labels_sha256": report.array_sha256(np.asarray(y_te, dtype=np.int64)),
            "split_file": str(run_dir / runs.SPLIT_FILE),
            "backend": {"name": device_info["backend"], "version": device_info["backend_version"],
                        "policy": device_info["policy"]},
        },
    }
    if train_on == "train" and len(y_tr) < dataset.y_train.size - (len(y_val) if split.val_source == "train" else 0):
        say(f"note: the search used a {len(y_tr)}-image subset; `--train-on full` retrains on every training image")
    say(f"train {len(y_fit)} images ({train_on}), validation {0 if val is None else len(val[1])}, "
        f"held-out test {len(y_te)} (evaluated once, after training)")

    _clean_stale(run_dir)
    tmp = run_dir / f".report.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        if teacher_dir is not None:
            summary, sections, notes, top_metrics = _distill(space, chosen[0], teacher_dir, data, run_info, tmp,
                                                             max_epochs, epochs, train_on, seed, patience, split)
        else:
            summary, sections, notes, top_metrics = _retrain_members(space, chosen, data, run_info, tmp,
                                                                     max_epochs, epochs, train_on, seed, patience)
        runs.write_json(tmp / "metrics.json", top_metrics)
        leaderboard = report.leaderboard_rows(trials, direction)
        review_link = _write_review(run_dir, tmp)
        report.write_report_pages(tmp, title=f"fashion_tuner report: {run_info.get('name', run_dir.name)}",
                                  run={k: v for k, v in run_info.items()}, leaderboard=leaderboard,
                                  summary=summary, sections=sections, notes=notes, review_link=review_link)
        final = run_dir / runs.REPORT_DIR
        swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _write_review(run_dir: Path, report_dir: Path) -> str | None:
    """The search's review page (``review`` command) in ``report_dir/review/``, so the report can link to a
    page of the same moment; returns the link relative to the report, or None when it cannot be made."""
    import contextlib
    import io

    from fashion_tuner import review

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            review.review_project(review.load_project(run_dir, warn=lambda msg: None), report_dir / "review")
    except (UserError, OSError, ValueError) as exc:
        say(f"note: no review page in the report ({exc})")
        return None
    return "review/review.html"


def _check_some_run_exists(run: str | None, results_dir: str) -> None:
    """Before any search has run, say so and give the command that makes one (not "run not found")."""
    if run and (os.sep in run or Path(run).expanduser().exists()):
        return  # a path: resolve_run says whether it exists
    root = Path(results_dir).expanduser()
    if root.is_dir() and any((d / runs.RUN_JSON).is_file() for d in root.iterdir() if d.is_dir()):
        return
    raise UserError(f"there are no runs in {root} yet: run a search first, e.g. "
                    f"`{hints.command('search', '--space', 'mlp', '--results-dir', str(root))}` "
                    "(about 15 min on 2 CPU cores), then retrain-best its run")


def _epochs_for(trial: dict, train_on: str, max_epochs: int, explicit: int | None) -> int:
    if train_on == "train+val" and explicit is None:
        return trial_epochs(trial, max_epochs)
    return max_epochs


def _member_extra(trial: dict, hp, train_on: str, seed: int, wall_s: float) -> dict:
    return {"trial_id": trial["trial_id"], "search_score": trial["score"], "train_on": train_on, "seed": seed,
            "wall_s": round(wall_s, 2), "hyperparameters": dict(hp.values)}


def _retrain_members(space, chosen, data, run, out, max_epochs, explicit, train_on, seed, patience):
    k = len(chosen)
    members, member_probs, sections = [], [], []
    for i, trial in enumerate(chosen, start=1):
        sub = out if k == 1 else out / f"model_{i}"
        label = f"trial {trial['trial_id']}"
        n_epochs = _epochs_for(trial, train_on, max_epochs, explicit)
        how = (f"up to {n_epochs} epoch(s), EarlyStopping on val_accuracy" if train_on != "train+val"
               else f"{n_epochs} epoch(s) on train+val, no early stopping")
        say(f"[{i}/{k}] training {label}: {how}")
        model, hp, history, wall = train_member(space, trial, data=data, run=run, epochs=n_epochs,
                                                train_on=train_on, seed=seed, patience=patience, label=label)
        say(f"[{i}/{k}] evaluating {label} on the held-out test split")
        probs, seconds = _timed_predict(model, data["x_te"])
        _save_model_files(sub, model, dict(hp.values), history, data["class_names"])
        title = f"trial {trial['trial_id']}" if k == 1 else f"model_{i} (trial {trial['trial_id']})"
        extra = {**_member_extra(trial, hp, train_on, seed, wall), **describe_learning_rate(model, history),
                 "model": model_facts(model, sub / MODEL_FILE, data["x_te"], seconds)}
        metrics = _model_metrics(sub, title=title, history=history, probs=probs, data=data, extra=extra)
        say(f"[{i}/{k}] {label}: test accuracy {metrics['test_accuracy']:.4f} "
            f"(95% CI {metrics['test_accuracy_ci95'][0]:.4f}-{metrics['test_accuracy_ci95'][1]:.4f}), "
            f"{metrics['epochs_trained']} epochs, {wall:.1f} s")
        members.append(metrics)
        member_probs.append(probs)
        sections.append({"name": f"Best trial ({label})" if k == 1 else f"Member {i}: {label}",
                         "subdir": "" if k == 1 else sub.name, "hyperparameters": dict(hp.values),
                         "metrics": metrics})
        import keras

        del model
        keras.backend.clear_session()
    if k == 1:
        return [report.summary_row(f"trial {chosen[0]['trial_id']}", members[0])], sections, [], members[0]

    say(f"evaluating the ensemble of {k} (average of softmax outputs)")
    ens_probs = np.mean(member_probs, axis=0)
    compare = {f"model_{i} (trial {m['trial_id']})": np.asarray(m["confusion_matrix"])
               for i, m in enumerate(members, start=1)}
    ens = _model_metrics(out, title=f"ensemble of {k}", history={}, probs=ens_probs, data=data,
                         extra={"members": [f"model_{i}" for i in range(1, k + 1)],
                                "trial_ids": [t["trial_id"] for t in chosen], "train_on": train_on, "seed": seed,
                                "wall_s": round(sum(m["wall_s"] for m in members), 2),
                                "model": {key: round(sum(m["model"][key] for m in members), 4) for key in
                                          ("parameters", "trainable_parameters", "size_mb", "ms_per_image_batched",
                                           "ms_per_image_single")}},
                         compare=compare)
    say(f"ensemble: test accuracy {ens['test_accuracy']:.4f} (best member "
        f"{max(m['test_accuracy'] for m in members):.4f})")
    summary = [report.summary_row(f"ensemble of {k}", ens)] + [
        report.summary_row(f"model_{i} (trial {m['trial_id']})", m) for i, m in enumerate(members, start=1)]
    sections.insert(0, {"name": f"Ensemble of the top {k} trials (averaged softmax)", "subdir": "",
                        "hyperparameters": None, "metrics": ens})
    top = {"ensemble": ens, "members": members, "class_names": data["class_names"],
           **data["provenance"]}
    return summary, sections, [], top


def _distill(space, trial, teacher_dir, data, run, out, max_epochs, explicit, train_on, seed, patience, split):
    say(f"loading teacher from {teacher_dir}")
    if callable(getattr(space, "fit", None)):
        say("note: the space defines its own fit(); the distilled student is trained with plain model.fit "
            "(the student trained alone uses the space's fit)")
    teachers, info = load_teacher(teacher_dir, run, split.test_idx)
    notes = []
    if info["test_overlap_with_teacher_validation"]:
        notes.append(f"The teacher early-stopped on a validation set holding "
                     f"{info['test_overlap_with_teacher_validation']} of this run's test images; "
                     "its test accuracy here is slightly optimistic.")
    say(f"teacher: {len(teachers)} model(s); computing its softened outputs (T={DISTILL_TEMPERATURE:g})")
    t_fit = teacher_probs(teachers, data["x_fit"])
    t_test = teacher_probs(teachers, data["x_te"])
    y_val_comb = None
    if data["val"] is not None:
        y_val_comb = distill_targets(data["val"][1], teacher_probs(teachers, data["val"][0]))
    cw = data["class_weight"]
    sample_weight = None if not cw else np.array([cw.get(int(c), 1.0) for c in data["y_fit"]], dtype=np.float32)
    targets = (distill_targets(data["y_fit"], t_fit), y_val_comb, sample_weight)
    n_epochs = _epochs_for(trial, train_on, max_epochs, explicit)
    label = f"trial {trial['trial_id']}"
    import keras

    results = {}
    for key, sub, tg, what in (("student", out, targets, "distilled student"),
                               ("student_alone", out / "alone", None, "student trained alone")):
        say(f"training the {what} ({label}): "
            + (f"up to {n_epochs} epoch(s)" if train_on != "train+val" else f"{n_epochs} epoch(s) on train+val"))
        model, hp, history, wall = train_member(space, trial, data=data, run=run, epochs=n_epochs,
                                                train_on=train_on, seed=seed, patience=patience, label=label,
                                                targets=tg)
        probs, seconds = _timed_predict(model, data["x_te"])
        _save_model_files(sub, model, dict(hp.values), history, data["class_names"])
        extra = {**_member_extra(trial, hp, train_on, seed, wall), **describe_learning_rate(model, history),
                 "model": model_facts(model, sub / MODEL_FILE, data["x_te"], seconds)}
        if key == "student":
            extra.update(distilled_from=info, temperature=DISTILL_TEMPERATURE, alpha=DISTILL_ALPHA)
        results[key] = _model_metrics(sub, title=what, history=history, probs=probs, data=data, extra=extra)
        say(f"{what}: test accuracy {results[key]['test_accuracy']:.4f}")
        del model
        keras.backend.clear_session()
    results["teacher"] = _model_metrics(out / "teacher", title="teacher", history={}, probs=t_test, data=data,
                                        extra={"run_dir": info["run_dir"], "model_files": info["model_files"]})
    say(f"teacher: test accuracy {results['teacher']['test_accuracy']:.4f}")
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


def retrain_best_command(run: str | None, results_dir: str, name: str | None, epochs: int | None, top_k: int,
                         train_on: str | None, seed: int, distill_from: str | None, data_dir: str | None,
                         space: str | None = None) -> int:
    """CLI entry for ``retrain-best``; returns the exit status (0)."""
    out = retrain_best(run, results_dir, name, epochs, top_k, train_on, seed, distill_from, data_dir, space)
    metrics = json.loads((out / "metrics.json").read_text())
    head = metrics.get("ensemble", metrics)
    lo, hi = head["test_accuracy_ci95"]
    say(f"test accuracy {head['test_accuracy']:.4f} (95% CI {lo:.4f}-{hi:.4f}), macro F1 {head['macro_f1']:.4f} "
        f"on {head['n_test']} held-out test images")
    say(f"report: {out / 'report.html'}")
    return 0
