"""Signs of life inside a fit (fashion_tuner.fitprogress), on a real small Keras fit: a line per epoch and
lines inside an epoch when not on a terminal; one updating tqdm line with the fit's time left on one."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest

from fashion_tuner import fitprogress


def tiny_fit(callback, epochs: int = 2) -> None:
    import keras

    rng = np.random.default_rng(0)
    x, y = rng.random((256, 8)).astype("float32"), rng.integers(0, 2, 256)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, validation_data=(x[:64], y[:64]), epochs=epochs, batch_size=32, verbose=0, callbacks=[callback])


def test_not_on_a_terminal_a_line_per_epoch_and_inside_long_epochs(caplog, monkeypatch):
    monkeypatch.setattr(fitprogress, "QUIET_S", 0.0)  # every batch is "long": a line inside the epoch each time
    with caplog.at_level(logging.INFO, logger="fashion_tuner.fitprogress"):
        tiny_fit(fitprogress.fit_progress("trial 0007", tty=False))
    lines = [r.getMessage() for r in caplog.records]
    epoch_lines = [ln for ln in lines if "batch" not in ln]
    assert len(epoch_lines) == 2 and epoch_lines[0].startswith("trial 0007 epoch 1/2: ")
    assert "val_accuracy" in epoch_lines[1] and "left" in epoch_lines[0] and "left" not in epoch_lines[1]
    inside = [ln for ln in lines if "batch" in ln]
    assert inside and inside[0].startswith("trial 0007 epoch 1/2: batch ") and "/8" in inside[0] and "loss" in inside[0]


def test_on_a_terminal_one_updating_line_for_the_whole_fit(caplog):
    out = io.StringIO()
    with caplog.at_level(logging.INFO, logger="fashion_tuner.fitprogress"):
        tiny_fit(fitprogress.fit_progress("trial 0007", tty=True, stream=out))
    text = out.getvalue()
    assert not caplog.records  # the bar instead of lines
    assert "\r" in text and "trial 0007 epoch 2/2" in text and "/16" in text  # 2 epochs x 8 batches, one bar
    assert "accuracy" in text and "<" in text  # running metrics and the fit's time left
    assert "\n" not in text.rstrip("\n").replace("\r", "")  # one line, updated in place, erased at the end


@pytest.mark.parametrize("tty", [False, True])
def test_a_fit_that_starts_later_counts_from_its_first_epoch(tty):
    import keras

    out = io.StringIO()
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8)).astype("float32"), rng.integers(0, 2, 64)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # a Hyperband continuation: epochs 3..4 of 4
    model.fit(x, y, epochs=4, initial_epoch=2, batch_size=32, verbose=0,
              callbacks=[fitprogress.fit_progress("trial 0009", tty=tty, stream=out)])
    if tty:
        assert "trial 0009 epoch 3/4" in out.getvalue() and "/4 " in out.getvalue()  # 2 epochs x 2 batches
