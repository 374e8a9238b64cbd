"""Readable search output: tables that fit the terminal, Hyperband continuations marked, no optimizer warning."""

import json
import warnings

import numpy as np
import pytest

from conftest import run_cli
from fashion_tuner import search, tables


def test_fit_table_shows_what_differs_and_turns_sideways_when_too_wide():
    rows = [{"trial": "0003", "score": "0.9", "a": 1, "b": "relu", "c": 0.5},
            {"trial": "0001", "score": "0.8", "a": 1, "b": "elu", "c": float("nan")}]
    assert tables.differing(rows, ["a", "b", "c"]) == ["b", "c"]
    text, _ = tables.fit_table(rows, ["trial", "score"], ["b", "c"], width=80)
    assert len(text.splitlines()) == 3 and text.splitlines()[2].split() == ["0001", "0.8", "elu", "-"]
    wide = [dict(r, **{f"hyperparameter_{i}": i * 1.5 + j for i in range(30)}) for j, r in enumerate(rows)]
    names = [f"hyperparameter_{i}" for i in range(30)]
    text, _ = tables.fit_table(wide, ["trial", "score"], names, width=60)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 60 and len(lines) == 32  # one line per column, every value shown
    assert lines[0].split() == ["trial", "0003", "0001"]


def test_values_print_as_a_user_writes_them():
    assert [tables.fmt(v) for v in (256.0, 0.001, True, None, float("nan"), "adam")] == \
        ["256", "0.001", "True", "-", "-", "adam"]
    summary = tables.short_summary({"units_0": 512.0, "activation": "gelu", "dropout": 0.35}, 40)
    assert summary.startswith("units_0=512, activation=gelu") and summary.endswith("(+1 more)")
    assert tables.short_summary({}, 30) == "the space's defaults"


def test_hyperband_continuations_are_one_row():
    rows = [{"trial_id": "0003", "parent": "0000"}, {"trial_id": "0005", "parent": None},
            {"trial_id": "0000", "parent": None}, {"trial_id": "0007", "parent": "0003"}]
    assert [r["trial_id"] for r in tables.one_per_configuration(rows)] == ["0003", "0005"]


def test_top_table_collapses_a_lineage_and_counts_epochs_from_the_start():
    completed = [
        {"trial_id": "0003", "score": 0.9, "best_step": 1, "parent": "0000",
         "hyperparameters": {"units": 64, "act": "relu", "tuner/initial_epoch": 2, "tuner/trial_id": "0000"}},
        {"trial_id": "0000", "score": 0.8, "best_step": 1, "parent": None,
         "hyperparameters": {"units": 64, "act": "relu"}},
        {"trial_id": "0001", "score": 0.7, "best_step": 0, "parent": None,
         "hyperparameters": {"units": 128, "act": "relu"}},
    ]
    lines = search.top_table(completed, {"units": 64, "act": "relu"}, width=100).splitlines()
    assert lines[0].split() == ["trial", "val_accuracy", "epoch", "continues", "units"]
    assert lines[1].split() == ["0003", "0.9000", "4", "0000", "64"]  # best of epochs 3-4 after 2 of 0000
    assert lines[2].split()[0] == "0001" and len(lines) == 4  # 0000 is 0003's lineage; act is the same
    assert "the same in every row" in lines[3]


def test_restored_checkpoint_carries_the_optimizer_state(tmp_path):
    """The cause of Hyperband's "Skipping variable loading for optimizer" warning, fixed: the moments and
    step count of the parent trial load into the continuation's optimizer."""
    import keras

    def build():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8), dtype=np.float32), rng.integers(0, 2, 64)
    parent = build()
    parent.fit(x, y, batch_size=16, epochs=1, verbose=0)
    child = build()
    search.build_optimizer(child)
    parent.save_weights(tmp_path / "parent.weights.h5")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        child.load_weights(tmp_path / "parent.weights.h5")
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    assert int(child.optimizer.iterations.numpy()) == 4  # 64 images / 16 per step
    for a, b in zip(parent.optimizer.variables, child.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_hyperband_search_output_is_readable(data_args, tmp_path):
    """A 6-trial Hyperband search (two continuations): no UserWarning, continuations marked, lines fit."""
    result = run_cli("search", "--space", "mlp", "--tuner", "hyperband", "--max-epochs", "3", "--subset", "600",
                     "--results-dir", str(tmp_path), "--name", "hb", "--trials-per-process", "0", *data_args,
                     env={"COLUMNS": "120"})
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "UserWarning" not in output and "Skipping variable loading" not in output
    progress = [ln for ln in result.stdout.splitlines() if ln.startswith("[")]
    assert len(progress) == 6 and all(len(ln) <= 120 for ln in progress), progress
    continued = [ln for ln in progress if "continues trial" in ln]
    assert continued and "(epochs 1->3)" in continued[0]
    assert "the space's defaults" in progress[0]  # the first trial is the defaults
    table = result.stdout.split("Top 5 trials", 1)[1].split("best val_accuracy", 1)[0].splitlines()[1:]
    assert max(len(ln) for ln in table) <= 120
    if table[0].split()[1:2] == ["val_accuracy"]:  # one line per trial
        shown = [ln.split()[0] for ln in table[1:] if ln.split() and ln.split()[0].isdigit()]
    else:  # sideways: one column per trial
        shown = table[0].split()[1:]
    trials = {t["trial_id"]: t for t in (json.loads(p.read_text()) for p in (tmp_path / "hb").glob("trial_*/trial.json"))}
    parents = {trials[i]["hyperparameters"]["values"].get("tuner/trial_id") for i in shown} - {None}
    assert parents and not parents & set(shown)  # a continuation stands for its parent: no duplicate row
    assert any("continues" in ln for ln in table)
