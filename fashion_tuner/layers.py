"""Layers the built-in spaces share where Keras' own is measured slow: a batch normalisation on TensorFlow's fused kernel.

Keras 3 normalises a batch with separate operations (``ops.moments``, then ``ops.batch_normalization``),
upcasting 16-bit inputs to float32 first; on TensorFlow that is ~10 element-wise passes over each
activation and its gradient. Under mixed_bfloat16 on a CPU with AMX, where the convolutions themselves
become cheap, those passes were most of the default CNN's step: a full-data epoch took 65.6 s with Keras'
layer and 34.8 s with TensorFlow's fused kernel (``FusedBatchNormV3``, oneDNN), against 82.2 s in float32
(medians over 3 seeds, docs/benchmarks.md, "Fused batch norm"). In float32 the two took the same time, so
the fused path is used only for 16-bit inputs, where it was measured to pay (and where tf.keras used it by
default on GPUs for years); everything else is Keras' own code. The known upstream report:
keras-team/keras-core#225 ("BatchNorm is slow").

:class:`BatchNorm` is a :class:`keras.layers.BatchNormalization`: the same weights, config and arithmetic
(normalised with the batch's biased variance; the moving statistics are updated with it too, as Keras
does; TensorFlow's kernel returns the unbiased one, which is rescaled), so checkpoints and ``.keras``
files of either load into the other by weights. It is registered as ``fashion_tuner>BatchNorm``, so a saved
model loads with ``safe_mode=True`` once this module is imported (importing a built-in space does that).
"""

from __future__ import annotations

import logging

import keras

log = logging.getLogger(__name__)

# compute dtypes whose training and inference run on TensorFlow's fused kernel (float32 stays on Keras' ops)
FUSED_DTYPES = ("bfloat16", "float16")


@keras.saving.register_keras_serializable(package="fashion_tuner")
class BatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` that runs TensorFlow's fused kernel for 16-bit NHWC inputs.

    Inputs: (N, H, W, C) in the layer's compute dtype; normalised over N, H, W per channel (``axis=-1``).
    Any other case (another backend, float32, another rank or axis, a mask, renorm, synchronized,
    ``center`` or ``scale`` off) is Keras' own :meth:`call`."""

    def _fused(self, inputs, mask) -> bool:
        return (keras.backend.backend() == "tensorflow" and mask is None and len(inputs.shape) == 4
                and self.axis in (-1, 3) and self.center and self.scale and not self.renorm
                and not self.synchronized and keras.backend.standardize_dtype(inputs.dtype) in FUSED_DTYPES)

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        gamma = tf.cast(self.gamma, "float32")
        beta = tf.cast(self.beta, "float32")
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
            count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), "float32")
            variance = variance * (count - 1.0) / tf.maximum(count, 1.0)  # the kernel returns the unbiased one
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"), epsilon=self.epsilon, data_format="NHWC",
                is_training=False)
        return tf.cast(outputs, self.compute_dtype)
