"""fashion_tuner.soft_labels: the loss and accuracy that take integer or one-hot/soft labels."""

from __future__ import annotations

import keras
import numpy as np

from fashion_tuner.soft_labels import LabelAccuracy, LabelCrossentropy


def test_label_crossentropy_matches_keras_losses():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=6).astype("float32")
    labels = np.array([0, 3, 9, 1, 1, 5])
    onehot = np.eye(10, dtype="float32")[labels]
    plain = LabelCrossentropy(num_classes=10)
    expected = keras.losses.SparseCategoricalCrossentropy()(labels, probs)
    assert np.isclose(float(plain(labels, probs)), float(expected), rtol=1e-5)
    assert np.isclose(float(plain(onehot, probs)), float(expected), rtol=1e-5)
    assert np.isclose(float(plain(labels[:, None], probs)), float(expected), rtol=1e-5)
    smooth = LabelCrossentropy(num_classes=10, label_smoothing=0.1)
    expected_smooth = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(onehot, probs)
    assert np.isclose(float(smooth(labels, probs)), float(expected_smooth), rtol=1e-5)
    acc = LabelAccuracy()
    acc.update_state(labels, onehot)
    acc.update_state(onehot, onehot)
    assert float(acc.result()) == 1.0 and acc.name == "accuracy"
