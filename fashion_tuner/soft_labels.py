"""A loss and an accuracy that take integer labels or one-hot/soft ones, and the compile step that picks them.

Keras 3.15's ``SparseCategoricalCrossentropy`` has no ``label_smoothing``, and MixUp/CutMix
(:mod:`fashion_tuner.mixing`) train on soft labels while validation, ``evaluate`` and the report keep
integer labels. Both classes are registered with Keras (package ``fashion_tuner``), so a model compiled
with them saves and loads as ``.keras`` with ``safe_mode=True`` once this module has been imported
(the cnn, cnn_100k and transfer spaces import it).
"""

from __future__ import annotations

import keras


def _is_distribution(y_true, y_pred) -> bool:
    """True when labels are one-hot/soft (same rank and width as the predictions)."""
    return (len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] is not None
            and y_true.shape[-1] == y_pred.shape[-1] and y_pred.shape[-1] != 1)


def _as_distribution(y_true, y_pred, num_classes: int):
    if _is_distribution(y_true, y_pred):
        return keras.ops.cast(y_true, y_pred.dtype)
    labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
    return keras.ops.one_hot(labels, num_classes, dtype=y_pred.dtype)


@keras.saving.register_keras_serializable(package="fashion_tuner")
class LabelCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy on probabilities that accepts integer labels (N,) / (N, 1)
    or one-hot / soft labels (N, classes), with optional label smoothing.

    Keras 3.15's ``SparseCategoricalCrossentropy`` has no ``label_smoothing``, and MixUp/CutMix
    produce soft labels during training while validation keeps integer labels.
    """

    def __init__(self, num_classes: int = 10, label_smoothing: float = 0.0,
                 name: str = "label_crossentropy", reduction: str = "sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_true = _as_distribution(y_true, y_pred, self.num_classes)
        return keras.losses.categorical_crossentropy(y_true, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes,
                "label_smoothing": self.label_smoothing}


def _label_accuracy(y_true, y_pred):
    predicted = keras.ops.argmax(y_pred, axis=-1)
    if _is_distribution(y_true, y_pred):
        actual = keras.ops.argmax(y_true, axis=-1)
    else:
        actual = keras.ops.reshape(y_true, (-1,))
    return keras.ops.cast(keras.ops.equal(keras.ops.cast(actual, "int32"),
                                          keras.ops.cast(predicted, "int32")), "float32")


@keras.saving.register_keras_serializable(package="fashion_tuner")
class LabelAccuracy(keras.metrics.MeanMetricWrapper):
    """Accuracy for integer labels or one-hot/soft labels (argmax); reported as "accuracy"."""

    def __init__(self, name: str = "accuracy", dtype=None):
        super().__init__(fn=_label_accuracy, name=name, dtype=dtype)

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}


def compile_classifier(model: keras.Model, optimizer: keras.optimizers.Optimizer, *,
                       label_smoothing: float = 0.0, soft_labels: bool = False,
                       num_classes: int = 10) -> keras.Model:
    """Compile for integer labels; custom loss/metric only when smoothing or soft labels need them."""
    if soft_labels or label_smoothing > 0:
        loss = LabelCrossentropy(num_classes=num_classes, label_smoothing=label_smoothing)
    else:
        loss = "sparse_categorical_crossentropy"
    metric = LabelAccuracy() if soft_labels else "accuracy"
    model.compile(optimizer=optimizer, loss=loss, metrics=[metric])
    return model
