"""Device setup on CPU: strategy choice, the mixed-precision float32-output rule, XLA override,
thread limits, and the tf.data input pipeline against plain arrays."""

import types

import keras
import keras_tuner as kt
import numpy as np
import pytest

from fashion_tuner import devices, fitting, spaces
from fashion_tuner.errors import UserError


@pytest.fixture
def tiny(fashion):
    x = fashion.x_train[:256].astype("float32")[..., None]
    y = fashion.y_train[:256].astype("int64")
    return x, y


def mlp_space():
    return spaces.load_space("mlp")


def test_strategy_on_cpu():
    assert not devices.gpus()  # these tests describe the CPU machine
    assert devices.strategy_for("none") is None
    assert devices.strategy_for("auto") is None
    # decided: mirroring needs GPUs; a one-CPU "mirror" would only be slower
    with pytest.raises(UserError, match="--strategy mirrored needs GPUs"):
        devices.strategy_for("mirrored")
    with pytest.raises(UserError, match="--strategy mirrored needs GPUs"):
        devices.setup("mirrored")


def test_strategy_names_by_gpu_count():
    assert devices.strategy_name("auto", 0) == devices.strategy_name("auto", 1) == "none"
    assert devices.strategy_name("auto", 2) == "mirrored"
    assert devices.strategy_name("mirrored", 1) == "mirrored"
    assert devices.strategy_name("none", 4) == "none"


def test_setup_on_cpu_records_float32_and_choices(capsys):
    info = devices.setup("auto", mixed_precision=True, jit="off", input_pipeline="auto")
    out = capsys.readouterr().out
    assert "needs a GPU" in out and "devices: CPU only" in out and "policy float32" in out
    assert info["policy"] == "float32" and keras.mixed_precision.global_policy().name == "float32"
    assert info["strategy"] == "none" and info["replicas"] == 1
    assert info["jit"] == "off" and info["input_pipeline"] == "arrays"


def test_mixed_precision_mlp_keeps_a_float32_output():
    before = keras.mixed_precision.global_policy().name
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        model = mlp_space().build_model(kt.HyperParameters())
        assert model.layers[-2].compute_dtype == "float16"  # the hidden layers do run in float16
        assert str(model.outputs[0].dtype) == "float32"
        devices.check_output_dtype(model)  # passes

        inputs = keras.Input((28, 28, 1))
        bad = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs)))
        assert str(bad.outputs[0].dtype) == "float16"
        with pytest.raises(kt.errors.FailedTrialError, match="output is float16, not float32"):
            devices.check_output_dtype(bad)
    finally:
        keras.mixed_precision.set_global_policy(before)
    assert keras.mixed_precision.global_policy().name == before == "float32"
    devices.check_output_dtype(bad)  # float32 policy: nothing to check


def test_jit_override():
    model = mlp_space().build_model(kt.HyperParameters())
    auto = model.jit_compile
    devices.apply_jit(model, "auto")
    assert model.jit_compile == auto is False  # Keras' auto rule: no XLA on CPU
    devices.apply_jit(model, "on")
    assert model.jit_compile is True
    devices.apply_jit(model, "off")
    assert model.jit_compile is False


def test_thread_limit_env(monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "two")
    with pytest.raises(UserError, match="TF_NUM_INTRAOP_THREADS='two'"):
        devices._apply_thread_limits(tf)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
    assert devices._apply_thread_limits(tf) == {"intra_op": 1, "inter_op": 0}


def test_input_pipeline_choice():
    assert devices.resolve_input_pipeline("auto", on_gpu=False) == "arrays"
    assert devices.resolve_input_pipeline("auto", on_gpu=True) == devices.AUTO_PIPELINE["gpu"]
    assert devices.resolve_input_pipeline("tfdata", on_gpu=False) == "tfdata"
    with pytest.raises(UserError, match="choose one of auto, tfdata, arrays"):
        devices.resolve_input_pipeline("generator")


def test_dataset_is_seeded_complete_and_batched(tiny):
    x, y = tiny
    first = [b[1].numpy() for b in devices.make_dataset(x, y, 100, shuffle=True, seed=3)]
    again = [b[1].numpy() for b in devices.make_dataset(x, y, 100, shuffle=True, seed=3)]
    other = [b[1].numpy() for b in devices.make_dataset(x, y, 100, shuffle=True, seed=4)]
    assert [len(b) for b in first] == [100, 100, 56]
    assert all((a == b).all() for a, b in zip(first, again))
    assert any((a != b).any() for a, b in zip(first, other))
    assert sorted(np.concatenate(first).tolist()) == sorted(y.tolist())
    plain = np.concatenate([b[1].numpy() for b in devices.make_dataset(x, y, 100, shuffle=False)])
    assert (plain == y).all()


def test_tfdata_fit_with_class_weight_matches_arrays_shape(tiny):
    x, y = tiny
    space = mlp_space()
    histories = {}
    for pipeline in ("arrays", "tfdata"):
        keras.utils.set_random_seed(0)
        hp = kt.HyperParameters()
        model = space.build_model(hp)
        weights = {c: (5.0 if c == 6 else 1.0) for c in range(10)}
        histories[pipeline] = fitting.fit_space_model(
            space, hp, model, x, y, validation_data=(x[:64], y[:64]), epochs=2, batch_size=32,
            callbacks=[], class_weight=weights, input_pipeline=pipeline, seed=0).history
    for pipeline, history in histories.items():
        assert len(history["val_accuracy"]) == 2 and np.isfinite(history["loss"]).all(), pipeline
    # class weights reach the tf.data fit: a heavy class changes the weighted loss
    keras.utils.set_random_seed(0)
    hp = kt.HyperParameters()
    unweighted = fitting.fit_space_model(space, hp, space.build_model(hp), x, y, validation_data=None, epochs=1,
                                        batch_size=32, callbacks=[], input_pipeline="tfdata", seed=0).history
    keras.utils.set_random_seed(0)
    heavy = {c: (50.0 if c == 6 else 1.0) for c in range(10)}
    weighted = fitting.fit_space_model(space, hp, space.build_model(hp), x, y, validation_data=None, epochs=1,
                                      batch_size=32, callbacks=[], class_weight=heavy, input_pipeline="tfdata",
                                      seed=0).history
    assert weighted["loss"][0] > 2 * unweighted["loss"][0]


def test_a_space_with_its_own_fit_gets_arrays(tiny):
    x, y = tiny
    seen = {}
    base = mlp_space()

    def fit(hp, model, x, y, **kwargs):
        seen.update(x=type(x), val=type(kwargs["validation_data"][0]), batch_size=kwargs["batch_size"],
                    class_weight=kwargs["class_weight"])
        return model.fit(x, y, epochs=1, batch_size=kwargs["batch_size"], verbose=0)

    space = types.SimpleNamespace(build_model=base.build_model, fit=fit)
    hp = kt.HyperParameters()
    model = space.build_model(hp)
    fitting.fit_space_model(space, hp, model, x, y, validation_data=(x[:32], y[:32]), epochs=1, batch_size=32,
                           callbacks=[], class_weight={0: 2.0}, input_pipeline="tfdata")
    assert seen == {"x": np.ndarray, "val": np.ndarray, "batch_size": 128, "class_weight": {0: 2.0}}


def test_replicas_scale_the_global_batch():
    model = mlp_space().build_model(kt.HyperParameters())
    assert devices.replicas_of(model) == 1  # no strategy on CPU
    two = types.SimpleNamespace(distribute_strategy=types.SimpleNamespace(num_replicas_in_sync=2))
    assert devices.replicas_of(two) == 2
