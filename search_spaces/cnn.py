"""Convolutional search space: VGG-style blocks with optional residuals, SE and augmentation.

The network, top to bottom (input: (N, 28, 28, 1) float32 pixels in 0..255, labels 0-9)::

    augmentation (training only) -> Normalization(mean, std of the training pixels)
    -> conv block 1 .. conv_blocks -> head (flatten | global average) -> Dense -> Dropout
    -> Dense(num_classes, softmax)

and each conv block is ``convs_block<i>`` x [Conv2D -> BatchNorm? -> activation], an optional
residual shortcut (1x1 projection when the width changes) added before the last activation, an
optional Squeeze-and-Excitation gate, pooling (2x2, "same" padding: 28 -> 14 -> 7 -> 4 -> 2)
and dropout.

The defaults (the first trial Keras Tuner runs) are a known-good Fashion-MNIST CNN sized for a
CPU: 3 blocks with 32/64/128 filters (one conv in block 1, two in blocks 2 and 3), batch norm,
ReLU, max pooling, dropout 0/0.1/0.2, flatten, Dense 256, dropout 0.2, small translations and
horizontal flips, batches of 64, Adam 1e-3 with cosine decay. A second 32-filter conv at 28x28
would double the time per epoch on 2 CPU cores (~11 s -> ~21 s per 10,000 images, measured).
Batch norm is :class:`fashion_tuner.layers.BatchNorm`: Keras' layer, on TensorFlow's fused kernel under
bfloat16 (Keras' own took half of each bfloat16 step on a CPU with AMX: docs/benchmarks.md, "Fused batch norm").

Hyperparameters (name: range, default -- why):

- ``batch_size``: 64 | 128 | 256, 64 -- read by the engine for the fit. On 2 CPU cores an epoch
  costs the same at 64 and 128 (11.2 s per 10,000 images either way, measured), so 64 gives
  twice the updates per epoch for free.
- ``augment``: bool, True -- in-model Keras preprocessing layers, active only while training,
  applied in pixel space before normalisation so the fill value 0 is the black background.
  Only when ``augment`` is on:
  ``translation`` 0.0-0.15 step 0.05, 0.1 (fraction of height/width; 0.1 ~ 3 px),
  ``rotation`` 0.0-0.1 step 0.05, 0.0 (fraction of a full turn; 0.05 = 18 degrees),
  ``zoom`` 0.0-0.15 step 0.05, 0.0, ``horizontal_flip`` bool, True (garments are roughly
  left-right symmetric). A strength of 0 leaves the layer out.
- ``conv_blocks``: 1-4, 3 -- depth; each block halves the resolution.
- ``filters_base``: 16 | 32 | 64, 32 -- width of block 1; block i has
  ``min(filters_base * 2**(i-1), 256)`` filters (the usual widening as resolution falls), so
  filters span 16-256 over the blocks. Wider first blocks are left out: at 28x28 a 128-filter
  block costs ~16x a 32-filter one (an epoch of 60,000 images would take over 20 minutes on
  2 CPU cores) for no gain on 28x28 grey images.
- ``kernel_size``: 3 | 5, 3. ``batch_norm``: bool, True. ``activation``: relu | elu | swish, relu.
- ``pooling``: max | avg, max. ``residual``: bool, False -- a shortcut around every block.
  ``squeeze_excite``: bool, False -- channel attention gate (reduction 8) in every block.
  These are global switches rather than per block to keep the space small for Bayesian search.
- ``convs_block<i>``: 1-2, 1/2/2/2 and ``dropout_block<i>``: 0.0-0.5 step 0.1, 0/0.1/0.2/0.2 --
  per-block settings, conditional on ``conv_blocks >= i`` so search is not spent on blocks
  that do not exist.
- ``head_pooling``: flatten | global_avg, flatten -- flatten keeps spatial detail (more
  parameters); global average is cheap and translation invariant.
- ``dense_units``: 64-512 (powers of 2), 256. ``dropout_head``: 0.0-0.6 step 0.1, 0.2.
  The default dropout is light because the augmentation already regularises: with
  0.1/0.2/0.3 + 0.3 and batches of 128, the default model retrained for 30 epochs on all
  60,000 images ended with training accuracy (under augmentation and dropout) 0.934 against
  validation 0.930 and a validation loss still falling, i.e. under-fitted; after 5 epochs on
  all images the lighter setting with batches of 64 reached validation 0.909 against 0.898.
- ``optimizer``: adam | adamw | sgd (momentum 0.9, Nesterov), adam.
  ``learning_rate``: 1e-4 .. 1e-2 log, 1e-3 (adam/adamw only);
  ``sgd_learning_rate``: 1e-3 .. 2e-1 log, 0.05 (sgd only) -- separate ranges because the
  useful rates differ by ~10x, and a shared range wastes trials on absurd rates.
  ``weight_decay``: 1e-5 .. 5e-2 log, 5e-4 (adamw/sgd only; Keras' decoupled decay, scaled by
  the learning rate). Plain Adam has no weight decay.
- ``lr_schedule``: plateau | cosine | constant, cosine -- cosine decays to 1% over
  ``max_epochs`` epochs of ``steps_per_epoch`` steps (taken from ``data_context().extra``, which
  the search and retrain-best fill with the fit's own images and epochs, see
  :func:`fashion_tuner.schedules.cosine_decay_steps`); plateau halves the rate after 2 epochs without a
  better validation loss (a callback added by :func:`fit`). Cosine is the default because a
  fixed budget is the CPU case: retraining the default CNN for 30 epochs with plateau kept the
  rate at 1e-3 for 28 epochs (validation loss kept creeping down) and ended at 0.937 test
  accuracy, the first halving adding 0.4 points at once.
- ``label_smoothing``: 0.0-0.2 step 0.05, 0.0 -- targets ``(1-e) * onehot + e / classes``.
- ``mixing``: none | mixup | cutmix, none; ``mixing_alpha`` 0.1-1.0 step 0.1, 0.2 (only when
  mixing). MixUp/CutMix need the labels, so :func:`fit` applies ``keras.layers.MixUp`` /
  ``CutMix`` to training batches that it one-hot encodes (:mod:`fashion_tuner.mixing`: a ``tf.data``
  pipeline on TensorFlow, a ``keras.utils.PyDataset`` on JAX and torch). The model is then compiled
  with :mod:`fashion_tuner.soft_labels`' ``LabelCrossentropy`` and ``LabelAccuracy`` (named
  "accuracy"), which take integer labels *or* one-hot/soft labels, so validation, ``evaluate`` and
  the report keep using plain integer labels. Training "accuracy" under mixing
  compares against the dominant label of each mixed image.

Models contain only built-in layers plus those two registered loss/metric classes, so they save
and load as ``.keras`` with ``safe_mode=True`` once this module has been imported
(``fashion_tuner.spaces.load_space("cnn")`` does that).
"""

from __future__ import annotations

import keras

from fashion_tuner.layers import BatchNorm
from fashion_tuner.mixing import mixed_dataset
from fashion_tuner.schedules import cosine_schedule, plateau_callback
from fashion_tuner.soft_labels import compile_classifier
from fashion_tuner.spaces import data_context, hp_value

# Default budget (read by fashion_tuner.spaces without importing this file): 10 Hyperband trials, 36
# epochs on a stratified 10,000-image subset (~12 min on 2 cores); a trial over 5 min is failed (a wide
# 4-block CNN can be 5x the default's cost); the winner trains on all 60,000 images, 30 epochs.
SEARCH_DEFAULTS = {"max_epochs": 6, "subset": 10000, "trial_timeout": 300,
                   "retrain": {"epochs": 30, "train_on": "full", "patience": 5}}

MAX_BLOCKS = 4
MAX_FILTERS = 256
SE_REDUCTION = 8
DEFAULT_CONVS_BLOCK = (1, 2, 2, 2)
DEFAULT_DROPOUT_BLOCK = (0.0, 0.1, 0.2, 0.2)
SGD_MOMENTUM = 0.9
# Keras' default BatchNormalization momentum (0.99) needs ~500 steps before its moving statistics
# forget their initial variance of 1; a 1-epoch Hyperband trial on a 15,000-image subset has 118
# steps and was scored with inference statistics ~10x off (val accuracy 0.29 vs 0.84 in training
# mode). 0.9 (PyTorch's default) settles in ~50 steps.
BN_MOMENTUM = 0.9


# --------------------------------------------------------------------------- fit
def fit(hp, model: keras.Model, x, y=None, **kwargs):
    """Keras Tuner ``HyperModel.fit``: adds the plateau callback and MixUp/CutMix, then ``model.fit``.

    ``x``: (N, 28, 28, 1) float32 pixels 0..255 (or a tf.data.Dataset of such batches), ``y``:
    integer labels (N,). Returns the History.
    """
    kwargs = dict(kwargs)
    plateau = [plateau_callback(kwargs)] if hp_value(hp, "lr_schedule") == "plateau" else []
    kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + plateau
    mixing = hp_value(hp, "mixing", "none")
    if mixing != "none":
        batch_size = kwargs.pop("batch_size", None) or hp_value(hp, "batch_size", 128)
        kwargs["shuffle"] = False  # the dataset reshuffles itself each epoch
        x = mixed_dataset(x, y, batch_size, mixing, hp_value(hp, "mixing_alpha", 0.2),
                          data_context().num_classes, data_context().seed)
        y = None
    return model.fit(x, y, **kwargs)


# --------------------------------------------------------------------------- building blocks
def add_augmentation(hp, x, seed: int):
    """In-model augmentation (active only in training), in pixel units before normalisation."""
    augment = hp.Boolean("augment", default=True)
    with hp.conditional_scope("augment", [True]):
        translation = hp.Float("translation", 0.0, 0.15, step=0.05, default=0.1)
        rotation = hp.Float("rotation", 0.0, 0.1, step=0.05, default=0.0)
        zoom = hp.Float("zoom", 0.0, 0.15, step=0.05, default=0.0)
        flip = hp.Boolean("horizontal_flip", default=True)
    if not augment:
        return x
    if flip:
        x = keras.layers.RandomFlip("horizontal", seed=seed, name="aug_flip")(x)
    if translation > 0:
        x = keras.layers.RandomTranslation(translation, translation, fill_mode="constant", fill_value=0.0,
                                           seed=seed + 1, name="aug_translation")(x)
    if rotation > 0:
        x = keras.layers.RandomRotation(rotation, fill_mode="constant", fill_value=0.0,
                                        seed=seed + 2, name="aug_rotation")(x)
    if zoom > 0:
        x = keras.layers.RandomZoom(zoom, zoom, fill_mode="constant", fill_value=0.0,
                                    seed=seed + 3, name="aug_zoom")(x)
    return x


def squeeze_excite(x, channels: int, name: str):
    """Squeeze-and-Excitation: reweight channels by a gate computed from their global average."""
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
    s = keras.layers.Dense(max(channels // SE_REDUCTION, 4), activation="relu", name=f"{name}_se_reduce")(s)
    s = keras.layers.Dense(channels, activation="sigmoid", name=f"{name}_se_expand")(s)
    return keras.layers.Multiply(name=f"{name}_se_scale")([x, s])


def conv_block(x, *, filters: int, convs: int, kernel_size: int, batch_norm: bool, activation: str,
               pooling: str, residual: bool, se: bool, dropout: float, name: str):
    """convs x [Conv -> BN? -> act], shortcut added before the last activation, SE, pool, dropout."""
    shortcut = x
    for j in range(convs):
        x = keras.layers.Conv2D(filters, kernel_size, padding="same", use_bias=not batch_norm,
                                name=f"{name}_conv{j + 1}")(x)
        if batch_norm:
            x = BatchNorm(momentum=BN_MOMENTUM, name=f"{name}_bn{j + 1}")(x)
        if j < convs - 1:
            x = keras.layers.Activation(activation, name=f"{name}_act{j + 1}")(x)
    if se:
        x = squeeze_excite(x, filters, name)
    if residual:
        if shortcut.shape[-1] != filters:
            shortcut = keras.layers.Conv2D(filters, 1, use_bias=not batch_norm, name=f"{name}_proj")(shortcut)
            if batch_norm:
                shortcut = BatchNorm(momentum=BN_MOMENTUM, name=f"{name}_proj_bn")(shortcut)
        x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    x = keras.layers.Activation(activation, name=f"{name}_act{convs}")(x)
    pool = keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
    x = pool(2, padding="same", name=f"{name}_pool")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def make_optimizer(hp, batch_size: int) -> keras.optimizers.Optimizer:
    """Optimizer with its learning rate (and schedule) from the hyperparameters."""
    name = hp.Choice("optimizer", ["adam", "adamw", "sgd"], default="adam")
    with hp.conditional_scope("optimizer", ["adam", "adamw"]):
        adaptive_lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    with hp.conditional_scope("optimizer", ["sgd"]):
        sgd_lr = hp.Float("sgd_learning_rate", 1e-3, 2e-1, sampling="log", default=0.05)
    with hp.conditional_scope("optimizer", ["adamw", "sgd"]):
        weight_decay = hp.Float("weight_decay", 1e-5, 5e-2, sampling="log", default=5e-4)
    schedule = hp.Choice("lr_schedule", ["plateau", "cosine", "constant"], default="cosine")

    lr = sgd_lr if name == "sgd" else adaptive_lr
    if schedule == "cosine":
        lr = cosine_schedule(lr, batch_size)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay)
    return keras.optimizers.SGD(learning_rate=lr, momentum=SGD_MOMENTUM, nesterov=True, weight_decay=weight_decay)


# --------------------------------------------------------------------------- the space
def build_model(hp) -> keras.Model:
    """Build and compile one CNN of the space; see the module docstring for every hyperparameter."""
    ctx = data_context()
    batch_size = hp.Choice("batch_size", [64, 128, 256], default=64)

    inputs = keras.Input(shape=ctx.image_shape, name="image")
    x = add_augmentation(hp, inputs, ctx.seed)
    x = keras.layers.Normalization(axis=None, mean=ctx.mean, variance=ctx.std ** 2, name="normalize")(x)

    conv_blocks = hp.Int("conv_blocks", 1, MAX_BLOCKS, default=3)
    filters_base = hp.Choice("filters_base", [16, 32, 64], default=32)
    kernel_size = hp.Choice("kernel_size", [3, 5], default=3)
    batch_norm = hp.Boolean("batch_norm", default=True)
    activation = hp.Choice("activation", ["relu", "elu", "swish"], default="relu")
    pooling = hp.Choice("pooling", ["max", "avg"], default="max")
    residual = hp.Boolean("residual", default=False)
    se = hp.Boolean("squeeze_excite", default=False)
    for i in range(1, MAX_BLOCKS + 1):
        with hp.conditional_scope("conv_blocks", list(range(i, MAX_BLOCKS + 1))):
            convs = hp.Int(f"convs_block{i}", 1, 2, default=DEFAULT_CONVS_BLOCK[i - 1])
            dropout = hp.Float(f"dropout_block{i}", 0.0, 0.5, step=0.1, default=DEFAULT_DROPOUT_BLOCK[i - 1])
        if i <= conv_blocks:
            x = conv_block(x, filters=min(filters_base * 2 ** (i - 1), MAX_FILTERS), convs=convs,
                           kernel_size=kernel_size, batch_norm=batch_norm, activation=activation,
                           pooling=pooling, residual=residual, se=se, dropout=dropout, name=f"block{i}")

    head_pooling = hp.Choice("head_pooling", ["flatten", "global_avg"], default="flatten")
    x = (keras.layers.Flatten(name="flatten")(x) if head_pooling == "flatten"
         else keras.layers.GlobalAveragePooling2D(name="global_avg")(x))
    x = keras.layers.Dense(hp.Int("dense_units", 64, 512, step=2, sampling="log", default=256),
                           activation=activation, name="dense")(x)
    x = keras.layers.Dropout(hp.Float("dropout_head", 0.0, 0.6, step=0.1, default=0.2), name="dropout_head")(x)
    outputs = keras.layers.Dense(ctx.num_classes, activation="softmax", dtype="float32", name="classes")(x)
    model = keras.Model(inputs, outputs, name="cnn")

    optimizer = make_optimizer(hp, batch_size)
    label_smoothing = hp.Float("label_smoothing", 0.0, 0.2, step=0.05, default=0.0)
    mixing = hp.Choice("mixing", ["none", "mixup", "cutmix"], default="none")
    with hp.conditional_scope("mixing", ["mixup", "cutmix"]):
        hp.Float("mixing_alpha", 0.1, 1.0, step=0.1, default=0.2)  # used by fit()
    return compile_classifier(model, optimizer, label_smoothing=label_smoothing,
                              soft_labels=mixing != "none", num_classes=ctx.num_classes)
