"""Fitting a space's model, the same way in a search trial and in retrain-best.

EarlyStopping on ``val_accuracy`` (best weights restored), a guard that fails a trial on a NaN/inf
loss or past its time limit (and stops the fit on a Ctrl-C that Python lost), class weights from
the ``--class-weight`` flag, and the fit itself: the space's own ``fit(hp, model, ...)`` when it
has one, else ``model.fit``, with the batch size decided in one place (a ``batch_size``
hyperparameter wins; per replica under a strategy).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from fashion_tuner import devices, interrupts
from fashion_tuner.errors import UserError

OBJECTIVE = "val_accuracy"
DIRECTION = "max"
DEFAULT_PATIENCE = 3


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
    """EarlyStopping on val_accuracy (best weights restored) and the NaN / timeout / interrupt guard."""
    import keras

    return [
        keras.callbacks.EarlyStopping(monitor=OBJECTIVE, mode=DIRECTION, patience=patience,
                                      restore_best_weights=True),
        _trial_guard(timeout_s),
    ]


def _trial_guard(timeout_s: float | None):
    """A callback that fails the trial (Keras Tuner FailedTrialError) on NaN/inf loss or timeout, and
    raises a Ctrl-C / SIGTERM whose first KeyboardInterrupt was lost (:mod:`fashion_tuner.interrupts`)."""
    import keras
    import keras_tuner

    class TrialGuard(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.started = None

        def on_train_begin(self, logs=None):
            self.started = time.monotonic()

        def backup_state(self) -> dict:
            """For fashion_tuner.backup: the seconds this fit has run, so a resumed fit keeps counting."""
            return {"elapsed_s": time.monotonic() - self.started if self.started is not None else 0.0}

        def restore_backup_state(self, state: dict) -> None:
            self.started = time.monotonic() - float(state.get("elapsed_s") or 0.0)

        def on_train_batch_end(self, batch, logs=None):
            interrupts.raise_if_received()
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
                    input_pipeline: str = "auto", seed: int | None = None, backup=None, **kwargs):
    """Fit ``model`` the way the space wants: its own ``fit(hp, model, ...)`` when it has one,
    else ``model.fit``; a ``batch_size`` hyperparameter overrides ``batch_size``. Returns History.

    ``batch_size`` is per replica: under a distribution strategy the global batch is
    ``batch_size x replicas``. A space's own ``fit`` always receives the arrays; only this
    default path may feed ``tf.data`` (``input_pipeline``, see devices.resolve_input_pipeline),
    shuffled with ``seed`` (default: drawn from NumPy, which each trial seeds). ``backup``: a
    :class:`fashion_tuner.backup.FitSlots`: each ``model.fit`` is backed up per epoch and a rerun
    resumes it (see :mod:`fashion_tuner.backup`); None: no backup.
    """
    from fashion_tuner.backup import attached

    with attached(model, backup):
        return _fit(space, hp, model, x, y, validation_data=validation_data, epochs=epochs, batch_size=batch_size,
                    callbacks=callbacks, class_weight=class_weight, verbose=verbose, input_pipeline=input_pipeline,
                    seed=seed, **kwargs)


def _fit(space, hp, model, x, y, *, validation_data, epochs, batch_size, callbacks, class_weight, verbose,
         input_pipeline, seed, **kwargs):
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
