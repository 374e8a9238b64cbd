"""fashion_tuner.report: metrics, figures and the HTML/Markdown pages, on plain arrays (no Keras)."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_tuner import html_page, report

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO / "scripts" / "screenshot_report.py"
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def fake_predictions(n: int = 500, accuracy: float = 0.8, seed: int = 0):
    """Labels, probabilities whose argmax is right about ``accuracy`` of the time, and images."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    pred = np.where(rng.random(n) < accuracy, y, rng.integers(0, 10, n))
    logits = rng.normal(size=(n, 10))
    logits[np.arange(n), pred] += 4.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    x = rng.integers(0, 256, size=(n, 28, 28, 1)).astype(np.float32)
    return y, probs, x


def decodes(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        img.load()
        return img.size


def test_confusion_and_accuracy_agree():
    y, probs, _ = fake_predictions()
    m = report.evaluate_probs(y, probs, NAMES)
    cm = np.asarray(m["confusion_matrix"])
    assert cm.sum() == len(y) == m["n_test"]
    assert m["test_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert m["test_accuracy"] == pytest.approx((probs.argmax(1) == y).mean())
    assert cm[3].sum() == (y == 3).sum()  # rows are true classes


def test_accuracy_interval_is_wilson_and_named_in_the_tables(tmp_path):
    from fashion_tuner import stats

    y, probs, _ = fake_predictions(n=800)
    pred = probs.argmax(1)
    m = report.evaluate_probs(y, probs, NAMES)
    lo, hi = m["test_accuracy_ci95"]
    assert (lo, hi) == stats.wilson_interval(int((pred == y).sum()), len(y))  # the one method, exact arithmetic
    assert lo < m["test_accuracy"] < hi
    # Four times the data: about half the width (binomial standard error ~ 1/sqrt(n)).
    y4, probs4, _ = fake_predictions(n=3200)
    lo4, hi4 = report.evaluate_probs(y4, probs4, NAMES)["test_accuracy_ci95"]
    assert 0.4 * (hi - lo) < (hi4 - lo4) < 0.6 * (hi - lo)
    row = report.summary_row("m", m)
    assert "test_accuracy 95% CI (Wilson)" in row and "test_accuracy_ci95" not in row
    assert np.isnan(report.accuracy_ci(np.array([], dtype=int), np.array([], dtype=int))).all()  # no images: no claim


def test_cross_entropy_matches_definition():
    y = np.array([0, 1])
    probs = np.array([[0.5, 0.5], [0.1, 0.9]])
    assert report.cross_entropy(y, probs) == pytest.approx(-(np.log(0.5) + np.log(0.9)) / 2)


def test_most_confused_pairs_are_largest_off_diagonal_cells():
    cm = np.diag([50] * 10)
    cm[6, 0] = 30  # Shirt -> T-shirt
    cm[2, 4] = 20  # Pullover -> Coat
    cm[9, 7] = 10  # Ankle boot -> Sneaker
    cm[4, 2] = 5
    pairs = report.most_confused_pairs(cm, NAMES)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("Shirt", "T-shirt/top", 30), ("Pullover", "Coat", 20), ("Ankle boot", "Sneaker", 10)]
    assert pairs[0]["fraction_of_true"] == pytest.approx(30 / 80)
    assert report.most_confused_pairs(np.diag([5] * 10), NAMES) == []  # no mistakes, no pairs


def test_classification_table_has_classes_and_averages():
    y, probs, _ = fake_predictions()
    text, table = report.classification_table(y, probs.argmax(1), NAMES)
    assert list(table.columns) == report.REPORT_CSV_COLUMNS
    assert list(table["class"]) == NAMES + ["macro avg", "weighted avg"]
    assert table["support"].iloc[:10].sum() == len(y)
    assert "Ankle boot" in text and "macro avg" in text


def test_best_epoch_follows_val_accuracy():
    assert report.best_epoch({"loss": [3, 2, 1, 0.5], "val_accuracy": [0.5, 0.7, 0.6, 0.65]}) == 1
    assert report.best_epoch({"loss": [3, 2, 1]}) == 2  # no validation: the last epoch
    assert report.best_epoch({"val_accuracy": [float("nan"), 0.4, 0.3]}) == 1


def test_leaderboard_keeps_completed_trials_best_first():
    trials = [
        {"trial_id": "0", "status": "COMPLETED", "score": 0.7, "best_step": 1,
         "hyperparameters": {"values": {"units": 64, "tuner/epochs": 3, "tuner/initial_epoch": 1,
                                        "tuner/trial_id": "x"}}},
        {"trial_id": "1", "status": "FAILED", "score": None, "hyperparameters": {"values": {"units": 8}}},
        {"trial_id": "2", "status": "COMPLETED", "score": 0.9, "best_step": 0,
         "hyperparameters": {"values": {"units": 128}}},
    ]
    rows = report.leaderboard_rows(trials, "max")
    assert [r["trial_id"] for r in rows] == ["2", "0"]
    assert rows[1]["epoch_budget"] == 3 and rows[1]["continues"] == "x" and "tuner/trial_id" not in rows[1]
    # 1-based and counted from the start of training: the continuation's best_step 1 follows 1 parent epoch
    assert rows[0]["best_epoch"] == 1 and rows[1]["best_epoch"] == 3
    trials[0]["hyperparameters"]["values"]["units"] = 128  # the same in every row: says nothing, left out
    assert "units" not in report.leaderboard_rows(trials, "max")[0]
    assert [r["trial_id"] for r in report.leaderboard_rows(trials, "min")] == ["0", "2"]


def test_figures_and_tables_are_written(tmp_path):
    y, probs, x = fake_predictions()
    history = {"loss": [2.0, 1.0, 0.8], "accuracy": [0.5, 0.7, 0.8], "val_loss": [1.5, 1.1, 1.2],
               "val_accuracy": [0.6, 0.75, 0.7]}
    m = report.write_model_figures(tmp_path, history=history, best=report.best_epoch(history), x_test=x,
                                   y_test=y, probs=probs, class_names=NAMES, title="m")
    for name in report.FIGURES:
        w, h = decodes(tmp_path / name)
        assert w > 200 and h > 200
    table = pd.read_csv(tmp_path / "classification_report.csv")
    assert list(table.columns) == report.REPORT_CSV_COLUMNS and len(table) == 12
    assert table.loc[table["class"] == "macro avg", "f1-score"].item() == pytest.approx(m["macro_f1"])
    assert "precision" in (tmp_path / "classification_report.txt").read_text()


def test_misclassified_picks_the_most_confident_mistakes():
    y = np.array([0, 1, 2, 3])
    probs = np.full((4, 10), 0.01)
    probs[0, 5], probs[1, 1], probs[2, 7], probs[3, 8] = 0.6, 0.9, 0.9, 0.3
    probs /= probs.sum(axis=1, keepdims=True)
    assert list(report.confident_mistakes(y, probs, 10)) == [2, 0, 3]  # 1 is right


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    """A report folder with one model's figures, report.html and report.md; returns report.html."""
    tmp_path = tmp_path_factory.mktemp("pages")
    y, probs, x = fake_predictions()
    history = {"loss": [2.0, 1.0], "accuracy": [0.5, 0.7], "val_loss": [1.5, 1.1], "val_accuracy": [0.6, 0.75]}
    m = report.write_model_figures(tmp_path, history=history, best=1, x_test=x, y_test=y, probs=probs,
                                   class_names=NAMES, title="m")
    trials = [{"trial_id": "0", "status": "COMPLETED", "score": 0.8, "best_step": 1,
               "hyperparameters": {"values": {"units": 64}}}]
    report.write_report_pages(tmp_path, title="report <test>", run={"name": "r", "space": "mlp<&>"},
                              leaderboard=report.leaderboard_rows(trials), summary=[report.summary_row("m", m)],
                              sections=[{"name": "Best", "subdir": "", "hyperparameters": {"units": 64},
                                         "metrics": m}])
    return tmp_path / "report.html"


def test_html_is_self_contained_and_escaped(pages):
    tmp_path = pages.parent
    page = pages.read_text()
    srcs = re.findall(r"<img src='([^']+)'", page)
    assert len(srcs) == len(report.FIGURES)
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mlp&lt;&amp;&gt;" in page and "mlp<&>" not in page  # run manifest is escaped
    assert html_page.CSS in page  # one page helper for the report and the review
    assert "Search leaderboard" in page and "Ankle boot" in page and "95% CI (Wilson)" in page
    md = (tmp_path / "report.md").read_text()
    assert "](confusion_matrix.png)" in md and "| macro avg |" in md


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="/usr/bin/chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(pages, tmp_path):
    html_path = pages
    out = tmp_path / "shot.png"
    proc = subprocess.run([sys.executable, str(SCREENSHOT), str(html_path), str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f'"images": {len(report.FIGURES)}, "rendered": {len(report.FIGURES)}' in proc.stdout
    assert decodes(out) == (1200, 3000)


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.is_file(), reason="/usr/bin/chromium is not installed (apt-get install -y chromium)")
def test_screenshot_script_detects_a_broken_image(pages, tmp_path):
    page = tmp_path / "broken.html"
    good = report.png_data_uri(pages.parent / "confusion_matrix.png")
    page.write_text(f"<html><body><h1>x</h1><img src='{good}'><img src='data:image/png;base64,AAAA'></body></html>")
    proc = subprocess.run([sys.executable, str(SCREENSHOT), str(page), str(tmp_path / "s.png")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "only 1 of 2 images rendered" in proc.stderr
