"""Each trial's model size, recorded when the trial's model is built: ``trial_<id>/model.json``
``{"parameters": N, "trainable_parameters": M}`` (counts of weights). The review and
``retrain-best --max-params`` read it without Keras (:func:`parameters`).

And a model's compute: forward FLOPs per image counted from its layers' shapes (:func:`layer_flops`, one
multiply-add = 2 FLOPs): Conv2D ``2 * H_out * W_out * C_out * K_h * K_w * C_in / groups`` (+ ``H_out * W_out *
C_out`` with a bias), DepthwiseConv2D and SeparableConv2D alike per channel, Dense ``2 * inputs * units`` per
position (+ ``units`` with a bias), the element-wise layers per output element (BatchNormalization 7,
Normalization and Rescaling 2, activations, Add, Multiply and Dropout 1), pooling ``k*k - 1`` (average: + 1);
augmentation layers and reshapes 0. :func:`forward_flops` totals them for any model, counting a layer without
a rule as one FLOP per output element and a nested model by its own layers (the sampler's cost estimate);
``benchmarks/roofline.py`` uses the strict per-layer table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fashion_tuner import fsio

MODEL_FILE = "model.json"
# FLOPs per output element of the element-wise layers (training forward)
ELEMENTWISE = {"BatchNormalization": 7, "Normalization": 2, "Rescaling": 2, "Activation": 1, "ReLU": 1,
               "ELU": 1, "Add": 1, "Multiply": 1, "Dropout": 1, "Softmax": 3}
ACTIVATION_FLOPS = {"linear": 0, "relu": 1, "elu": 3, "swish": 4, "silu": 4, "sigmoid": 3, "softmax": 3, "tanh": 3}
RULED = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "MaxPooling2D", "AveragePooling2D",
         "GlobalAveragePooling2D")  # the kinds one_layer_flops has a rule for, besides ELEMENTWISE and FREE
FREE = ("InputLayer", "Flatten", "Reshape", "RandomFlip", "RandomTranslation", "RandomRotation", "RandomZoom",
        "RandomContrast")


def facts(model) -> dict:
    """``{"parameters", "trainable_parameters"}`` of a built Keras model (weights, not bytes)."""
    return {"parameters": int(model.count_params()),
            "trainable_parameters": int(sum(int(np.prod(v.shape)) for v in model.trainable_weights))}


def record(trial_dir: str | Path, model) -> None:
    """Write ``trial_dir/model.json`` for ``model`` (atomically)."""
    path = Path(trial_dir)
    path.mkdir(parents=True, exist_ok=True)
    fsio.atomic_write_text(path / MODEL_FILE, json.dumps(facts(model)) + "\n")


def read(trial_dir: str | Path) -> dict | None:
    """``model.json`` of a trial folder, or None when absent or unreadable."""
    try:
        data = json.loads((Path(trial_dir) / MODEL_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def parameters(trial_dir: str | Path) -> int | None:
    """The trial's parameter count, or None when it was not recorded (a run made before it was)."""
    value = (read(trial_dir) or {}).get("parameters")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


# ----------------------------------------------------------------------------- compute (FLOPs)

def _size(shape) -> int:
    """Elements per image of a Keras shape (the batch dimension dropped)."""
    n = 1
    for d in tuple(shape)[1:]:
        n *= int(d)
    return n


def _activation(layer, elements: int) -> int:
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", "linear") if act is not None else "linear"
    return ACTIVATION_FLOPS.get(name, 1) * elements


def _conv(layer, out: int, depthwise: bool) -> int:
    channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"
    in_channels = int(layer.input.shape[-1 if channels_last else 1])
    kh, kw = layer.kernel_size
    out_channels = int(layer.output.shape[-1 if channels_last else 1])
    positions = out // out_channels
    if depthwise:  # one kernel per input channel (times the depth multiplier)
        return 2 * positions * out_channels * kh * kw
    return 2 * positions * out_channels * kh * kw * in_channels // int(getattr(layer, "groups", 1) or 1)


def _kind(layer) -> str:
    """The layer's class name, or that of the nearest Keras class it derives from that has a rule (a
    ``fashion_tuner.layers.BatchNorm`` counts as a BatchNormalization)."""
    for cls in type(layer).__mro__:
        if cls.__name__ in ELEMENTWISE or cls.__name__ in FREE or cls.__name__ in RULED:
            return cls.__name__
    return type(layer).__name__


def one_layer_flops(layer, strict: bool = True) -> int:
    """Forward FLOPs per image of one layer of a functional model (module docstring); ``strict``: a layer kind
    without a rule raises ValueError, else it counts one FLOP per output element."""
    kind = _kind(layer)
    out = _size(layer.output.shape)
    bias = out if getattr(layer, "use_bias", False) else 0
    if kind == "Conv2D":
        return _conv(layer, out, depthwise=False) + bias + _activation(layer, out)
    if kind == "DepthwiseConv2D":
        return _conv(layer, out, depthwise=True) + bias + _activation(layer, out)
    if kind == "SeparableConv2D":
        in_channels = int(layer.input.shape[-1])
        positions = out // int(layer.filters)
        kh, kw = layer.kernel_size
        depth = 2 * positions * in_channels * int(layer.depth_multiplier) * kh * kw
        return depth + 2 * positions * in_channels * int(layer.depth_multiplier) * int(layer.filters) + bias \
            + _activation(layer, out)
    if kind == "Dense":
        positions = out // int(layer.units)
        return 2 * positions * int(layer.input.shape[-1]) * int(layer.units) + bias + _activation(layer, out)
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        kh, kw = layer.pool_size
        return out * (kh * kw - 1 + (1 if kind == "AveragePooling2D" else 0))
    if kind == "GlobalAveragePooling2D":
        return _size(layer.input.shape)
    if kind in ELEMENTWISE:
        return ELEMENTWISE[kind] * out
    if kind in FREE:
        return 0
    if strict:
        raise ValueError(f"roofline: no FLOP rule for layer {layer.name} ({kind})")
    return out


def layer_flops(model) -> list[dict]:
    """``[{"layer", "kind", "output", "forward_flops"}]`` per image for every layer of a functional model."""
    return [{"layer": layer.name, "kind": _kind(layer), "output": list(layer.output.shape[1:]),
             "forward_flops": one_layer_flops(layer)} for layer in model.layers]


def forward_flops(model) -> int | None:
    """Forward FLOPs per image of a built Keras model (lenient: see the module docstring); None when its layers'
    shapes cannot be read (a subclassed model that was never called)."""
    total = 0
    try:
        for layer in model.layers:
            if hasattr(layer, "layers") and getattr(layer, "layers", None):
                inner = forward_flops(layer)
                if inner is None:
                    return None
                total += inner
            else:
                total += one_layer_flops(layer, strict=False)
    except (AttributeError, ValueError, TypeError, RuntimeError):
        return None
    return int(total)
