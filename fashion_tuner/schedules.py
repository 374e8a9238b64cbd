"""Learning-rate schedules a space lays out for the fit the engine runs.

A cosine schedule decays over the fit's own steps (``steps_per_epoch x max_epochs``), which the
search and ``retrain-best`` put in ``data_context().extra`` before building a model; the plateau
schedule is a callback.
"""

from __future__ import annotations

import math

import keras

from fashion_tuner.spaces import data_context

COSINE_FINAL_FRACTION = 0.01  # the cosine ends at 1 % of the peak rate
PLATEAU_FACTOR = 0.5
PLATEAU_PATIENCE = 2
PLATEAU_MIN_LR = 1e-6
# Used for the cosine schedule when the engine does not say (data_context().extra).
DEFAULT_TRAIN_SIZE = 54_000
DEFAULT_MAX_EPOCHS = 20


def cosine_decay_steps(batch_size: int) -> int:
    """Steps over which the cosine schedule decays: steps_per_epoch x max_epochs.

    Read from ``data_context().extra``: ``steps_per_epoch`` if the engine gives it, else
    ``ceil(train_size / batch_size)`` (``train_size`` from extra, else ``len(x_train)``, else
    ``DEFAULT_TRAIN_SIZE``); ``max_epochs`` from extra, else ``DEFAULT_MAX_EPOCHS``.
    """
    ctx = data_context()
    steps = ctx.extra.get("steps_per_epoch")
    if not steps:
        size = ctx.extra.get("train_size") or (len(ctx.x_train) if ctx.x_train is not None else DEFAULT_TRAIN_SIZE)
        steps = math.ceil(size / batch_size)
    epochs = ctx.extra.get("max_epochs") or DEFAULT_MAX_EPOCHS
    return max(1, int(steps) * int(epochs))


def cosine_schedule(learning_rate: float, batch_size: int) -> keras.optimizers.schedules.CosineDecay:
    """``learning_rate`` decayed to ``COSINE_FINAL_FRACTION`` of itself over :func:`cosine_decay_steps`."""
    return keras.optimizers.schedules.CosineDecay(learning_rate, cosine_decay_steps(batch_size),
                                                  alpha=COSINE_FINAL_FRACTION)


def plateau_callback(fit_kwargs: dict) -> keras.callbacks.ReduceLROnPlateau:
    """Halve the rate after ``PLATEAU_PATIENCE`` epochs without a better validation loss (training loss
    when ``fit_kwargs`` has no validation data)."""
    has_val = fit_kwargs.get("validation_data") is not None or bool(fit_kwargs.get("validation_split"))
    return keras.callbacks.ReduceLROnPlateau(monitor="val_loss" if has_val else "loss", factor=PLATEAU_FACTOR,
                                             patience=PLATEAU_PATIENCE, min_lr=PLATEAU_MIN_LR, verbose=0)
