"""The transfer space: autoencoder pretraining is cached and reused, backbone weights load from a
file exactly, missing ImageNet weights are a clear UserError, and the extremes build."""

from __future__ import annotations

import copy
import json

import keras
import keras_tuner as kt
import numpy as np
import pytest
from conftest import synthetic_arrays

from fashion_tuner import spaces
from fashion_tuner.errors import UserError

transfer = spaces.load_space("transfer")
CHANCE = 0.1  # ten classes


@pytest.fixture(scope="module")
def images():
    """(x, y): 500 learnable synthetic images (N, 28, 28, 1) float32 0..255 (the class is a bright bar's
    position, conftest.synthetic_arrays) and their integer labels: a short fit beats chance by far."""
    (x, y), _ = synthetic_arrays(500, 10, seed=0)
    return x[..., None].astype("float32"), y.astype("int64")


def between(count: int, low: int, high: int) -> bool:
    """A parameter count inside its expected range (printed too, for the record)."""
    return low < count < high


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pretrained")


def set_context(monkeypatch, x, cache_dir, weights=None):
    ctx = spaces.DataContext(x_train=x, data_md5="test-md5", cache_dir=cache_dir, weights=weights,
                             mean=float(x.mean()), std=float(x.std()), extra={"pretrain_epochs": 1})
    monkeypatch.setattr(spaces, "_CONTEXT", ctx)
    return ctx


def configure(hp, values: dict):
    """A copy of registered hyperparameters with ``values`` set (and only the active ones kept)."""
    hp = copy.deepcopy(hp)
    hp.values.update(values)
    hp.values = {k: v for k, v in hp.values.items() if hp.is_active(k)}
    hp.ensure_active_values()
    hp.values.update({k: v for k, v in values.items() if hp.is_active(k)})
    return hp


@pytest.fixture(scope="module")
def mobilenet_weights(tmp_path_factory):
    """(path, source backbone): a MobileNetV2 weights file written by save_weights."""
    keras.utils.set_random_seed(3)
    source = transfer.make_backbone("mobilenetv2", 32, None)
    path = tmp_path_factory.mktemp("weights") / "mobilenetv2.weights.h5"
    source.save_weights(path)
    return path, source


def test_autoencoder_default_pretrains_once_and_is_reused(monkeypatch, images, cache_dir, tmp_path):
    x, y = images
    keras.utils.set_random_seed(0)
    set_context(monkeypatch, x, cache_dir)
    runs_before = transfer.PRETRAIN_RUNS
    hp = kt.HyperParameters()
    model = transfer.build_model(hp)
    assert hp.get("backbone_family") == "autoencoder" and hp.get("latent_size") == 64
    assert transfer.PRETRAIN_RUNS == runs_before + 1
    cached = sorted(cache_dir.glob("ae-*.keras"))
    assert len(cached) == 1 and not list(cache_dir.glob("*.tmp*"))
    sidecar = json.loads(cached[0].with_suffix(".json").read_text())
    assert sidecar["config"]["latent_size"] == 64 and sidecar["config"]["data_md5"] == "test-md5"
    mtime = cached[0].stat().st_mtime_ns
    print("autoencoder transfer (default) parameters:", model.count_params())
    assert between(model.count_params(), 200_000, 260_000)  # 229,194 measured: latent 64, head 256

    again = transfer.build_model(copy.deepcopy(hp))
    assert transfer.PRETRAIN_RUNS == runs_before + 1  # no second pretraining
    assert cached[0].stat().st_mtime_ns == mtime
    np.testing.assert_allclose(again.get_layer("backbone").get_weights()[1],
                               model.get_layer("backbone").get_weights()[1])

    history = transfer.fit(hp, model, x[:400], y[:400], batch_size=128, epochs=1, validation_data=(x[400:], y[400:]),
                           verbose=0)
    assert history.history["val_accuracy"][0] > CHANCE + 0.2, history.history  # 0.56 measured on held-out images
    model.save(tmp_path / "ae.keras")
    loaded = keras.saving.load_model(tmp_path / "ae.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), atol=1e-5)


def test_other_images_get_another_encoder(monkeypatch, images, cache_dir):
    x, _ = images
    set_context(monkeypatch, x[:200], cache_dir)
    runs_before = transfer.PRETRAIN_RUNS
    transfer.pretrained_encoder(64)
    assert transfer.PRETRAIN_RUNS == runs_before + 1


def test_autoencoder_extremes_and_two_stage(monkeypatch, images, cache_dir):
    x, y = images
    set_context(monkeypatch, x, cache_dir)
    hp = kt.HyperParameters()
    transfer.build_model(hp)
    low = configure(hp, {"batch_size": 64, "fine_tune": "frozen", "latent_size": 32, "head_units": 64,
                         "dropout_head": 0.0, "learning_rate": 1e-4})
    model = transfer.build_model(low)
    assert not model.get_layer("backbone").trainable
    print("autoencoder transfer (low end) parameters:", model.count_params())
    assert between(model.count_params(), 100_000, 140_000)  # 121,962 measured: latent 32, head 64

    high = configure(hp, {"batch_size": 256, "fine_tune": "two_stage", "latent_size": 128, "head_units": 512,
                          "dropout_head": 0.5, "learning_rate": 1e-2, "learning_rate_finetune": 1e-3})
    model = transfer.build_model(high)
    print("autoencoder transfer (high end) parameters:", model.count_params())
    assert between(model.count_params(), 440_000, 540_000)  # 491,530 measured: latent 128, head 512
    assert not model.get_layer("backbone").trainable  # stage 1: head only
    history = transfer.fit(high, model, x[:256], y[:256], batch_size=128, epochs=2, verbose=0)
    assert history.epoch == [0, 1] and len(history.history["accuracy"]) == 2
    assert model.get_layer("backbone").trainable  # stage 2 unfroze it
    assert np.isclose(float(model.optimizer.learning_rate), 1e-3)


def test_without_weights_only_the_autoencoder_is_offered(monkeypatch, images, cache_dir):
    set_context(monkeypatch, images[0], cache_dir, weights="none")
    hp = kt.HyperParameters()
    transfer.build_model(hp)
    family = [h for h in hp.space if h.name == "backbone_family"][0]
    assert family.values == ["autoencoder"]


def test_weights_file_loads_exactly_into_the_backbone(monkeypatch, images, cache_dir, mobilenet_weights, tmp_path):
    path, source = mobilenet_weights
    x, y = images
    set_context(monkeypatch, x, cache_dir, weights=str(path))
    assert transfer.available_backbones() == ["mobilenetv2"]
    hp = kt.HyperParameters()
    transfer.build_model(hp)
    assert [h for h in hp.space if h.name == "backbone_family"][0].values == ["autoencoder", "applications"]

    low = configure(hp, {"backbone_family": "applications", "backbone": "mobilenetv2", "input_size": 32,
                         "fine_tune": "frozen", "head_units": 64, "dropout_head": 0.0})
    model = transfer.build_model(low)
    backbone = model.get_layer("backbone")
    assert not backbone.trainable
    assert len(backbone.weights) == len(source.weights)
    assert all(np.allclose(a, b) for a, b in zip(backbone.get_weights(), source.get_weights()))
    print("mobilenetv2 transfer (low end, 32x32) parameters:", model.count_params())
    assert between(model.count_params(), 440_000, 540_000)  # 492,842 measured: the 32x32 backbone + a 64-unit head
    before = backbone.get_weights()
    history = transfer.fit(low, model, x[:128], y[:128], batch_size=64, epochs=1, verbose=0)
    # A frozen random backbone learns nothing in two steps, so no accuracy claim: the fit ran, and
    # "frozen" held (the loaded weights did not move).
    assert np.isfinite(history.history["loss"][0])
    assert all(np.array_equal(a, b) for a, b in zip(backbone.get_weights(), before))
    model.save(tmp_path / "mnv2.keras")
    loaded = keras.saving.load_model(tmp_path / "mnv2.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), atol=1e-4)

    high = configure(hp, {"backbone_family": "applications", "backbone": "mobilenetv2", "input_size": 96,
                          "fine_tune": "full", "unfreeze_fraction": 1.0, "head_units": 512, "dropout_head": 0.5,
                          "learning_rate": 1e-2})
    model = transfer.build_model(high)
    backbone = model.get_layer("backbone")
    bn = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert all(not layer.trainable for layer in bn)
    assert backbone.layers[1].trainable  # every non-BN layer trains at fraction 1.0
    assert model.input_shape == (None, 28, 28, 1)
    print("mobilenetv2 transfer (high end, 96x96) parameters:", model.count_params())
    assert between(model.count_params(), 960_000, 1_180_000)  # 1,071,210 measured: head 512


def test_imagenet_offline_and_not_cached_is_a_user_error(monkeypatch, images, cache_dir, tmp_path):
    from keras.src.backend import config as keras_config

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras-home"))  # an empty cache
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens: offline, even where online
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    set_context(monkeypatch, images[0], cache_dir, weights="imagenet")
    hp = kt.HyperParameters()
    transfer.build_model(hp)  # the autoencoder default needs no ImageNet weights
    hp = configure(hp, {"backbone_family": "applications", "backbone": "mobilenetv2", "input_size": 32})
    with pytest.raises(UserError, match="ImageNet weights for mobilenetv2.*--weights PATH") as info:
        transfer.build_model(hp)
    assert isinstance(info.value, kt.errors.FatalError)  # Keras Tuner stops instead of retrying
    assert "\n" not in str(info.value)


def test_missing_or_foreign_weights_file_is_a_user_error(monkeypatch, images, cache_dir, tmp_path):
    set_context(monkeypatch, images[0], cache_dir, weights=str(tmp_path / "nope.weights.h5"))
    with pytest.raises(UserError, match="does not exist"):
        transfer.build_model(kt.HyperParameters())
    foreign = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    foreign.save_weights(tmp_path / "foreign.weights.h5")
    set_context(monkeypatch, images[0], cache_dir, weights=str(tmp_path / "foreign.weights.h5"))
    with pytest.raises(UserError, match="fits none of the transfer backbones"):
        transfer.build_model(kt.HyperParameters())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnetb0", "resnet50"])
def test_other_backbones_build_from_their_weights(monkeypatch, images, cache_dir, tmp_path, name):
    source = transfer.make_backbone(name, 32, None)
    path = tmp_path / f"{name}.weights.h5"
    source.save_weights(path)
    set_context(monkeypatch, images[0], cache_dir, weights=str(path))
    assert transfer.available_backbones() == [name]
    hp = kt.HyperParameters()
    transfer.build_model(hp)
    hp = configure(hp, {"backbone_family": "applications", "backbone": name, "input_size": 32,
                        "fine_tune": "two_stage", "unfreeze_fraction": 0.5})
    model = transfer.build_model(hp)
    assert all(np.allclose(a, b) for a, b in zip(model.get_layer("backbone").get_weights(), source.get_weights()))
    print(f"{name} transfer parameters:", model.count_params())
    expected = {"efficientnetb0": 4_214_829, "resnet50": 23_851_274}[name]  # measured
    assert between(model.count_params(), 0.9 * expected, 1.1 * expected)


@pytest.mark.slow
def test_search_through_the_engine(data_source, tmp_path):
    from conftest import search_config

    from fashion_tuner.search import run_search

    run_dir = run_search(search_config(data_source, tmp_path, space="transfer", subset=300,
                                              name="transfer-tiny"))
    trials = [json.loads(p.read_text()) for p in run_dir.glob("trial_*/trial.json")]
    assert len(trials) == 2 and all(t["status"] == "COMPLETED" for t in trials)
    assert list((tmp_path / "pretrained").glob("ae-*.keras"))  # cached under results/pretrained


def test_auto_weights_offline_fall_back_to_the_autoencoder_with_one_line(monkeypatch, images, cache_dir, tmp_path,
                                                                         capsys):
    from keras.src.backend import config as keras_config

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras-home"))  # an empty cache
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens: offline, even where online
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    set_context(monkeypatch, images[0], cache_dir, weights="auto")
    assert transfer.available_backbones() == []
    assert transfer.available_backbones() == []  # decided once per process
    printed = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("transfer:")]
    assert len(printed) == 1 and "autoencoder family only" in printed[0]
    hp = kt.HyperParameters()
    transfer.build_model(hp)
    assert hp.values["backbone_family"] == "autoencoder" and "backbone" not in hp.values
