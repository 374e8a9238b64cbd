"""search --keep-checkpoints (fashion_tuner.checkpoints), the disk record, per-trial model size and
retrain-best --max-params, on real runs."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import run_cli, search_config

STATE = {"max_epochs": 9, "factor": 3, "ongoing_trials": {}, "retry_queue": []}


def _trial(tid, status="COMPLETED", score=0.5, parent=None):
    values = {"units": 8} if parent is None else {"units": 8, "tuner/trial_id": parent}
    return {"trial_id": tid, "status": status, "score": score, "hyperparameters": {"values": values}}


def test_needed_keeps_what_hyperband_and_resume_may_load():
    from fashion_tuner.checkpoints import needed

    # bracket 2 of max_epochs 9 / factor 3: rounds of 9, 3 and 1 trials; round 1 holds 1 of its 3 so far
    state = dict(STATE, brackets=[{"bracket_num": 2, "rounds": [[{"id": f"{i:02d}"} for i in range(9)],
                                                                 [{"id": "09", "past_id": "03"}], []]}],
                 ongoing_trials={"tuner0": "09"})
    trials = [_trial(f"{i:02d}") for i in range(9)] + [_trial("09", "RUNNING", None, parent="03")]
    why = needed(state, trials)
    assert all(f"{i:02d}" in why for i in range(9))  # round 1 not full: any of round 0 may be continued
    assert why["09"] == "unfinished trial"
    # round 1 full, round 2 full: the bracket is done and nothing of it is needed any more
    done = dict(STATE, brackets=[{"bracket_num": 2, "rounds": [[{"id": f"{i:02d}"} for i in range(9)],
                                                                [{"id": x} for x in ("09", "10", "11")],
                                                                [{"id": "12"}]]}])
    assert needed(done, [_trial(f"{i:02d}") for i in range(13)]) == {}
    # an unfinished continuation keeps its parent even when the round that chose it is full
    cont = dict(STATE, brackets=[], retry_queue=["10"])
    assert needed(cont, [_trial("03"), _trial("10", "RUNNING", None, parent="03")]) == {
        "10": "unfinished trial", "03": "parent of unfinished trial 10"}


@pytest.mark.slow
def test_hyperband_search_prunes_checkpoints_and_records_disk(data_source, tmp_path):
    from fashion_tuner import modelsize, runs
    from fashion_tuner.search import run_search

    run_dir = run_search(search_config(data_source, tmp_path, tuner="hyperband", max_epochs=3, factor=3,
                                       name="hb", keep_checkpoints=1))
    trials = runs.read_trials(run_dir)
    assert len(trials) >= 4 and all(t["status"] == "COMPLETED" for t in trials)  # continuations found their parents
    assert any((t["hyperparameters"]["values"].get("tuner/trial_id")) for t in trials)
    best = runs.ranked_trials(trials)[0]["trial_id"]
    kept = sorted(p.parent.name for p in run_dir.glob("trial_*/checkpoint.weights.h5"))
    assert kept == [f"trial_{best}"]
    assert len(list(run_dir.glob("trial_*/checkpoint.deleted.json"))) == len(trials) - 1
    disk = json.loads((run_dir / "run.json").read_text())["disk"]
    assert disk["checkpoints_kept"] == 1 and disk["checkpoints_deleted"] == len(trials) - 1
    assert disk["freed_bytes"] > 0 and disk["bytes"] > disk["checkpoint_bytes"] > 0
    for t in trials:  # every trial's size recorded, and a real count (the default MLP has ~200K weights)
        assert modelsize.parameters(run_dir / f"trial_{t['trial_id']}") > 1000


def test_default_keeps_the_best_checkpoint_and_all_keeps_every_one(tiny_run, data_source, tmp_path):
    from fashion_tuner import runs
    from fashion_tuner.search import run_search

    best = runs.ranked_trials(runs.read_trials(tiny_run))[0]["trial_id"]  # tiny_run: 2 trials, the default (keep 1)
    assert [p.parent.name for p in tiny_run.glob("trial_*/checkpoint.weights.h5")] == [f"trial_{best}"]
    run_dir = run_search(search_config(data_source, tmp_path, name="all", keep_checkpoints=None))
    assert len(list(run_dir.glob("trial_*/checkpoint.weights.h5"))) == 2
    assert json.loads((run_dir / "run.json").read_text())["disk"]["checkpoints_deleted"] == 0


def test_keep_checkpoints_flag_is_checked_before_tensorflow(data_args, tmp_path):
    proc = run_cli("search", "--keep-checkpoints", "-1", "--results-dir", str(tmp_path), *data_args, timeout=60)
    assert proc.returncode == 2 and "--keep-checkpoints" in proc.stderr and "Traceback" not in proc.stderr


def test_retrain_max_params_picks_the_best_trial_under_the_cap(tiny_run, tmp_path):
    from fashion_tuner import modelsize, runs

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    ranked = runs.ranked_trials(runs.read_trials(run))
    sizes = {t["trial_id"]: modelsize.parameters(run / f"trial_{t['trial_id']}") for t in ranked}
    assert all(n for n in sizes.values())
    smallest = min(sizes.values())
    proc = run_cli("retrain-best", str(run), "--max-params", str(smallest - 1), "--epochs", "1")
    assert proc.returncode == 2 and "no completed trial" in proc.stderr and "Traceback" not in proc.stderr
    assert not (run / "report").exists()
    cap = smallest if sizes[ranked[0]["trial_id"]] != smallest else max(sizes.values())
    proc = run_cli("retrain-best", str(run), "--max-params", str(cap), "--epochs", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = next(t for t in ranked if sizes[t["trial_id"]] <= cap)
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert metrics["trial_id"] == expected["trial_id"]
    assert metrics["model"]["parameters"] == sizes[expected["trial_id"]]  # recorded size == the retrained model's
