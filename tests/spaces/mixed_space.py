"""A small MLP space with every kind of Keras Tuner hyperparameter: Int and Float with log sampling, a
Choice, a Boolean and a hyperparameter active only under a condition (for the Optuna bridge and hints)."""

import keras

from fashion_tuner.spaces import data_context


def build_model(hp):
    ctx = data_context()
    inputs = keras.Input(ctx.image_shape)
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(hp.Int("units", 8, 64, sampling="log"), activation=hp.Choice("activation", ["relu", "tanh"]))(x)
    if hp.Boolean("extra_layer"):
        with hp.conditional_scope("extra_layer", [True]):
            x = keras.layers.Dense(hp.Int("extra_units", 8, 32, step=8), activation="relu")(x)
    outputs = keras.layers.Dense(ctx.num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
