"""A test space that records the Keras dtype policy in force inside each build_model call.

Each call appends one line ``<policy name> <backend>`` to the file named by ``$POLICY_OUT``, so a
test can compare the policy the trials were really built under with the one the run reports.
"""

import os

import keras

from fashion_tuner.spaces import data_context


def build_model(hp):
    with open(os.environ["POLICY_OUT"], "a") as fh:
        fh.write(f"{keras.config.dtype_policy().name} {keras.backend.backend()}\n")
    ctx = data_context()
    inputs = keras.Input(ctx.image_shape)
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(hp.Int("units", 16, 64, step=16), activation="relu")(x)
    outputs = keras.layers.Dense(ctx.num_classes, activation="softmax", dtype="float32")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
