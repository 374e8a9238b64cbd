"""A test space whose default learning rate (1e-7) cannot learn in a few epochs, and one other value (1e-2)
that can: a search's second trial beats the defaults, so retrain-best races the two (fashion_tuner.retrain.race)."""

import keras

from fashion_tuner.spaces import data_context


def build_model(hp):
    rate = hp.Choice("learning_rate", [1e-7, 1e-2], default=1e-7)
    ctx = data_context()
    inputs = keras.Input(ctx.image_shape)
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    outputs = keras.layers.Dense(ctx.num_classes, activation="softmax", dtype="float32")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
