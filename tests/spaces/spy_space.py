"""A test space that records which images each fit receives (to prove the test set stays out)."""

import hashlib
import json
import os

import keras

from fashion_tuner.spaces import data_context


def build_model(hp):
    ctx = data_context()
    units = hp.Int("units", 8, 32)
    inputs = keras.Input(ctx.image_shape)
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(units, activation="relu")(x)
    outputs = keras.layers.Dense(ctx.num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(hp, model, x, y, **kwargs):
    x_val = kwargs["validation_data"][0]
    digests = [hashlib.md5(img.tobytes()).hexdigest() for img in list(x) + list(x_val)]
    with open(os.environ["SPY_OUT"], "a") as fh:
        fh.write(json.dumps(digests) + "\n")
    return model.fit(x, y, **kwargs)
