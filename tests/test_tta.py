"""fashion_tuner.tta: flip test-time augmentation, recorded by retrain-best and applied by predict."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from fashion_tuner import runs, tta


def _left_right_model():
    """Two classes scored by the left and the right half of a 4x4 image: the mirror swaps them."""
    import keras

    weights = np.zeros((16, 2), "float32")
    for r in range(4):
        weights[r * 4 + 0, 0] = weights[r * 4 + 1, 0] = 1.0
        weights[r * 4 + 2, 1] = weights[r * 4 + 3, 1] = 1.0
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax", use_bias=False)])
    model.layers[-1].set_weights([weights])
    return model


def test_flip_averages_each_image_with_its_mirror():
    model = _left_right_model()
    x = np.zeros((3, 4, 4, 1), "float32")
    x[0, :, 0] = 1.0  # bright left column: class 0 as it is, class 1 mirrored
    x[1, :, 3] = 2.0  # bright right column
    x[2] = 1.0  # symmetric
    plain = tta.predict(model, x)
    both = tta.predict(model, x, "flip")
    assert plain[0, 0] > 0.9 and plain[1, 1] > 0.9  # the halves decide without TTA
    np.testing.assert_allclose(both[:2], 0.5, atol=1e-6)  # each image and its mirror disagree exactly
    np.testing.assert_allclose(both[2], plain[2], atol=1e-6)  # a symmetric image is unchanged
    assert both.dtype == np.float64 and both.shape == (3, 2)
    with pytest.raises(ValueError, match="tta must be one of"):
        tta.predict(model, x, "rotate")
    pair = tta.views(x[:1], "flip")
    assert pair.shape == (2, 4, 4, 1) and pair[1, :, 3, 0].tolist() == [1.0] * 4  # the image, then its mirror
    assert tta.views(x[:1]).shape == (1, 4, 4, 1)


def test_recorded_reads_the_metrics_beside_the_model(tmp_path):
    model = tmp_path / "best_model.keras"
    assert tta.recorded(model) == "none"  # no metrics.json
    for content, expected in ((json.dumps({"tta": "flip"}), "flip"), (json.dumps({"tta": "rot90"}), "none"),
                              (json.dumps({"test_accuracy": 0.9}), "none"), ("{not json", "none"), ("[1]", "none")):
        (tmp_path / "metrics.json").write_text(content)
        assert tta.recorded(model) == expected, content


@pytest.mark.slow
def test_retrain_with_flip_tta_scores_and_predicts_with_the_mirror(tiny_run, tmp_path):
    import keras

    from fashion_tuner.predict import predict_images
    from fashion_tuner.retrain import retrain_best

    run_dir = tmp_path / "tiny"
    shutil.copytree(tiny_run, run_dir, ignore=shutil.ignore_patterns(runs.REPORT_DIR))
    out = retrain_best(str(run_dir), epochs=1, seed=0, tta="flip")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tta"] == "flip"
    assert metrics["model"]["views_per_image"] == 2  # one image's latency includes its mirror
    _, _, _, _, (x_te, y_te) = runs.load_run_data(runs.read_run(run_dir))
    model = keras.models.load_model(out / "best_model.keras", safe_mode=True)
    saved = np.load(out / "test_probabilities.npy")
    np.testing.assert_allclose(saved, tta.predict(model, x_te, "flip"), atol=1e-4)
    assert np.abs(saved - tta.predict(model, x_te)).max() > 1e-3  # not the plain scores
    assert metrics["test_accuracy"] == pytest.approx(float(np.mean(saved.argmax(1) == y_te)))
    assert "--tta" in (out / "report.md").read_text() and "flip" in (out / "report.md").read_text()
    paths = []
    for i in range(3):
        Image.fromarray(x_te[i, ..., 0].astype(np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    _, probs = predict_images(out / "best_model.keras", paths, top=1)
    np.testing.assert_allclose(probs, saved[:3], atol=1e-4)  # predict applies the recorded TTA


def test_bad_tta_is_one_line_and_exit_2(tmp_path):
    proc = run_cli("retrain-best", str(tmp_path / "nowhere"), "--tta", "rotate")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--tta" in lines[0] and "flip" in lines[0], proc.stderr
