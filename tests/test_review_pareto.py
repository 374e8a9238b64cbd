"""review's accuracy-against-size view (pareto.png, pareto.csv, retrain-best commands) and its disk figure.

The front rule is tested on hand-made points; one real 3-trial MLP search (600 images, 1 epoch; ~20 s, slow)
is then reviewed end to end, and a copy of the shared ``tiny_run`` without model.json and run.json stands in
for a plain Keras Tuner directory.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import search_config
from fashion_tuner.review import load_project, review_command
from fashion_tuner.review.pareto import pareto_front

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- the rule

def test_dominated_points_are_off_the_front():
    params = [100, 200, 300, 150, 400]
    scores = [0.80, 0.85, 0.90, 0.79, 0.88]  # 150 params / 0.79 is beaten by 100 / 0.80; 400 / 0.88 by 300 / 0.90
    assert pareto_front(params, scores) == [True, True, True, False, False]


def test_min_objective_prefers_lower_scores():
    params = [100, 200, 300]
    losses = [0.5, 0.4, 0.45]  # 300 params with a loss worse than 200 params: off
    assert pareto_front(params, losses, "min") == [True, True, False]
    assert pareto_front(params, losses, "max") == [True, False, False]  # the same numbers read as accuracies


def test_ties():
    # exact tie (same count, same score): both on; same count, worse score: off; same score, more params: off
    params = [100, 100, 100, 120, 50]
    scores = [0.9, 0.9, 0.8, 0.9, 0.7]
    assert pareto_front(params, scores) == [True, True, False, False, True]


def test_nan_scores_and_missing_counts_are_never_on_and_dominate_nothing():
    params = [10, 100, None, float("nan"), 200]
    scores = [math.nan, 0.8, 0.99, 0.99, 0.9]
    # trial 0 (fewest params, NaN score) and the two without counts would beat everything if they counted
    assert pareto_front(params, scores) == [False, True, False, False, True]
    assert pareto_front([None, None], [0.5, 0.6]) == [False, False]
    assert pareto_front([], []) == []
    with pytest.raises(ValueError):
        pareto_front([1, 2], [0.5])


# ----------------------------------------------------------------------------- a real search, reviewed

@pytest.fixture(scope="module")
def sized_run(data_source, tmp_path_factory) -> Path:
    """A finished 3-trial random MLP search (600 images, 1 epoch); the trials' models differ in size."""
    from fashion_tuner.search import run_search

    return run_search(search_config(data_source, tmp_path_factory.mktemp("results"), name="sized", max_trials=3,
                                    seed=3))


def _file_bytes(root: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(root) for f in files)


@pytest.mark.slow
def test_review_writes_the_front_the_plot_and_the_disk_use(sized_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(sized_run, run)
    expected_bytes = _file_bytes(run)
    assert review_command([str(run)], out=str(tmp_path / "rev"), top=5) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "rev" / "pareto.csv", dtype={"trial_id": str})
    assert list(table.columns[:4]) == ["trial_id", "parameters", "score", "on_front"]
    assert len(table) == 3 and table["parameters"].notna().all() and table["parameters"].nunique() > 1
    project = load_project(run)
    assert set(project.space) <= set(table.columns)  # the hyperparameters ride along
    front = table[table["on_front"] == 1]
    assert len(front) >= 1
    for row in front.itertuples():  # no row dominates a front row
        assert not ((table["parameters"] <= row.parameters) & (table["score"] >= row.score)
                    & ((table["parameters"] < row.parameters) | (table["score"] > row.score))).any()
    for row in table[table["on_front"] == 0].itertuples():  # and every other row is dominated by some row
        assert ((table["parameters"] <= row.parameters) & (table["score"] >= row.score)).sum() > 1
    assert front.loc[front["score"].idxmax(), "trial_id"] == project.best["trial_id"]  # the best is on it
    png = tmp_path / "rev" / "pareto.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000
    for row in front.itertuples():  # the command that retrains each front point is printed
        assert f"retrain-best {run} --max-params {row.parameters}" in out
    html = (tmp_path / "rev" / "review.html").read_text()
    assert "Pareto front" in html and f"--max-params {front['parameters'].min()}" in html
    disk_line = next(ln for ln in out.splitlines() if ln.startswith("disk: "))
    assert f"({expected_bytes:,} bytes) in the project folder" in disk_line  # the sum of every file's size
    ckpt = sum(p.stat().st_size for p in run.glob("trial_*/checkpoint.weights.h5"))
    assert ckpt > 0 and f"checkpoints {ckpt / 1e6:.1f} MB ({ckpt:,} bytes)" in disk_line
    assert html.count(f"{expected_bytes:,} bytes") == 1


def test_without_parameter_counts_review_says_so(tiny_run, tmp_path, capsys):
    run = tmp_path / "plain"
    shutil.copytree(tiny_run, run)
    for path in run.glob("trial_*/model.json"):
        path.unlink()
    (run / "run.json").unlink()  # as a plain Keras Tuner script leaves it
    assert review_command([str(run)], out=str(tmp_path / "rev"), top=5) == 0
    captured = capsys.readouterr()
    said = [ln for ln in (captured.out + captured.err).splitlines() if "parameter counts missing" in ln]
    assert len(said) == 1 and "all 2 completed trial(s)" in said[0] and said[0] in captured.out  # info, not a warning
    assert "retrain-best" not in captured.out and "Pareto front (" not in captured.out
    assert not (tmp_path / "rev" / "pareto.png").exists()
    table = pd.read_csv(tmp_path / "rev" / "pareto.csv")
    assert len(table) == 2 and table["parameters"].isna().all() and (table["on_front"] == 0).all()
    html = (tmp_path / "rev" / "review.html").read_text()
    assert "parameter counts missing for all 2 completed trial(s)" in html
    assert "disk: " in html  # the disk figure works on a plain directory too


def test_disk_usage_counts_every_checkpoint_layout(tmp_path):
    from fashion_tuner import checkpoints

    files = {"oracle.json": 10, "trial_0/trial.json": 20, "trial_0/checkpoint.weights.h5": 1000,  # Keras 3
             "trial_1/trial.json": 20, "trial_1/checkpoint": 5, "trial_1/checkpoint.index": 30,  # tf.keras
             "trial_1/checkpoint.data-00000-of-00001": 700,
             "trial_2/trial.json": 20, "trial_2/checkpoints/epoch_0/checkpoint.index": 40,  # Keras Tuner 1.0
             "trial_2/checkpoints/epoch_0/checkpoint.data-00000-of-00001": 400,
             "trial_3/trial.json": 20, "trial_3/checkpoint.deleted.json": 0}  # deleted: not a checkpoint
    for name, size in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * size)
    (tmp_path / "trial_3/checkpoint.deleted.json").write_text('{"bytes": 999}')
    usage = checkpoints.disk_usage(tmp_path)
    assert usage["bytes"] == _file_bytes(tmp_path)
    assert usage["checkpoint_bytes"] == 1000 + 5 + 30 + 700 + 40 + 400
    assert usage["checkpoints_kept"] == 3 and usage["checkpoints_deleted"] == 1 and usage["freed_bytes"] == 999
