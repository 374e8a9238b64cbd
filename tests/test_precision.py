"""``--mixed-precision auto`` (issue 27): the pick per CPU flags and GPU, what run.json and metrics.json
record, loss scaling and the float32 softmax under each policy, and a model trained under bfloat16
that predicts the same classes computed in float32."""

import json

import keras
import keras_tuner as kt
import numpy as np
import pytest

from conftest import search_config
from fashion_tuner import devices, runs, spaces
from fashion_tuner.errors import UserError

# /proc/cpuinfo excerpts (two processors each; only the flags lines matter)
SAPPHIRE_RAPIDS = "\n\n".join(f"processor\t: {i}\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu sse2 "
                              "avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n" for i in (0, 1))
COOPER_LAKE = "processor\t: 0\nflags\t\t: fpu avx2 fma avx512f avx512_bf16 avx512_vnni\n"
AMX_ONLY = "processor\t: 0\nflags\t\t: fpu avx2 fma amx_tile amx_int8\n"
EPYC_MILAN = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma f16c vaes\n" * 2
VNNI_ONLY = "processor\t: 0\nflags\t\t: fpu avx2 fma avx512f avx512_vnni\n"  # Cascade Lake: no bfloat16
# a machine whose second processor lacks the flag: bfloat16 would run emulated there
MIXED_CORES = "processor\t: 0\nflags\t\t: avx512_bf16\n\nprocessor\t: 1\nflags\t\t: avx2\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n"  # ARM spells it differently; not picked (yet)


@pytest.mark.parametrize("cpuinfo, choice, reason", [
    (SAPPHIRE_RAPIDS, "bfloat16", "avx512_bf16, amx_bf16, amx_tile"),
    (COOPER_LAKE, "bfloat16", "avx512_bf16"),
    (AMX_ONLY, "bfloat16", "amx_tile"),
    (EPYC_MILAN, None, "none of"),
    (VNNI_ONLY, None, "none of"),
    (MIXED_CORES, None, "none of"),
    (GRAVITON, None, "none of"),
    ("", None, "none of"),
])
def test_auto_picks_bfloat16_only_on_cpus_that_report_it(cpuinfo, choice, reason):
    picked, why = devices.auto_precision(cpuinfo)
    assert picked == choice and reason in why
    record = devices.choose_precision("auto", on_gpu=False, cpuinfo=cpuinfo)
    assert record == {"requested": "auto", "policy": f"mixed_{choice}" if choice else "float32", "reason": why}


@pytest.mark.parametrize("backend_name", ["jax", "torch"])
def test_auto_keeps_float32_on_backends_whose_cpu_bfloat16_was_not_measured(backend_name):
    picked, why = devices.auto_precision(SAPPHIRE_RAPIDS, None, backend_name)
    assert picked is None and f"the {backend_name} backend: not measured" in why and "amx_bf16" in why
    assert devices.choose_precision("auto", False, COOPER_LAKE, None, backend_name)["policy"] == "float32"
    assert devices.choose_precision("auto", True, EPYC_MILAN, [(8, 0)], backend_name)["policy"] == "mixed_float16"
    assert devices.choose_precision("bfloat16", False, EPYC_MILAN, None, backend_name)["policy"] == "mixed_bfloat16"


def test_auto_on_gpus_follows_the_compute_capability_not_the_cpu():
    assert devices.auto_precision(SAPPHIRE_RAPIDS, [(8, 0)]) == (
        "float16", "CUDA GPU compute capability 8.0 >= 7.0 (float16 tensor cores)")
    assert devices.auto_precision(EPYC_MILAN, [(7, 0), (9, 0)])[0] == "float16"
    picked, why = devices.auto_precision(SAPPHIRE_RAPIDS, [(9, 0), (6, 1)])  # the slowest GPU decides
    assert picked is None and "6.1 < 7.0" in why
    assert devices.auto_precision(COOPER_LAKE, [None])[0] is None  # a GPU that gives no capability
    assert devices.choose_precision("auto", True, EPYC_MILAN, [(8, 6)])["policy"] == "mixed_float16"
    # on a CPU the GPU list is ignored
    assert devices.choose_precision("auto", False, EPYC_MILAN, [(8, 6)])["policy"] == "float32"


def test_explicit_choices_are_recorded_as_requested(capsys):
    assert devices.choose_precision(None, False) == {"requested": "float32", "policy": "float32",
                                                     "reason": "the default (no --mixed-precision)"}
    assert devices.choose_precision("bfloat16", False, EPYC_MILAN)["policy"] == "mixed_bfloat16"  # as asked
    assert devices.choose_precision("float16", True)["policy"] == "mixed_float16"
    assert devices.choose_precision("float16", False) == {"requested": "float16", "policy": "float32",
                                                          "reason": "float16 needs a GPU: float32 on a CPU"}
    assert devices.choose_precision("float32", False, SAPPHIRE_RAPIDS) == {"requested": "float32", "policy": "float32",
                                                                            "reason": "requested"}
    with pytest.raises(UserError, match="choose one of auto, float32, float16, bfloat16"):
        devices.choose_precision("int8", False)


def test_the_cli_takes_auto_and_the_default_is_one_constant():
    from fashion_tuner.cli import build_parser
    from fashion_tuner.search import SearchConfig

    parser = build_parser()
    assert parser.parse_args(["search", "--mixed-precision", "auto"]).mixed_precision == "auto"
    assert parser.parse_args(["search"]).mixed_precision == devices.DEFAULT_MIXED_PRECISION
    assert SearchConfig().mixed_precision == devices.DEFAULT_MIXED_PRECISION


def _dense_head(float32_output: bool):
    """A builder of a tiny compiled model whose softmax layer is float32 or follows the global policy."""
    def build():
        inputs = keras.Input((28, 28, 1))
        x = keras.layers.Flatten()(inputs)
        x = keras.layers.Dense(16, activation="relu")(x)
        outputs = keras.layers.Dense(10, activation="softmax", **({"dtype": "float32"} if float32_output else {}))(x)
        model = keras.Model(inputs, outputs)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model
    return build


def test_auto_builds_a_space_without_a_float32_output_in_float32_and_records_it(fashion, caplog):
    """Under the default (auto) on a CPU with AMX, a space written the usual Keras way (no dtype on its
    last layer) is not an error: the model is built again in float32, said once, and the precision
    record says so; a float32 output keeps bfloat16; asked for explicitly, the trial fails instead."""
    x, y = runs.to_model_input(fashion.x_train[:256]), fashion.y_train[:256].astype("int64")
    try:
        info = devices.setup("none", "auto", announce=False, cpuinfo=SAPPHIRE_RAPIDS)
        assert info["policy"] == "mixed_bfloat16"
        kept = devices.build_model(_dense_head(True))
        assert kept.layers[2].compute_dtype == "bfloat16" and not caplog.records
        with caplog.at_level("WARNING"):
            model = devices.build_model(_dense_head(False))
        assert {layer.dtype_policy.name for layer in model.layers[1:]} == {"float32"}
        assert str(model.outputs[0].dtype) == "float32" and 'dtype="float32"' in caplog.text
        assert info["precision"]["policy"] == "float32" and "output was bfloat16" in info["precision"]["reason"]
        assert info["policy"] == "float32"  # run.json's devices.policy says what the trials trained in
        assert model.fit(x, y, epochs=1, batch_size=64, verbose=0).history["loss"][0] > 0
        devices.setup("none", "bfloat16", announce=False)
        with pytest.raises(kt.errors.FailedTrialError, match='give the last layer dtype="float32"'):
            devices.build_model(_dense_head(False))
    finally:
        devices.setup("none", None, announce=False)
        keras.config.set_dtype_policy("float32")


@pytest.mark.slow
def test_a_real_search_and_retrain_record_the_auto_choice_and_why(data_source, tmp_path):
    """A tiny real search under --mixed-precision auto, then retrain-best: run.json's devices.precision and
    metrics.json's precision are this machine's pick and its reason."""
    from fashion_tuner.retrain import retrain_best
    from fashion_tuner.search import run_search

    run_dir = run_search(search_config(data_source, tmp_path, max_trials=1, subset=300, name="auto",
                                       mixed_precision="auto"))
    run = runs.read_run(run_dir)
    picked, reason = devices.auto_precision(devices.read_cpuinfo(), None, "tensorflow")  # this CPU, no GPU
    policy = f"mixed_{picked}" if picked else "float32"
    assert run["args"]["mixed_precision"] == "auto"
    assert run["devices"]["precision"] == {"requested": "auto", "policy": policy, "reason": reason}
    assert run["devices"]["policy"] == policy and run["trials"] == {"COMPLETED": 1}
    metrics = json.loads((retrain_best(str(run_dir), epochs=1, seed=0, train_on="train") / "metrics.json").read_text())
    assert metrics["precision"] == run["devices"]["precision"] and metrics["backend"]["policy"] == policy
    keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("policy, scaled", [("mixed_float16", True), ("mixed_bfloat16", False), ("float32", False)])
def test_loss_scaling_only_under_float16_and_the_softmax_stays_float32(policy, scaled, fashion, tmp_path):
    """Keras wraps the optimizer in a LossScaleOptimizer under mixed_float16 only (bfloat16 has float32's
    exponent range: gradients do not underflow); the default CNN's softmax is float32 under every policy."""
    from keras.src.optimizers.loss_scale_optimizer import LossScaleOptimizer

    x = runs.to_model_input(fashion.x_train[:64])
    spaces.set_data_context(spaces.DataContext.from_data(fashion, x, tmp_path, 0, None, 1))
    try:
        keras.config.set_dtype_policy(policy)
        model = spaces.load_space("cnn").build_model(kt.HyperParameters())
    finally:
        keras.config.set_dtype_policy("float32")
    assert isinstance(model.optimizer, LossScaleOptimizer) is scaled
    assert model.get_layer("block1_conv1").compute_dtype == policy.replace("mixed_", "")
    assert model.get_layer("classes").compute_dtype == "float32" and str(model.outputs[0].dtype) == "float32"
    keras.config.set_dtype_policy(policy)
    try:
        devices.check_output_dtype(model)  # passes: the output is float32
    finally:
        keras.config.set_dtype_policy("float32")


# bfloat16 keeps 8 bits of mantissa (relative rounding 2**-9 ~ 0.2% per operation): computed in
# float32, a probability may move by up to ~1% (0.5% measured: 1 epoch, 2,000 images), so an image
# whose two best classes are within that of each other may swap; every other image must not.
MAX_PROB_SHIFT = 0.02
MAX_CLASS_CHANGES = 0.005  # of the test images (1 of 1,000 measured; its margin was 0.0008)


@pytest.mark.slow
def test_a_model_trained_in_bfloat16_loads_and_predicts_the_same_classes_in_float32(fashion, tmp_path):
    """Trained 1 epoch under mixed_bfloat16 on 2,000 real images (a one-block CNN of the cnn space: conv,
    batch norm, dense; the full default CNN trains ~14x slower in bfloat16 than in float32 on a CPU
    without bfloat16 instructions, docs/design.md), saved to .keras, loaded with float32 the global
    policy: the loaded model predicts exactly as before saving, and its float32 copy predicts the same
    classes on 1,000 test images."""
    x, y = runs.to_model_input(fashion.x_train[:2000]), fashion.y_train[:2000].astype("int64")
    x_te, y_te = runs.to_model_input(fashion.x_test[:1000]), fashion.y_test[:1000]
    spaces.set_data_context(spaces.DataContext.from_data(fashion, x, tmp_path, 0, None, 1))
    hp = kt.HyperParameters()
    hp.Fixed("conv_blocks", 1)
    hp.Fixed("filters_base", 16)
    hp.Fixed("augment", False)
    keras.utils.set_random_seed(0)
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        model = spaces.load_space("cnn").build_model(hp)
        assert model.get_layer("block1_conv1").compute_dtype == "bfloat16"
        model.fit(x, y, epochs=1, batch_size=64, verbose=0)
        before = model.predict(x_te, verbose=0)
        model.save(tmp_path / "bf16.keras")
    finally:
        keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()

    loaded = keras.models.load_model(tmp_path / "bf16.keras")
    assert loaded.get_layer("block1_conv1").dtype_policy.name == "mixed_bfloat16"  # the policy travels with it
    np.testing.assert_array_equal(loaded.predict(x_te, verbose=0), before)
    as_f32 = devices.float32_copy(loaded)
    assert {layer.dtype_policy.name for layer in as_f32.layers} == {"float32"}
    after = as_f32.predict(x_te, verbose=0)
    assert after.dtype == np.float32
    assert np.mean(before.argmax(1) == y_te) > 0.5  # it learned something: the classes mean something
    assert np.abs(after - before).max() < MAX_PROB_SHIFT
    changed = before.argmax(1) != after.argmax(1)
    assert changed.mean() <= MAX_CLASS_CHANGES
    top2 = np.sort(after, axis=1)[:, -2:]
    assert np.all(top2[changed, 1] - top2[changed, 0] < 2 * MAX_PROB_SHIFT)  # only near-ties may swap


def test_the_retrains_record_follows_a_fallback_to_float32():
    """metrics.json's backend policy is the one the models trained in, also after auto fell back."""
    from fashion_tuner.retrain.training import provenance_now

    record = {"requested": "auto", "policy": "mixed_bfloat16", "reason": "CPU reports amx_bf16"}
    provenance = {"backend": {"name": "tensorflow", "policy": "mixed_bfloat16"}, "precision": record}
    assert provenance_now(provenance)["backend"]["policy"] == "mixed_bfloat16"
    record.update(policy="float32")  # what devices.build_model does on a fallback
    assert provenance_now(provenance)["backend"] == {"name": "tensorflow", "policy": "float32"}
    assert provenance["backend"]["policy"] == "mixed_bfloat16"  # the start-up record itself is not rewritten
