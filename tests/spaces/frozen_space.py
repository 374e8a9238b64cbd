"""A test space of two configurations: the defaults learn; ``frozen`` (learning rate 0) stays at chance, so a
search over it always keeps the defaults."""

import keras

from fashion_tuner.spaces import data_context


def build_model(hp):
    ctx = data_context()
    frozen = hp.Boolean("frozen", default=False)
    inputs = keras.Input(ctx.image_shape)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(ctx.num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.0 if frozen else 0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model
