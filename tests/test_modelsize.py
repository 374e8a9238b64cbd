"""fashion_tuner/modelsize.py: a model's forward FLOPs per image (the sampler's cost estimate; the roofline's
strict per-layer table is tested in test_benchmarks.py) and the recorded parameter counts."""

from __future__ import annotations

import pytest

keras = pytest.importorskip("keras")

from fashion_tuner import modelsize  # noqa: E402


def test_depthwise_separable_nested_and_unknown_layers_are_counted():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(inputs)
    x = keras.layers.SeparableConv2D(4, 3, padding="same", use_bias=False, name="sep")(x)
    x = keras.layers.LayerNormalization(name="ln")(x)  # no rule: one FLOP per output element
    block = keras.Sequential([keras.Input((8, 8, 4)), keras.layers.Conv2D(2, 1, use_bias=False, name="pw")], name="block")
    x = block(x)
    outputs = keras.layers.Dense(10, use_bias=False, name="dense")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    depthwise = 2 * 8 * 8 * 3 * 3 * 3
    separable = 2 * 8 * 8 * 3 * 3 * 3 + 2 * 8 * 8 * 3 * 4
    layer_norm = 8 * 8 * 4
    pointwise = 2 * 8 * 8 * 2 * 4
    dense = 2 * 128 * 10
    assert modelsize.forward_flops(model) == depthwise + separable + layer_norm + pointwise + dense
    with pytest.raises(ValueError, match="no FLOP rule"):
        modelsize.one_layer_flops(model.get_layer("ln"))  # the roofline's table stays strict


def test_a_wider_model_costs_more_and_an_unbuilt_one_is_unknown():
    def mlp(units):
        return keras.Sequential([keras.Input((784,)), keras.layers.Dense(units, activation="relu"),
                                 keras.layers.Dense(10)])

    assert modelsize.forward_flops(mlp(256)) > 1.9 * modelsize.forward_flops(mlp(128))

    class Custom(keras.Model):
        def call(self, x):
            return x

    assert modelsize.forward_flops(Custom()) in (None, 0)
