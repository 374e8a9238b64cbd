"""fashion_tuner.layers.BatchNorm: Keras' batch norm arithmetic, TensorFlow's fused kernel where it was measured to pay."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest

from fashion_tuner.layers import BatchNorm

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent
SHAPE = (16, 5, 5, 6)  # (N, H, W, C)


def _batches(n: int = 3) -> list[np.ndarray]:
    """Activations away from zero mean and unit variance, so the normalisation has work to do."""
    rng = np.random.default_rng(0)
    return [(rng.normal(size=SHAPE) * 3 + 1 + i).astype("float32") for i in range(n)]


@pytest.mark.parametrize("policy, atol", [("float32", 1e-6), ("mixed_bfloat16", 2e-2)])
def test_it_trains_and_infers_as_keras_batch_norm_does(policy, atol):
    """Three training steps, then inference: the outputs and the moving statistics match Keras' layer (in
    bfloat16 to its rounding; the moving statistics are float32 in both and match to 1e-5)."""
    ours, theirs = BatchNorm(momentum=0.9, dtype=policy), keras.layers.BatchNormalization(momentum=0.9, dtype=policy)
    for x in _batches():
        a, b = ours(x, training=True), theirs(x, training=True)
        assert keras.backend.standardize_dtype(a.dtype) == keras.backend.standardize_dtype(b.dtype)
        np.testing.assert_allclose(np.float32(a), np.float32(b), atol=atol)
    np.testing.assert_allclose(ours.moving_mean.numpy(), theirs.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.moving_variance.numpy(), theirs.moving_variance.numpy(), rtol=1e-5)
    assert ours.moving_variance.numpy().max() > 2  # the statistics moved off their initial 1
    x = _batches(1)[0]
    np.testing.assert_allclose(np.float32(ours(x, training=False)), np.float32(theirs(x, training=False)), atol=atol)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused kernel is TensorFlow's")
@pytest.mark.parametrize("policy, fused", [("float32", False), ("mixed_bfloat16", True)])
def test_the_fused_kernel_runs_only_for_16_bit_inputs(policy, fused):
    """The traced training step holds FusedBatchNormV3 under mixed_bfloat16 and not under float32 (Keras' ops,
    measured as fast there)."""
    import tensorflow as tf

    layer = BatchNorm(dtype=policy)
    graph = tf.function(lambda t: layer(t, training=True)).get_concrete_function(
        tf.TensorSpec(SHAPE, "float32")).graph
    assert ("FusedBatchNormV3" in {op.type for op in graph.get_operations()}) is fused


def test_a_saved_model_loads_in_a_fresh_process_through_the_predict_path(tmp_path):
    """``runs.load_model`` (predict, distillation) registers the layer itself: a new process that imports no
    space loads a model holding it, in safe mode."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, use_bias=False, dtype="mixed_bfloat16")(inputs)
    x = BatchNorm(dtype="mixed_bfloat16", name="bn")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(x))
    keras.Model(inputs, outputs).save(tmp_path / "m.keras")
    code = ("import sys; from fashion_tuner import runs; m = runs.load_model(sys.argv[1]); "
            "print(type(m.get_layer('bn')).__name__, m.get_layer('bn').dtype_policy.name)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.keras")], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["BatchNorm", "mixed_bfloat16"]
