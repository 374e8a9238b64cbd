"""K-fold cross-validation: the fold splitter, `search --cv`, its review columns, resume rules, and
`retrain-best --cv`, on real (small) data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import run_cli, search_config
from fashion_tuner import cv, runs, splits
from fashion_tuner.errors import UserError


def _pool(fashion, seed=1, k=3, subset=900):
    split = splits.make_split(fashion.y_train, fashion.y_test, subset=subset, seed=seed)
    return split, cv.make_folds(split, fashion.y_train, fashion.y_test, k, seed, subset=subset)


def test_folds_are_stratified_disjoint_cover_the_pool_and_repeat_per_seed(fashion):
    split, folds = _pool(fashion)
    assert folds.fold.size == 900 and folds.k == 3
    assert np.isin(folds.train_idx, split.train_idx).all() and np.isin(folds.val_idx, split.val_idx).all()
    labels = np.concatenate([fashion.y_train[folds.train_idx], fashion.y_test[folds.val_idx]])
    parts = folds.splits()
    vals = [set(v.tolist()) for _, v in parts]
    assert sum(len(v) for v in vals) == 900 and set().union(*vals) == set(range(900))  # disjoint, cover all
    for train, val in parts:
        assert not set(train.tolist()) & set(val.tolist()) and train.size + val.size == 900
    # stratified: each class is split as evenly as it can be (counts differ by at most 1 between folds)
    counts = np.array([[np.sum(labels[v] == c) for c in range(10)] for _, v in parts])
    assert (counts.max(axis=0) - counts.min(axis=0)).max() <= 1
    # the pooled arrays line up with the recorded labels
    (x_tr, y_tr), (x_val, y_val), _ = splits.apply_split(fashion.x_train, fashion.y_train, fashion.x_test,
                                                          fashion.y_test, split)
    _, y_pool = cv.pool_arrays(folds, (x_tr, y_tr), (x_val, y_val), split)
    assert np.array_equal(y_pool, labels)
    again = _pool(fashion)[1]
    assert np.array_equal(again.fold, folds.fold) and np.array_equal(again.val_idx, folds.val_idx)
    other = _pool(fashion, seed=2)[1]
    assert not (np.array_equal(other.val_idx, folds.val_idx) and np.array_equal(other.fold, folds.fold))


def test_too_many_folds_or_too_few_are_refused():
    with pytest.raises(UserError, match="at least 2"):
        cv.check_k(1)
    y = np.repeat(np.arange(10), 3)
    with pytest.raises(UserError, match="only 3 image"):
        cv.fold_ids(y, 4, seed=0)
    assert sorted(np.bincount(cv.fold_ids(y, 3, seed=0)).tolist()) == [10, 10, 10]


@pytest.fixture(scope="module")
def cv_run(data_source, tmp_path_factory):
    """A finished 2-trial random search with --cv 3 (600 pooled images, 1 epoch)."""
    from fashion_tuner.search import run_search

    return run_search(search_config(data_source, tmp_path_factory.mktemp("cv"), name="cv3", cv=3))


@pytest.mark.slow
def test_search_cv_records_each_fold_and_scores_their_mean(cv_run):
    run = runs.read_run(cv_run)
    assert run["args"]["cv"] == 3 and run["cv"]["k"] == 3 and run["cv"]["pool"] == 600
    saved = cv.load_folds(cv_run / cv.CV_FILE)
    assert saved.k == 3 and saved.fold.size == 600
    trials = [t for t in runs.read_trials(cv_run) if t["status"] == "COMPLETED"]
    assert len(trials) == 2
    for t in trials:
        metrics = t["metrics"]["metrics"]
        folds = [metrics[f"fold_{i}"]["observations"][0]["value"][0] for i in (1, 2, 3)]
        assert all(0.2 < f <= 1.0 for f in folds)  # 10 classes: chance is 0.1
        assert t["score"] == pytest.approx(np.mean(folds), abs=1e-6)
        assert metrics["cv_sd"]["observations"][0]["value"][0] == pytest.approx(np.std(folds, ddof=1), abs=1e-6)


@pytest.mark.slow
def test_review_shows_fold_columns(cv_run, tmp_path):
    from fashion_tuner.review.page import write_review
    from fashion_tuner.review.project import read_project
    from fashion_tuner.review.summary import leaderboard

    project = read_project(cv_run)
    board = leaderboard(project, 5)
    assert [c for c in board.columns if c.startswith("fold_") or c == "cv_sd"] == ["fold_1", "fold_2", "fold_3",
                                                                                   "cv_sd"]
    write_review(project, tmp_path)
    header = (tmp_path / "trials.csv").read_text().splitlines()[0].split(",")
    assert {"fold_1", "fold_2", "fold_3", "cv_sd"} <= set(header)
    row = project.trials.iloc[0]
    assert row["score"] == pytest.approx(np.mean([row["fold_1"], row["fold_2"], row["fold_3"]]), abs=1e-6)


@pytest.mark.slow
def test_resume_with_another_k_is_refused(cv_run, data_args):
    before = (cv_run / "oracle.json").read_text()
    for flags in (["--cv", "2"], []):
        res = run_cli("search", "--space", "mlp", "--tuner", "random", "--max-trials", "2", "--max-epochs", "1",
                      "--subset", "600", "--seed", "1", "--batch-size", "64", "--results-dir", str(cv_run.parent),
                      "--name", "cv3", *flags, *data_args)
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip().count("\n") == 0 and "cv 3 -> " in res.stderr
    assert (cv_run / "oracle.json").read_text() == before


def test_bad_k_is_one_line(tmp_path, data_args):
    res = run_cli("search", "--cv", "1", "--results-dir", str(tmp_path), *data_args)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "--cv" in res.stderr
    res = run_cli("search", "--space", "mlp", "--subset", "30", "--cv", "5", "--results-dir", str(tmp_path),
                  "--trials-per-process", "0", *data_args)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0 and "fewer than the 5 folds" in res.stderr
    assert not any(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.slow
def test_retrain_best_cv_reports_mean_and_sd(cv_run, tmp_path):
    from fashion_tuner.retrain import RetrainConfig, run_retrain

    run_dir = tmp_path / "cv3"
    shutil.copytree(cv_run, run_dir)
    out = run_retrain(RetrainConfig(run=str(run_dir), epochs=1, cv=2))
    metrics = json.loads((out / "metrics.json").read_text())
    record = metrics["cross_validation"]
    scores = [f["val_accuracy"] for f in record["folds"]]
    assert record["k"] == 2 and len(scores) == 2 and all(0.2 < s <= 1.0 for s in scores)
    assert record["mean"] == pytest.approx(np.mean(scores)) and record["sd"] == pytest.approx(np.std(scores, ddof=1))
    assert sum(f["n_val"] for f in record["folds"]) == record["pool_size"] == 600  # the final model's training images
    assert "test_accuracy" in metrics  # the single held-out figure, beside it
    assert "K-fold val accuracy (mean ± sd)" in (out / "report.html").read_text()
