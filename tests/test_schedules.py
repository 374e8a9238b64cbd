"""fashion_tuner.schedules: the cosine schedule follows the fit the engine describes; the plateau callback."""

from __future__ import annotations

from fashion_tuner import schedules, spaces


def test_cosine_steps_follow_the_engine(monkeypatch):
    monkeypatch.setattr(spaces, "_CONTEXT", spaces.DataContext(extra={"train_size": 1000, "max_epochs": 3}))
    assert schedules.cosine_decay_steps(100) == 30
    monkeypatch.setattr(spaces, "_CONTEXT", spaces.DataContext(extra={"steps_per_epoch": 7}))
    assert schedules.cosine_decay_steps(100) == 7 * schedules.DEFAULT_MAX_EPOCHS


def test_plateau_watches_validation_loss_when_there_is_validation_data():
    assert schedules.plateau_callback({"validation_data": ([0], [0])}).monitor == "val_loss"
    assert schedules.plateau_callback({"validation_split": 0.1}).monitor == "val_loss"
    plain = schedules.plateau_callback({})
    assert plain.monitor == "loss" and plain.factor == schedules.PLATEAU_FACTOR
