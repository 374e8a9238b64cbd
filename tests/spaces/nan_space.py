"""A test space where every trial diverges to NaN."""

import keras

from fashion_tuner.spaces import data_context


def build_model(hp):
    ctx = data_context()
    units = hp.Int("units", 8, 64)
    inputs = keras.Input(ctx.image_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(units, activation="relu")(x)
    outputs = keras.layers.Dense(ctx.num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(1e12), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
