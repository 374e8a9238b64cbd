"""fashion_tuner.predict: image reading, safe model loading, top-N output, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_tuner.errors import UserError
from fashion_tuner.predict import load_image, predict_command, predict_images, read_class_names


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A small seeded, untrained classifier (normalisation inside, softmax over 10) saved as .keras."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    path = tmp_path_factory.mktemp("model") / "best_model.keras"
    model.save(path)
    return path


def test_png_prediction_matches_model_predict(model_file, fashion, tmp_path):
    import keras

    images = fashion.x_test[:5]
    paths = []
    for i, img in enumerate(images):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    results, probs = predict_images(model_file, paths, top=3)
    expected = keras.models.load_model(model_file, compile=False).predict(images[..., None].astype(np.float32), verbose=0)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    for r, e in zip(results, expected):
        assert r["top"][0][1] == int(e.argmax())
        assert [p for _, _, p in r["top"]] == sorted((p for _, _, p in r["top"]), reverse=True)
        assert len(r["top"]) == 3


def test_npy_rgb_and_resized_inputs(tmp_path, fashion):
    img = fashion.x_test[0]
    np.save(tmp_path / "a.npy", img.astype(np.float32) / 255.0)  # 0-1 floats
    gray, notes = load_image(tmp_path / "a.npy")
    np.testing.assert_allclose(gray, img, atol=1e-3)
    assert gray.dtype == np.float32 and "scaled" in notes[0]

    rgb = np.stack([img] * 3, axis=-1)
    Image.fromarray(rgb).resize((56, 56), Image.Resampling.NEAREST).save(tmp_path / "b.png")
    gray, notes = load_image(tmp_path / "b.png")
    assert gray.shape == (28, 28)
    assert any("grayscale" in n for n in notes) and any("resized" in n for n in notes)
    assert np.abs(gray - img).mean() < 10  # nearest x2 up then Lanczos down: close to the original

    Image.fromarray(255 - img).save(tmp_path / "c.jpg", quality=95)  # dark garment on white
    gray, notes = load_image(tmp_path / "c.jpg")
    assert any("inverted" in n for n in notes)
    assert np.abs(gray - img).mean() < 10


def test_class_names_beside_the_model(model_file, tmp_path):
    assert read_class_names(model_file)[9] == "Ankle boot"  # nothing stored: Fashion-MNIST names
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "best_model.keras").write_bytes(model_file.read_bytes())
    (folder / "class_names.json").write_text(json.dumps([f"c{i}" for i in range(10)]))
    assert read_class_names(folder / "best_model.keras") == [f"c{i}" for i in range(10)]


def test_predict_command_prints_top_classes(model_file, fashion, tmp_path, capsys):
    Image.fromarray(fashion.x_test[0]).save(tmp_path / "x.png")
    assert predict_command(str(model_file), [str(tmp_path / "x.png")], top=2) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("x.png") and out[1].lstrip().startswith("1. ") and out[2].lstrip().startswith("2. ")
    assert out[1].rstrip().endswith("%")


def test_errors_are_user_errors(model_file, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(UserError, match="cannot be read as an image"):
        predict_images(model_file, [str(bad)])
    with pytest.raises(UserError, match="does not exist"):
        predict_images(model_file, [str(tmp_path / "missing.png")])
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 28, 28)))
    with pytest.raises(UserError, match="shape"):
        predict_images(model_file, [str(tmp_path / "cube.npy")])
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "ok.png")
    with pytest.raises(UserError, match="model file .* does not exist"):
        predict_images(tmp_path / "nope.keras", [str(tmp_path / "ok.png")])
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(UserError, match="cannot be loaded"):
        predict_images(broken, [str(tmp_path / "ok.png")])


def test_models_are_loaded_in_safe_mode(tmp_path):
    """A model with a Lambda layer (arbitrary code) is refused, not executed."""
    import keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(x))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "ok.png")
    with pytest.raises(UserError, match="cannot be loaded"):
        predict_images(path, [str(tmp_path / "ok.png")])
