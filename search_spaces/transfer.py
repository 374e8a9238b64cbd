"""Transfer-learning search space: a pretrained backbone plus a new classification head.

Two backbone families, chosen by ``backbone_family``:

``autoencoder`` (in-domain pretraining, always available)
    A convolutional autoencoder (the hand-written attempt: conv 32 -> pool -> conv 64 -> pool ->
    flatten -> dropout 0.1 -> Dense(latent); mirrored transposed-conv decoder; MSE on pixels
    scaled to 0..1; Adam 1e-3, batch 100) is trained without labels on
    ``data_context().x_train`` for ``PRETRAIN_EPOCHS`` epochs (``data_context().extra
    ["pretrain_epochs"]`` overrides). Its encoder is cached in ``data_context().cache_dir`` as
    ``ae-<key>.keras`` plus an ``ae-<key>.json`` sidecar, where the key is a SHA-1 of the
    autoencoder configuration, ``data_md5`` and a digest of the training images themselves (so
    an encoder never sees images that a different split puts in validation). Later trials and
    runs load it instead of retraining; files are written atomically.

``applications`` (ImageNet backbones from ``keras.applications``)
    MobileNetV2 (alpha ``MOBILENET_ALPHA``), EfficientNetB0 and ResNet50 without their tops
    (all accept inputs from 32x32). The input adapter is built from serialisable layers:
    Resizing 28 -> ``input_size``, grayscale -> 3 channels by Concatenate, then the backbone's
    own preprocessing (MobileNetV2: Rescaling to -1..1; EfficientNetB0: none, it rescales
    inside; ResNet50 "caffe": subtract the BGR ImageNet means -- the RGB->BGR flip is a no-op
    on replicated gray channels). The backbone runs with ``training=False`` so its batch-norm
    statistics stay frozen while fine-tuning.
    Weights come from ``data_context().weights``:
    ``"auto"`` (the CLI's default): ``"imagenet"`` when MobileNetV2's ImageNet weights load (cached or
    downloadable), else ``"none"``; one printed line says which (:func:`resolve_weights`).
    ``"imagenet"``: the Keras cache (``~/.keras/models``), downloading when online; if that
    fails, :class:`WeightsUnavailable` (a ``UserError`` that Keras Tuner also treats as fatal)
    says how to provide them. A file path: loaded with ``backbone.load_weights(PATH)``; the
    family then offers only the backbone(s) the file fits. ``None`` / ``"none"``: the family is
    not offered at all -- the space never trains a randomly initialised backbone and calls it
    transfer learning. This is decided when the model is built, so ``backbone_family`` is a
    Choice of ``["autoencoder"]`` alone without weights.

Hyperparameters (name: range, default -- why):

- ``batch_size``: 64 | 128 | 256, 128 (read by the engine).
- ``backbone_family``: autoencoder | applications (when weights exist), autoencoder.
- ``fine_tune``: full | two_stage | frozen, full -- frozen: train the head only; full: train
  head and backbone together from the start at ``learning_rate`` (the best of the four cases
  the hand-written attempt compared); two_stage: ``HEAD_EPOCHS`` epochs of head only, then
  unfreeze and continue at ``learning_rate_finetune`` (done by :func:`fit`).
- ``latent_size``: 64 | 32 | 128, 64 (autoencoder only) -- the encoder's code size; each value
  is pretrained once and cached.
- ``backbone``: mobilenetv2 | efficientnetb0 | resnet50 (those the weights allow), first
  available (applications only).
- ``input_size``: 32 | 64 | 96, 32 (applications only) -- larger inputs suit ImageNet
  features better but cost ~(size/32)^2 more compute.
- ``unfreeze_fraction``: 0.25 | 0.5 | 1.0, 0.25 (applications only; unused when frozen, as
  Keras Tuner cannot nest a condition on ``fine_tune`` inside one on ``backbone_family``) --
  the fraction of backbone layers, counted from the top, that are trained; batch-norm layers
  stay frozen. The small autoencoder encoder is always unfrozen whole.
- ``head_units``: 64-512 (powers of 2), 128. ``dropout_head``: 0.0-0.5 step 0.1, 0.3.
- ``augment`` (+ ``translation``, ``rotation``, ``zoom``, ``horizontal_flip``): the CNN space's
  in-model augmentation (:func:`search_spaces.cnn.add_augmentation`, same names, ranges and
  defaults: on, translation 0.1, horizontal flips), in front of the backbone and active only while
  training. The autoencoder itself is pretrained on the plain images (its cache key is unchanged).
  Without it the default model overfits: retrained on all 60,000 images, training accuracy rose to
  0.946 while validation stayed at 0.915 from epoch 9 on.
- ``learning_rate``: 1e-4 .. 1e-2 log, 1e-3 -- Adam rate for the head (and everything under
  ``full``). ``learning_rate_finetune``: 1e-5 .. 1e-3 log, 1e-4 (two_stage only) -- stage 2.
- ``lr_schedule``: cosine | constant, cosine -- cosine decays ``learning_rate`` to 1% over the
  fit's epochs, as in the CNN space (:func:`fashion_tuner.schedules.cosine_schedule`); two_stage's
  second stage always runs at the constant ``learning_rate_finetune``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import keras
import keras_tuner
import numpy as np

from fashion_tuner.errors import UserError
from fashion_tuner.schedules import cosine_schedule
from fashion_tuner.soft_labels import compile_classifier
from fashion_tuner.spaces import data_context, hp_value
from search_spaces.cnn import add_augmentation

# Default budget (read by fashion_tuner.spaces without importing this file): Hyperband on a 15,000-image
# subset, the winner retrained on every training image; no trial timeout: the first trial also
# pretrains (and caches) the autoencoder.
SEARCH_DEFAULTS = {"max_epochs": 6, "subset": 15000, "retrain": {"epochs": 20, "train_on": "full", "patience": 5}}

AE_VERSION = 1  # bump when the autoencoder architecture or training changes (invalidates caches)
AE_LATENT_SIZES = (64, 32, 128)
AE_DROPOUT = 0.1
AE_LEARNING_RATE = 1e-3
AE_BATCH_SIZE = 100
PRETRAIN_EPOCHS = 5
HEAD_EPOCHS = 1  # two_stage: epochs of head-only training before unfreezing
MOBILENET_ALPHA = 0.35
INPUT_SIZES = (32, 64, 96)
UNFREEZE_FRACTIONS = (0.25, 0.5, 1.0)
NO_WEIGHTS = (None, "", "none", "None")
AUTO_WEIGHTS = "auto"  # ImageNet when the weights load (cache or download), else no applications family
PROBE_BACKBONE = "mobilenetv2"  # the smallest download (~2 MB): probes the cache / network for "auto"
_AUTO_RESOLVED: dict[str, str] = {}  # Keras models folder -> "imagenet" | "none", once per process

# How many autoencoder pretrainings this process ran (tests check the cache prevents reruns).
PRETRAIN_RUNS = 0


class WeightsUnavailable(UserError, keras_tuner.errors.FatalError):
    """Backbone weights cannot be had. A UserError for the CLI; fatal for Keras Tuner (no retries)."""


# --------------------------------------------------------------------------- Keras Applications
def _mobilenetv2(size: int, weights):
    return keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=MOBILENET_ALPHA,
                                          include_top=False, weights=weights)


def _efficientnetb0(size: int, weights):
    return keras.applications.EfficientNetB0(input_shape=(size, size, 3), include_top=False, weights=weights)


def _resnet50(size: int, weights):
    return keras.applications.ResNet50(input_shape=(size, size, 3), include_top=False, weights=weights)


def _rescale_minus1_1():
    return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="backbone_preprocess")


def _caffe_means():
    return keras.layers.Normalization(axis=-1, mean=[103.939, 116.779, 123.68], variance=[1.0, 1.0, 1.0],
                                      name="backbone_preprocess")


# name -> (constructor(size, weights), preprocessing layer factory or None, what to tell users)
BACKBONES = {
    "mobilenetv2": (_mobilenetv2, _rescale_minus1_1,
                    f"keras.applications.MobileNetV2(alpha={MOBILENET_ALPHA}, include_top=False)"),
    "efficientnetb0": (_efficientnetb0, None, "keras.applications.EfficientNetB0(include_top=False)"),
    "resnet50": (_resnet50, _caffe_means, "keras.applications.ResNet50(include_top=False)"),
}

_FITTING_CACHE: dict[tuple, list[str]] = {}


def _keras_models_dir() -> str:
    """Where keras.applications caches weights (``$KERAS_HOME/models``, default ``~/.keras/models``)."""
    try:
        from keras.src.backend.config import keras_home  # not public API; fall back if it moves
        return os.path.join(keras_home(), "models")
    except ImportError:
        return os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")


def make_backbone(name: str, size: int, weights=None) -> keras.Model:
    """An ImageNet-architecture backbone without top, input (size, size, 3), named "backbone".

    ``weights``: None (random, only for tests and for loading a file into), "imagenet" (Keras
    cache or download; :class:`WeightsUnavailable` when neither works) or a weights file path.
    """
    constructor, _, how = BACKBONES[name]
    if weights == "imagenet":
        try:
            backbone = constructor(size, "imagenet")
        except Exception as exc:  # get_file raises a bare Exception on URL failures
            reason = " ".join(str(exc).split())[:160]
            raise WeightsUnavailable(
                f"ImageNet weights for {name} are not in the Keras cache ({_keras_models_dir()}) "
                f"and could not be downloaded ({reason}); run once with internet access, copy the weights file "
                f"into that folder, or pass --weights PATH with a file saved from {how}") from None
    else:
        backbone = constructor(size, None)
        if weights not in NO_WEIGHTS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                backbone.load_weights(str(weights))
    backbone.name = "backbone"
    return backbone


def _backbones_fitting(path: str) -> list[str]:
    """The backbones a weights file loads into (tried in BACKBONES order; first match wins)."""
    p = Path(path)
    if not p.is_file():
        raise WeightsUnavailable(f"weights file {path} does not exist; pass --weights imagenet, --weights none "
                                 "or the path of a weights file saved from one of the backbones")
    key = (str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size)
    if key not in _FITTING_CACHE:
        fitting = []
        for name in BACKBONES:
            try:
                make_backbone(name, INPUT_SIZES[0], str(p))
            except Exception:
                continue
            fitting.append(name)
            break
        _FITTING_CACHE[key] = fitting
    if not _FITTING_CACHE[key]:
        hows = "; ".join(how for _, _, how in BACKBONES.values())
        raise WeightsUnavailable(f"weights file {path} fits none of the transfer backbones; save it with "
                                 f"save_weights() from one of: {hows}")
    return _FITTING_CACHE[key]


def resolve_weights(weights):
    """``"auto"`` -> ``"imagenet"`` when the probe backbone's ImageNet weights load (Keras cache, else a
    download), otherwise ``"none"`` (the in-domain autoencoder family only); one printed line says which,
    once per process. Any other value is returned as it is."""
    if weights != AUTO_WEIGHTS:
        return weights
    where = _keras_models_dir()
    if where not in _AUTO_RESOLVED:
        try:
            make_backbone(PROBE_BACKBONE, INPUT_SIZES[0], "imagenet")
            _AUTO_RESOLVED[where] = "imagenet"
            print(f"transfer: ImageNet weights available (Keras cache {where}, or downloaded): searching the "
                  "autoencoder and ImageNet-backbone families", flush=True)
        except WeightsUnavailable:
            _AUTO_RESOLVED[where] = "none"
            print(f"transfer: ImageNet weights neither in the Keras cache ({where}) nor downloadable: searching "
                  "the in-domain autoencoder family only (--weights PATH or imagenet to use a backbone)", flush=True)
    return _AUTO_RESOLVED[where]


def available_backbones(weights=None) -> list[str]:
    """Backbones the applications family may use with ``weights`` (data_context().weights by default)."""
    weights = resolve_weights(data_context().weights if weights is None else weights)
    if weights in NO_WEIGHTS:
        return []
    if weights == "imagenet":
        return list(BACKBONES)
    return _backbones_fitting(str(weights))


def _unfreeze_top(backbone: keras.Model, fraction: float) -> None:
    """Make the top ``fraction`` of the backbone's layers trainable, batch norm excepted."""
    backbone.trainable = True
    first = len(backbone.layers) - max(1, round(fraction * len(backbone.layers)))
    for i, layer in enumerate(backbone.layers):
        if i < first or isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


# --------------------------------------------------------------------------- in-domain autoencoder
def _make_encoder(latent_size: int, ctx) -> keras.Model:
    inputs = keras.Input(shape=ctx.image_shape, name="image")
    x = keras.layers.Normalization(axis=None, mean=ctx.mean, variance=ctx.std ** 2, name="normalize")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="enc_conv1")(x)
    x = keras.layers.MaxPooling2D(2, name="enc_pool1")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="enc_conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="enc_pool2")(x)
    x = keras.layers.Flatten(name="enc_flatten")(x)
    x = keras.layers.Dropout(AE_DROPOUT, seed=ctx.seed, name="enc_dropout")(x)
    latent = keras.layers.Dense(latent_size, name="latent")(x)
    return keras.Model(inputs, latent, name="backbone")


def _make_decoder(latent_size: int, image_shape: tuple) -> keras.Model:
    h, w, c = image_shape[0] // 4, image_shape[1] // 4, 64
    inputs = keras.Input(shape=(latent_size,), name="latent")
    x = keras.layers.Dense(h * w * c, activation="relu", name="dec_dense")(inputs)
    x = keras.layers.Reshape((h, w, c), name="dec_reshape")(x)
    x = keras.layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu", name="dec_up1")(x)
    x = keras.layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu", name="dec_up2")(x)
    outputs = keras.layers.Conv2D(image_shape[-1], 3, padding="same", activation="sigmoid", name="dec_pixels")(x)
    return keras.Model(inputs, outputs, name="decoder")


def autoencoder_config(latent_size: int) -> dict:
    """Everything the pretrained encoder depends on (the cache key is its SHA-1)."""
    ctx = data_context()
    if ctx.x_train is None:
        raise UserError("the autoencoder backbone needs the training images for pretraining, but the data context "
                        "has none; run it through `main.py search` / `retrain-best`, or set "
                        "fashion_tuner.spaces.data_context().x_train")
    x = np.ascontiguousarray(ctx.x_train, dtype=np.float32)
    return {"version": AE_VERSION, "latent_size": int(latent_size), "dropout": AE_DROPOUT,
            "learning_rate": AE_LEARNING_RATE, "batch_size": AE_BATCH_SIZE,
            "epochs": int(ctx.extra.get("pretrain_epochs", PRETRAIN_EPOCHS)),
            "image_shape": list(ctx.image_shape), "mean": float(ctx.mean), "std": float(ctx.std),
            "seed": int(ctx.seed), "data_md5": ctx.data_md5, "images": int(len(x)),
            "images_sha1": hashlib.sha1(x.view(np.uint8)).hexdigest()}


def pretrained_encoder(latent_size: int) -> keras.Model:
    """The cached encoder for this configuration and data, pretraining (and caching) it if needed."""
    global PRETRAIN_RUNS
    ctx = data_context()
    config = autoencoder_config(latent_size)
    key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    cache_dir = Path(ctx.cache_dir)
    path = cache_dir / f"ae-{key}.keras"
    if path.is_file():
        return keras.saving.load_model(path, compile=False, safe_mode=True)

    encoder = _make_encoder(latent_size, ctx)
    decoder = _make_decoder(latent_size, ctx.image_shape)
    inputs = keras.Input(shape=ctx.image_shape)
    autoencoder = keras.Model(inputs, decoder(encoder(inputs)), name="autoencoder")
    autoencoder.compile(optimizer=keras.optimizers.Adam(AE_LEARNING_RATE), loss="mse")
    x = np.asarray(ctx.x_train, dtype=np.float32)
    started = time.time()
    history = autoencoder.fit(x, x / 255.0, batch_size=AE_BATCH_SIZE, epochs=config["epochs"],
                              shuffle=True, verbose=0)
    PRETRAIN_RUNS += 1

    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f"ae-{key}.{os.getpid()}.tmp.keras"  # Keras insists on the .keras suffix
    encoder.save(tmp)
    os.replace(tmp, path)
    sidecar = {"config": config, "key": key, "file": path.name, "seconds": round(time.time() - started, 1),
               "reconstruction_mse": [float(v) for v in history.history["loss"]],
               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "keras": keras.__version__}
    tmp_json = cache_dir / f"ae-{key}.{os.getpid()}.tmp.json"
    tmp_json.write_text(json.dumps(sidecar, indent=2) + "\n")
    os.replace(tmp_json, cache_dir / f"ae-{key}.json")
    # A fresh copy, so the classifier never shares layers with the autoencoder graph.
    return keras.saving.load_model(path, compile=False, safe_mode=True)


# --------------------------------------------------------------------------- the space
def build_model(hp) -> keras.Model:
    """Build and compile one transfer model of the space; see the module docstring."""
    ctx = data_context()
    batch_size = hp.Choice("batch_size", [64, 128, 256], default=128)
    backbones = available_backbones()
    families = ["autoencoder"] + (["applications"] if backbones else [])
    family = hp.Choice("backbone_family", families, default="autoencoder")
    fine_tune = hp.Choice("fine_tune", ["full", "two_stage", "frozen"], default="full")
    with hp.conditional_scope("backbone_family", ["autoencoder"]):
        latent_size = hp.Choice("latent_size", list(AE_LATENT_SIZES), default=AE_LATENT_SIZES[0])
    if backbones:  # without weights the scope must not exist: Keras Tuner would force it active
        with hp.conditional_scope("backbone_family", ["applications"]):
            backbone_name = hp.Choice("backbone", backbones, default=backbones[0])
            input_size = hp.Choice("input_size", list(INPUT_SIZES), default=INPUT_SIZES[0])
            unfreeze_fraction = hp.Choice("unfreeze_fraction", list(UNFREEZE_FRACTIONS),
                                          default=UNFREEZE_FRACTIONS[0])

    inputs = keras.Input(shape=ctx.image_shape, name="image")
    augmented = add_augmentation(hp, inputs, ctx.seed)  # identity at inference
    if family == "autoencoder":
        backbone = pretrained_encoder(latent_size)  # normalises inside
        features = backbone(augmented)
        if fine_tune == "full":
            backbone.trainable = True
        else:
            backbone.trainable = False
    else:
        _, preprocess, _ = BACKBONES[backbone_name]
        x = keras.layers.Resizing(input_size, input_size, name="resize")(augmented)
        x = keras.layers.Concatenate(axis=-1, name="gray_to_rgb")([x, x, x])
        if preprocess is not None:
            x = preprocess()(x)
        backbone = make_backbone(backbone_name, input_size, resolve_weights(ctx.weights))
        if fine_tune == "full":
            _unfreeze_top(backbone, unfreeze_fraction)
        else:
            backbone.trainable = False
        features = keras.layers.GlobalAveragePooling2D(name="features")(backbone(x, training=False))

    x = keras.layers.Dense(hp.Int("head_units", 64, 512, step=2, sampling="log", default=128),
                           activation="relu", name="head_dense")(features)
    x = keras.layers.Dropout(hp.Float("dropout_head", 0.0, 0.5, step=0.1, default=0.3), name="dropout_head")(x)
    outputs = keras.layers.Dense(ctx.num_classes, activation="softmax", dtype="float32", name="classes")(x)
    model = keras.Model(inputs, outputs, name=f"transfer_{family}")

    learning_rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    with hp.conditional_scope("fine_tune", ["two_stage"]):
        hp.Float("learning_rate_finetune", 1e-5, 1e-3, sampling="log", default=1e-4)  # used by fit()
    if hp.Choice("lr_schedule", ["cosine", "constant"], default="cosine") == "cosine":
        learning_rate = cosine_schedule(learning_rate, batch_size)
    return compile_classifier(model, keras.optimizers.Adam(learning_rate), num_classes=ctx.num_classes)


def unfreeze_backbone(hp, model: keras.Model) -> None:
    """Stage 2 of two_stage: unfreeze the backbone (applications: its top fraction) and recompile."""
    backbone = model.get_layer("backbone")
    if hp_value(hp, "backbone_family") == "applications":
        _unfreeze_top(backbone, hp_value(hp, "unfreeze_fraction", UNFREEZE_FRACTIONS[0]))
    else:
        backbone.trainable = True
    compile_classifier(model, keras.optimizers.Adam(hp_value(hp, "learning_rate_finetune", 1e-4)),
                       num_classes=data_context().num_classes)


def _concat_histories(first, second):
    if first is None:
        return second
    for k, v in first.history.items():
        second.history[k] = list(v) + list(second.history.get(k, []))
    second.epoch = list(first.epoch) + list(second.epoch)
    return second


def fit(hp, model: keras.Model, x, y=None, **kwargs):
    """Keras Tuner ``HyperModel.fit``: plain ``model.fit`` except for ``fine_tune="two_stage"``.

    two_stage trains epochs [0, HEAD_EPOCHS) with the backbone frozen, then unfreezes it and
    continues to ``epochs`` at ``learning_rate_finetune``. ``initial_epoch`` (Hyperband resuming
    a trial) past HEAD_EPOCHS goes straight to stage 2. Returns one History for all epochs.
    """
    if hp_value(hp, "fine_tune") != "two_stage":
        return model.fit(x, y, **kwargs)
    kwargs = dict(kwargs)
    epochs = kwargs.pop("epochs", 1)
    start = kwargs.pop("initial_epoch", 0)
    history = None
    if start < HEAD_EPOCHS:
        history = model.fit(x, y, epochs=min(epochs, HEAD_EPOCHS), initial_epoch=start, **kwargs)
        start = min(epochs, HEAD_EPOCHS)
    if epochs > start:
        unfreeze_backbone(hp, model)
        history = _concat_histories(history, model.fit(x, y, epochs=epochs, initial_epoch=start, **kwargs))
    return history
