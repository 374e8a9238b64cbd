"""A test space whose builds alternate: NaN loss, fine, raises, fine, ... (by build count)."""

import keras

from fashion_tuner.spaces import data_context

BUILDS = {"n": 0}


def build_model(hp):
    ctx = data_context()
    units = hp.Int("units", 8, 64, default=16)
    BUILDS["n"] += 1
    mode = ("nan", "ok", "raise", "ok")[(BUILDS["n"] - 1) % 4]
    if mode == "raise":
        raise ValueError("this architecture does not fit the input")
    inputs = keras.Input(ctx.image_shape)
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(units, activation="relu")(x)
    outputs = keras.layers.Dense(ctx.num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    # SGD at 1e12 diverges to NaN within a few batches
    lr = 1e12 if mode == "nan" else 1e-3
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
