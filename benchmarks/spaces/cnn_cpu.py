"""CNN families cheap on a CPU (issue 27, item 4), for ``benchmarks/epoch_pairs.py --compare family``.

``family`` picks the network; every family keeps the cnn space's (search_spaces/cnn.py) augmentation,
normalisation, head (flatten -> Dense 256 -> dropout 0.2 -> softmax), Adam 1e-3 with cosine decay and
batches of 64, so only the convolutional trunk differs. Input (N, 28, 28, 1) pixels 0..255, labels 0-9.

- ``vgg``: the cnn space's defaults (32 | 64, 64 | 128, 128 filters at 28 | 14 | 7 px, ~22.4 M multiply-adds per
  image forward, the Dense head included), built by the cnn space itself;
- ``narrow``: the same network at half the width (16 | 32, 32 | 64, 64: ~5.8 M), i.e. about twice the epochs
  in the same minutes;
- ``separable``: blocks 2 and 3 as depthwise-separable convolutions at twice the width (block 1 stays a plain
  convolution: one input channel), 32 | 128, 128 | 256, 256 (~10.6 M multiply-adds, ~2.1x fewer, more
  channels): accuracy per multiply-add, if oneDNN / Eigen run depthwise convolutions fast enough;
- ``stem``: early downsampling: a 5x5 stride-2 stem of 48 filters straight to 14 px, then the defaults' blocks 2
  and 3 (64, 64 | 128, 128): one full-resolution layer fewer, the compute kept where the features are (~24 M).
"""

from __future__ import annotations

import keras

from fashion_tuner.layers import BatchNorm
from fashion_tuner.soft_labels import compile_classifier
from fashion_tuner.spaces import data_context
from search_spaces import cnn

FAMILIES = ("vgg", "narrow", "separable", "stem")
STEM_FILTERS = 48
fit = cnn.fit


def block(x, filters: int, convs: int, dropout: float, name: str, separable: bool = False):
    """``convs`` x [conv 3x3 -> batch norm -> ReLU] -> max pool 2x2 -> dropout (the cnn space's block)."""
    conv = keras.layers.SeparableConv2D if separable else keras.layers.Conv2D
    for j in range(convs):
        x = conv(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{j + 1}")(x)
        x = BatchNorm(momentum=cnn.BN_MOMENTUM, name=f"{name}_bn{j + 1}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_act{j + 1}")(x)
    x = keras.layers.MaxPooling2D(2, padding="same", name=f"{name}_pool")(x)
    return keras.layers.Dropout(dropout, name=f"{name}_dropout")(x) if dropout > 0 else x


def build_model(hp) -> keras.Model:
    """One network of ``family`` (default ``vgg``: exactly the cnn space's default model), compiled."""
    family = hp.Choice("family", list(FAMILIES), default="vgg")
    if family == "vgg":
        return cnn.build_model(hp)
    ctx = data_context()
    batch_size = hp.Choice("batch_size", [64, 128, 256], default=64)
    inputs = keras.Input(shape=ctx.image_shape, name="image")
    x = cnn.add_augmentation(hp, inputs, ctx.seed)
    x = keras.layers.Normalization(axis=None, mean=ctx.mean, variance=ctx.std ** 2, name="normalize")(x)
    if family == "narrow":
        x = block(x, 16, 1, 0.0, "block1")
        x = block(x, 32, 2, 0.1, "block2")
        x = block(x, 64, 2, 0.2, "block3")
    elif family == "separable":
        x = block(x, 32, 1, 0.0, "block1")
        x = block(x, 128, 2, 0.1, "block2", separable=True)
        x = block(x, 256, 2, 0.2, "block3", separable=True)
    else:  # stem
        x = keras.layers.Conv2D(STEM_FILTERS, 5, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
        x = BatchNorm(momentum=cnn.BN_MOMENTUM, name="stem_bn")(x)
        x = keras.layers.Activation("relu", name="stem_act")(x)
        x = block(x, 64, 2, 0.1, "block2")
        x = block(x, 128, 2, 0.2, "block3")
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(256, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(0.2, name="dropout_head")(x)
    outputs = keras.layers.Dense(ctx.num_classes, activation="softmax", dtype="float32", name="classes")(x)
    model = keras.Model(inputs, outputs, name=f"cnn_{family}")
    return compile_classifier(model, cnn.make_optimizer(hp, batch_size), label_smoothing=0.0, soft_labels=False,
                              num_classes=ctx.num_classes)
