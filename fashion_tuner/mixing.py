"""MixUp and CutMix batches for ``model.fit`` on any Keras backend.

Each training batch's images are mixed by ``keras.layers.MixUp`` / ``CutMix`` and its integer labels
become the mixed one-hot distributions; the model is compiled with :mod:`fashion_tuner.soft_labels`'
loss and accuracy so validation keeps integer labels.
"""

from __future__ import annotations

import math

import keras
import numpy as np


def mixing_layer(mixing: str, alpha: float, seed: int):
    """The MixUp/CutMix layer, float32 whatever the global policy: it mixes input batches before the
    model (a mixed policy would cast the images and labels to bfloat16/float16 and then fail to multiply
    them by its float32 mixing weights; the model casts its inputs itself)."""
    return (keras.layers.MixUp(alpha=alpha, seed=seed, dtype="float32") if mixing == "mixup"
            else keras.layers.CutMix(factor=alpha, seed=seed, dtype="float32"))


def mixed_dataset(x, y, batch_size: int, mixing: str, alpha: float, num_classes: int, seed: int):
    """(images, one-hot labels) batches with MixUp or CutMix applied, shuffled each epoch.

    On TensorFlow a ``tf.data`` pipeline (``x`` may already be a dataset of batches); on the other
    backends a :class:`MixedBatches` ``keras.utils.PyDataset`` over the arrays.
    """
    layer = mixing_layer(mixing, alpha, seed)
    if keras.backend.backend() != "tensorflow":
        return MixedBatches(x, y, batch_size, layer, num_classes, seed)
    import tensorflow as tf

    def mix(images, labels):
        onehot = tf.one_hot(tf.cast(tf.reshape(labels, (-1,)), tf.int32), num_classes)
        out = layer({"images": images, "labels": onehot}, training=True)
        return out["images"], out["labels"]

    if isinstance(x, tf.data.Dataset):  # already (images, labels) batches
        ds = x
    else:
        ds = (tf.data.Dataset.from_tensor_slices((np.asarray(x, "float32"), np.asarray(y)))
              .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
              .batch(batch_size))
    return ds.map(mix, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class MixedBatches(keras.utils.PyDataset):
    """Batches of ``(images, one-hot labels)`` with a MixUp/CutMix layer applied, for any backend.

    ``x``: (N, H, W, C) float32 pixels, ``y``: (N,) integer labels. The order is reshuffled at
    the end of every epoch from ``seed``; the layer mixes each batch through ``keras.ops``.
    """

    def __init__(self, x, y, batch_size: int, layer, num_classes: int, seed: int):
        super().__init__()
        self.x = np.asarray(x, "float32")
        self.y = np.asarray(y).reshape(-1).astype("int32")
        self.batch_size = int(batch_size)
        self.layer = layer
        self.num_classes = int(num_classes)
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        onehot = keras.ops.one_hot(self.y[rows], self.num_classes)
        out = self.layer({"images": self.x[rows], "labels": onehot}, training=True)
        return (keras.ops.convert_to_numpy(out["images"]).astype("float32"),
                keras.ops.convert_to_numpy(out["labels"]).astype("float32"))

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.x))
