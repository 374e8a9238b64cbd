"""fashion_tuner.retrain.race: the search's pick against the space's defaults at the retrain's fidelity."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from fashion_tuner import runs
from fashion_tuner.cli import build_parser
from fashion_tuner.retrain import race
from fashion_tuner.retrain.race import RACE_CHOICES

REPO = Path(__file__).resolve().parents[1]
SLOW_DEFAULT_SPACE = REPO / "tests" / "spaces" / "slow_default_space.py"


def trial(tid: str, values: dict, score: float) -> dict:
    """A trial.json dict of a real Keras Tuner space (conditional: sgd_rate only under sgd)."""
    import keras_tuner as kt

    hp = kt.HyperParameters()
    hp.Choice("optimizer", ["adam", "sgd"], default="adam")
    with hp.conditional_scope("optimizer", ["sgd"]):
        hp.Float("sgd_rate", 1e-3, 1e-1, sampling="log", default=0.01)
    hp.Float("dropout", 0.0, 0.5, default=0.25)
    hp.values = {**values, "tuner/epochs": 2}
    return {"trial_id": tid, "score": score, "status": "COMPLETED", "hyperparameters": hp.get_config()}


DEFAULTS = {"optimizer": "adam", "dropout": 0.25}
PICK = {"optimizer": "sgd", "sgd_rate": 0.05, "dropout": 0.1}


def test_defaults_are_read_from_the_stored_space_active_values_only():
    assert race.defaults_config(trial("3", PICK, 0.9)) == DEFAULTS  # sgd_rate is inactive under the default adam
    assert race.same_config({"a": 0.1 + 0.2, "b": "x"}, {"a": 0.3, "b": "x"})
    assert not race.same_config({"a": 0.3}, {"a": 0.31})
    assert not race.same_config({"a": 1}, {"a": 1, "b": 2})
    assert not race.same_config({"a": True}, {"a": 1.0})


def test_a_name_declared_only_on_another_path_does_not_hide_the_defaults_trial():
    """A space that declares ``extra`` in a Python ``if`` (not a conditional scope): the defaults' trial never
    had it, a later trial registered it in the stored space."""
    import keras_tuner as kt

    def stored(tid: str, values: dict, score: float) -> dict:
        hp = kt.HyperParameters()
        hp.Choice("optimizer", ["adam", "sgd"], default="adam")
        hp.Float("dropout", 0.0, 0.5, default=0.25)
        hp.Int("extra", 1, 4, default=2)
        hp.values = dict(values)
        return {"trial_id": tid, "score": score, "status": "COMPLETED", "hyperparameters": hp.get_config()}

    pick, defaults = stored("2", {"optimizer": "sgd", "dropout": 0.25, "extra": 3}, 0.9), stored("0", DEFAULTS, 0.8)
    assert race.defaults_config(pick) == {**DEFAULTS, "extra": 2}
    rival, why = race.opponent("auto", pick, [pick, defaults], train_on="full", top_k=1, distilling=False,
                               budgeted=False, cv=False)
    assert rival is defaults and why is None
    assert race.is_defaults(DEFAULTS, {**DEFAULTS, "extra": 2})
    assert not race.is_defaults({**DEFAULTS, "extra": 3}, {**DEFAULTS, "extra": 2})
    assert not race.is_defaults({**DEFAULTS, "unknown": 1}, DEFAULTS) and not race.is_defaults({}, DEFAULTS)


def test_opponent_is_the_defaults_trial_when_the_pick_differs():
    pick, other, defaults = trial("3", PICK, 0.9), trial("1", {**DEFAULTS, "dropout": 0.4}, 0.8), trial("0", DEFAULTS, 0.7)
    done = [pick, other, defaults]
    common = dict(train_on="full", top_k=1, distilling=False, budgeted=False, cv=False)
    rival, why = race.opponent("auto", pick, done, **common)
    assert rival is defaults and why is None
    assert race.opponent("off", pick, done, **common) == (None, None)
    assert race.opponent("auto", defaults, done, **common) == (None, None)  # the pick is the defaults
    rival, why = race.opponent("auto", pick, [pick, other], **common)  # the defaults' trial failed or was filtered
    assert rival is None and "no completed trial" in why
    for change, text in [(dict(train_on="train+val"), "train+val"), (dict(top_k=2), "--top-k"),
                         (dict(budgeted=True), "--time-budget"), (dict(cv=True), "--cv")]:
        rival, why = race.opponent("auto", pick, done, **{**common, **change})
        assert rival is None and text in why and "trial 0" in why
    assert race.opponent("on", pick, done, **{**common, "budgeted": True, "cv": True})[0] is defaults
    assert race.opponent("on", pick, done, **{**common, "train_on": "train+val"})[0] is None


def history(curve: list[float]) -> dict:
    return {"loss": [1.0] * len(curve), "val_accuracy": curve}


def test_the_higher_best_validation_wins_and_a_tie_keeps_the_defaults():
    pick, defaults = trial("7", PICK, 0.9), trial("0", DEFAULTS, 0.8)
    # the pick leads early and stalls; the defaults climb to their last epoch (measured at seeds 11 and 16)
    record = race.outcome({"pick": (pick, history([0.90, 0.93, 0.932, 0.931]), 10.0),
                           "defaults": (defaults, history([0.85, 0.91, 0.93, 0.936]), 12.0)}, 6000)
    assert (record["winner"], record["loser"]) == ("defaults", "pick")
    assert record["pick"]["best_epoch"] == 3 and record["defaults"]["best_epoch"] == 4
    assert record["pick_minus_defaults_val_pp"] == pytest.approx(-0.4)
    assert "within the validation noise" in record["note"]  # 0.4 pp on 6,000 images at 0.936: noise 0.45 pp
    record = race.outcome({"pick": (pick, history([0.80, 0.95]), 1.0), "defaults": (defaults, history([0.9]), 1.0)}, 6000)
    assert record["winner"] == "pick" and "within" not in record["note"]
    tie = race.outcome({"pick": (pick, history([0.9]), 1.0), "defaults": (defaults, history([0.9]), 1.0)}, 6000)
    assert tie["winner"] == "defaults"
    nan = race.outcome({"pick": (pick, history([float("nan")]), 1.0), "defaults": (defaults, history([0.1]), 1.0)}, 600)
    assert nan["winner"] == "defaults" and nan["pick"]["val_accuracy"] is None and "no validation score" in nan["note"]
    json.dumps(nan, allow_nan=False)  # metrics.json stays strict JSON
    both = race.outcome({"pick": (pick, history([0.2]), 1.0), "defaults": (defaults, history([float("nan")]), 1.0)}, 600)
    assert both["winner"] == "pick" and both["pick_minus_defaults_val_pp"] is None


def test_cli_offers_the_race_choices():
    args = build_parser().parse_args(["retrain-best", "somerun"])
    assert args.race == race.DEFAULT_RACE
    action = next(a for a in build_parser()._subparsers._group_actions[0].choices["retrain-best"]._actions
                  if a.dest == "race")
    assert tuple(action.choices) == RACE_CHOICES


@pytest.fixture(scope="module")
def slow_default_run(data_source, tmp_path_factory) -> Path:
    """A real 2-trial random search of a space whose defaults cannot learn: trial 1 is the pick."""
    results = tmp_path_factory.mktemp("race")
    result = run_cli("search", "--space", str(SLOW_DEFAULT_SPACE), "--tuner", "random", "--max-trials", "2",
                     "--max-epochs", "1", "--subset", "1000", "--batch-size", "64", "--seed", "1", "--results-dir",
                     str(results), "--name", "slow-default", "--no-tensorboard", "--data-dir", str(data_source["dir"]),
                     *(["--skip-md5"] if data_source["skip_md5"] else []))
    assert result.returncode == 0, result.stderr
    assert "the pick is not the space's defaults: retrain-best trains both" in result.stdout + result.stderr
    run_dir = results / "slow-default"
    ranked = runs.ranked_trials(runs.read_trials(run_dir), "max")
    assert [t["hyperparameters"]["values"]["learning_rate"] for t in ranked] == [1e-2, 1e-7]
    return run_dir


@pytest.mark.slow
def test_retrain_races_the_pick_and_tests_only_the_winner(slow_default_run, tmp_path):
    run_dir = Path(shutil.copytree(slow_default_run, tmp_path / "run"))
    result = run_cli("retrain-best", str(run_dir), "--space", str(SLOW_DEFAULT_SPACE), "--epochs", "2")
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    assert "[race 1/2] training trial 1 (the search's pick)" in said
    assert "[race 2/2] training trial 0 (the space's defaults)" in said
    assert said.count("evaluating trial") == 1  # the test split is scored once, by the winner
    report = run_dir / runs.REPORT_DIR
    metrics = json.loads((report / "metrics.json").read_text())
    record = metrics["race"]
    assert record["winner"] == "pick" and metrics["trial_id"] == record["pick"]["trial_id"] == "1"
    assert record["pick"]["val_accuracy"] > record["defaults"]["val_accuracy"] + 0.2  # 1e-7 learns nothing
    assert record["validation_images"] == len(np.load(run_dir / runs.SPLIT_FILE)["val_idx"])
    assert metrics["hyperparameters"]["learning_rate"] == pytest.approx(1e-2)
    loser = report / race.RACE_DIR / "defaults"
    assert sorted(p.name for p in loser.iterdir()) == ["history.csv", "hyperparameters.json"]  # no model, no test
    assert json.loads((loser / "hyperparameters.json").read_text())["learning_rate"] == pytest.approx(1e-7)
    assert "won and is the report's model" in html.unescape((report / "report.html").read_text())

    off = run_cli("retrain-best", str(run_dir), "--space", str(SLOW_DEFAULT_SPACE), "--epochs", "1", "--race", "off")
    assert off.returncode == 0, off.stderr
    metrics = json.loads((report / "metrics.json").read_text())
    assert "race" not in metrics and metrics["trial_id"] == "1" and not (report / race.RACE_DIR).exists()
    said = off.stdout + off.stderr
    assert "[1/1] training trial 1" in said and "[race" not in said and "defaults" not in said


def test_bad_race_value_is_one_line(tmp_path):
    result = run_cli("retrain-best", str(tmp_path), "--race", "sometimes")
    assert result.returncode == 2 and "--race" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_race_on_races_within_a_time_budget_planning_two_models(slow_default_run, tmp_path):
    """(Under auto a time budget skips the race: test_opponent_is_the_defaults_trial_when_the_pick_differs.)"""
    run_dir = Path(shutil.copytree(slow_default_run, tmp_path / "run"))
    common = ["retrain-best", str(run_dir), "--space", str(SLOW_DEFAULT_SPACE), "--epochs", "2", "--time-budget", "2m"]
    on = run_cli(*common, "--race", "on")
    assert on.returncode == 0, on.stderr
    metrics = json.loads((run_dir / runs.REPORT_DIR / "metrics.json").read_text())
    assert metrics["race"]["winner"] == "pick" and metrics["time_budget"]["models"] == 2
