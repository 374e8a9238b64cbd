"""The CNN search space: every hyperparameter's extremes build and compile, the default learns,
mixed and smoothed labels train and serialise, and a search through the engine runs."""

from __future__ import annotations

import copy
import json

import keras
import keras_tuner as kt
import numpy as np
import pytest
from conftest import synthetic_arrays

from fashion_tuner import soft_labels, spaces

cnn = spaces.load_space("cnn")
CHANCE = 0.1  # ten classes

LOW = {  # the low end (or first value) of every hyperparameter
    "batch_size": 64, "augment": False, "conv_blocks": 1, "filters_base": 16, "kernel_size": 3,
    "batch_norm": False, "activation": "elu", "pooling": "avg", "residual": False, "squeeze_excite": False,
    "convs_block1": 1, "dropout_block1": 0.0, "head_pooling": "global_avg", "dense_units": 64,
    "dropout_head": 0.0, "optimizer": "sgd", "sgd_learning_rate": 1e-3, "weight_decay": 1e-5,
    "lr_schedule": "constant", "label_smoothing": 0.0, "mixing": "none",
}
HIGH = {  # the high end (or last value) of every hyperparameter
    "batch_size": 256, "augment": True, "translation": 0.15, "rotation": 0.1, "zoom": 0.15, "horizontal_flip": True,
    "conv_blocks": 4, "filters_base": 64, "kernel_size": 5, "batch_norm": True, "activation": "swish",
    "pooling": "max", "residual": True, "squeeze_excite": True, "head_pooling": "flatten", "dense_units": 512,
    "dropout_head": 0.6, "optimizer": "adamw", "learning_rate": 1e-2, "weight_decay": 5e-2,
    "lr_schedule": "cosine", "label_smoothing": 0.2, "mixing": "cutmix", "mixing_alpha": 1.0,
    **{f"convs_block{i}": 2 for i in range(1, 5)}, **{f"dropout_block{i}": 0.5 for i in range(1, 5)},
}


@pytest.fixture(autouse=True)
def context(monkeypatch):
    """Each test starts from the default data context and leaves it as it was."""
    monkeypatch.setattr(spaces, "_CONTEXT", spaces.DataContext())


@pytest.fixture(scope="module")
def registered_hp():
    """HyperParameters holding every hyperparameter of the space (one default build registers all)."""
    hp = kt.HyperParameters()
    cnn.build_model(hp)
    return hp


def configure(registered_hp, values: dict):
    """A copy of the space's hyperparameters with ``values`` set (and only the active ones kept)."""
    hp = copy.deepcopy(registered_hp)
    hp.values.update(values)
    hp.values = {k: v for k, v in hp.values.items() if hp.is_active(k)}
    hp.ensure_active_values()
    return hp


@pytest.fixture(scope="module")
def learnable():
    """((x, y), (x_val, y_val)): 1000 + 200 synthetic images ``(N, 28, 28, 1)`` float32 0..255 whose class is
    a bright bar's position (conftest.synthetic_arrays), learnable in a few steps, so accuracy after a
    short fit says whether the model learns."""
    (x, y), (xv, yv) = synthetic_arrays(1000, 200, seed=0)
    return (x[..., None].astype("float32"), y.astype("int64")), (xv[..., None].astype("float32"), yv.astype("int64"))


def schedule(model) -> object:
    """The optimizer's learning rate as configured (a schedule object or a float), from its public config."""
    lr = model.optimizer.get_config()["learning_rate"]
    return keras.optimizers.schedules.deserialize(lr) if isinstance(lr, dict) else lr


def test_per_block_hyperparameters_are_conditional(registered_hp):
    hp = configure(registered_hp, {"conv_blocks": 1})
    assert hp.is_active("convs_block1") and not hp.is_active("convs_block2")
    assert not hp.is_active("dropout_block4")
    assert not hp.is_active("mixing_alpha") and not hp.is_active("sgd_learning_rate")
    assert "weight_decay" not in hp  # plain Adam by default


def test_default_is_three_blocks_32_64_128(registered_hp):
    model = cnn.build_model(copy.deepcopy(registered_hp))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 64, 64, 128, 128]
    assert model.optimizer.__class__.__name__ == "Adam"
    assert model.loss == "sparse_categorical_crossentropy"
    print("default CNN parameters:", model.count_params())
    assert 700_000 < model.count_params() < 900_000  # 805,546 measured: five 3x3 convs, 256-unit head


def test_low_end_builds_and_compiles(registered_hp):
    hp = configure(registered_hp, LOW)
    model = cnn.build_model(hp)
    assert model.optimizer.__class__.__name__ == "SGD"
    assert model.output_shape == (None, 10)
    assert [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)] == [16]
    print("low-end CNN parameters:", model.count_params())
    assert 1_500 < model.count_params() < 2_500  # 1,898 measured: one 16-filter conv, global pooling


def test_high_end_builds_and_compiles(registered_hp):
    hp = configure(registered_hp, HIGH)
    model = cnn.build_model(hp)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    main_convs = [c for c in convs if c.kernel_size != (1, 1)]
    assert [c.filters for c in main_convs] == [64, 64, 128, 128, 256, 256, 256, 256]  # widening, capped at 256
    assert all(c.kernel_size == (5, 5) for c in main_convs)
    names = {layer.name for layer in model.layers}
    assert {"block4_add", "block4_se_scale", "aug_rotation", "aug_zoom"} <= names
    assert isinstance(schedule(model), keras.optimizers.schedules.CosineDecay)
    assert isinstance(model.loss, soft_labels.LabelCrossentropy) and model.loss.label_smoothing == 0.2
    print("high-end CNN parameters:", model.count_params())
    assert 6_000_000 < model.count_params() < 8_000_000  # 7,069,858 measured: eight 5x5 convs up to 256 filters


def test_default_learns_and_round_trips(registered_hp, learnable, tmp_path):
    keras.utils.set_random_seed(0)
    hp = copy.deepcopy(registered_hp)
    model = cnn.build_model(hp)
    (x, y), (xv, yv) = learnable
    history = cnn.fit(hp, model, x, y, batch_size=hp.get("batch_size"), epochs=2, validation_data=(xv, yv), verbose=0)
    acc = history.history["val_accuracy"][-1]
    # 0.57 measured (0.34-0.57 over seeds 0-2); chance is 0.1 and its standard error on 200 images 0.02
    assert acc > CHANCE + 0.15, history.history
    assert isinstance(schedule(model), keras.optimizers.schedules.CosineDecay)  # the default
    path = tmp_path / "cnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(xv[:16], verbose=0), model.predict(xv[:16], verbose=0), atol=1e-5)


@pytest.mark.parametrize("mixing", ["mixup", "cutmix"])
def test_mixing_trains_on_soft_labels_and_validates_on_integers(registered_hp, learnable, tmp_path, mixing):
    keras.utils.set_random_seed(0)
    # flatten: the synthetic classes differ by where the bar is, which global pooling averages away
    hp = configure(registered_hp, {**LOW, "conv_blocks": 1, "mixing": mixing, "mixing_alpha": 0.4, "head_pooling": "flatten",
                                   "label_smoothing": 0.1, "optimizer": "adam", "learning_rate": 1e-3})
    model = cnn.build_model(hp)
    (x, y), (xv, yv) = learnable
    x, y, xv, yv = x[:256], y[:256], xv[:128], yv[:128]
    history = cnn.fit(hp, model, x, y, batch_size=64, epochs=1, validation_data=(xv, yv), verbose=0)
    assert history.history["accuracy"][0] > CHANCE + 0.2  # 0.60 measured on the mixed (soft) labels
    _, acc = model.evaluate(xv, yv, verbose=0)  # integer labels after training on soft ones
    assert acc > CHANCE + 0.4 and acc == pytest.approx(history.history["val_accuracy"][0])  # 1.0 measured
    path = tmp_path / f"{mixing}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.loss, soft_labels.LabelCrossentropy) and loaded.loss.label_smoothing == 0.1
    np.testing.assert_allclose(loaded.predict(xv[:8], verbose=0), model.predict(xv[:8], verbose=0), atol=1e-5)


@pytest.mark.parametrize("ends", [
    {**LOW, "mixing": "mixup", "mixing_alpha": 0.2},
    {**HIGH, "conv_blocks": 2, "filters_base": 16, "kernel_size": 3, "dense_units": 64},  # residual, SE, cutmix
])
def test_both_ends_train_under_mixed_bfloat16(registered_hp, learnable, ends):
    """The default precision on a CPU with AMX is mixed_bfloat16 (devices.auto_precision): every layer
    kind of the space (augmentation, residual and squeeze-excite blocks, both poolings) and both batch
    mixers (applied before the model, in float32) train a step in it, with a float32 softmax."""
    keras.utils.set_random_seed(0)
    (x, y), _ = learnable
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        hp = configure(registered_hp, ends)
        model = cnn.build_model(hp)
        history = cnn.fit(hp, model, x[:32], y[:32], batch_size=16, epochs=1, verbose=0)
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.get_layer("block1_conv1").compute_dtype == "bfloat16" and str(model.outputs[0].dtype) == "float32"
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.slow
def test_search_through_the_engine(data_source, tmp_path):
    from conftest import search_config

    from fashion_tuner.search import run_search

    run_dir = run_search(search_config(data_source, tmp_path, space="cnn", subset=300, name="cnn-tiny"))
    trials = [json.loads(p.read_text()) for p in run_dir.glob("trial_*/trial.json")]
    assert len(trials) == 2 and all(t["status"] == "COMPLETED" for t in trials)
    for t in trials:  # the score is the objective, val_accuracy at the trial's best epoch
        observed = [float(np.mean(o["value"])) for o in t["metrics"]["metrics"]["val_accuracy"]["observations"]]
        assert t["score"] == pytest.approx(max(observed))
