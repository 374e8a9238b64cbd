"""A test space whose second fit is interrupted the way TensorFlow sometimes reports Ctrl-C: the
KeyboardInterrupt is lost (here: raised in a garbage-collector callback) and fit raises SystemError."""

import keras
from conftest import lose_a_sigint

from fashion_tuner.spaces import data_context

FITS = {"n": 0}


def build_model(hp):
    ctx = data_context()
    inputs = keras.Input(ctx.image_shape)
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(hp.Int("units", 8, 64, default=16), activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(ctx.num_classes, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(hp, model, x, y, **kwargs):
    FITS["n"] += 1
    if FITS["n"] == 2:
        lose_a_sigint()
        raise SystemError("Objects/listobject.c:338: bad argument to internal function")
    return model.fit(x, y, **kwargs)
