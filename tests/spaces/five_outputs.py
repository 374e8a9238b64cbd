"""A test space whose model has 5 outputs for 10 classes: every trial fails on the labels."""

import keras

from fashion_tuner.spaces import data_context


def build_model(hp):
    ctx = data_context()
    inputs = keras.Input(ctx.image_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(hp.Int("units", 8, 32, default=16), activation="relu")(x)
    outputs = keras.layers.Dense(5, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
