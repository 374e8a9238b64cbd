"""benchmarks/search_value.py: picks, reference fits, delta_ref and the merge of seeds (the long runs are a
benchmark; here the parts run on tiny data)."""

from __future__ import annotations

import json

import pytest

from benchmarks import search_value as sv


def test_delta_ref_is_paired_by_seed_in_percentage_points():
    ref = {"defaults": {"42": 0.88, "7": 0.87}, "priorband": {"42": 0.885, "7": 0.869, "123": 0.9},
           "random": {"42": None, "7": 0.85}}
    out = sv.delta_summary(ref)
    assert out["defaults"]["median_pp"] == 0.0
    assert out["priorband"]["delta_ref"] == {"42": 0.5, "7": -0.1}  # seed 123 has no defaults figure: left out
    assert out["priorband"]["median_pp"] == pytest.approx(0.2) and out["priorband"]["min_pp"] == -0.1
    assert out["random"]["delta_ref"] == {"7": -2.0} and out["random"]["seeds"] == 1


def test_merge_keeps_earlier_seeds_and_arms_of_the_same_figure_only():
    def figure(seeds, arm, acc, budget=900):
        return {"suite": "full", "budget_s": budget, "subset": 10000, "max_epochs": 6, "ref_epochs": 10,
                "train_seeds": 2, "space": "cnn", "seeds": seeds, "curves": {arm: {str(s): [[10.0, acc]] for s in seeds}},
                "runs": {arm: {str(s): {} for s in seeds}}, "picks": {arm: {str(s): {} for s in seeds}},
                "reference": {arm: {str(s): acc for s in seeds}}}

    old = sv.merge(None, figure([42], "defaults", 0.88))
    new = sv.merge(old, figure([42, 7], "priorband", 0.89))
    assert new["seeds"] == [7, 42] and new["reference"]["defaults"] == {"42": 0.88}
    assert new["delta"]["priorband"]["delta_ref"] == {"42": pytest.approx(1.0)}
    # a pick that is the defaults, rerun without the defaults arm: their reference of the earlier run counts
    rerun = sv.merge(new, {**figure([42], "priorband", 0.89), "reference": {"priorband": {"42": sv.SAME_AS_DEFAULTS}}})
    assert rerun["delta"]["priorband"]["delta_ref"] == {"42": 0.0}
    other = sv.merge(old, figure([7], "priorband", 0.89, budget=60))  # another budget: replaces
    assert "defaults" not in other["reference"]
    # a later run of an arm without trial 0 (random, optuna) keeps the defaults' values and hand-added records
    knobs = {"learning_rate": 1e-3, "augment": True}
    known = sv.merge(None, {**figure([42], "priorband", 0.89), "defaults_values": {"42": knobs}})
    known["race"] = {"seeds": {"42": "kept"}}
    later = sv.merge(known, {**figure([42], "random", 0.87), "defaults_values": {"42": None},
                             "picks": {"random": {"42": {"learning_rate": 2e-3, "augment": True}}}})
    assert later["defaults_values"]["42"] == knobs and later["race"] == {"seeds": {"42": "kept"}}
    assert later["changed"]["random"] == {"42": 1} and later["reference"]["priorband"] == {"42": 0.89}


def test_the_table_shows_delta_ref_trials_and_how_far_each_pick_moved_from_the_defaults():
    from benchmarks.render_extra import search_value_lines

    defaults = {"learning_rate": 1e-3, "batch_size": 64, "augment": True}
    entry = sv.merge(None, {
        "suite": "full", "budget_s": 900, "subset": 10000, "max_epochs": 6, "ref_epochs": 10, "train_seeds": 2,
        "space": "cnn", "seeds": [11, 12], "rerun": "python -m benchmarks.run --suite full --only search_value",
        "defaults_values": {"11": defaults, "12": defaults},
        "picks": {"defaults": {"11": None, "12": None},
                  "priorband": {"11": dict(defaults), "12": dict(defaults, learning_rate=2e-3, augment=False)}},
        "reference": {"defaults": {"11": 0.90, "12": 0.89}, "priorband": {"11": 0.90, "12": 0.893}},
        "runs": {"defaults": {"11": {"trials_completed": 23}, "12": {"trials_completed": 22}},
                 "priorband": {"11": {"trials_completed": 18}, "12": {"trials_completed": 17}}},
        "curves": {}})
    assert entry["changed"]["priorband"] == {"11": 0, "12": 2}
    text = "\n".join(search_value_lines({"search_value": entry}))
    row = next(ln for ln in text.splitlines() if ln.startswith("| priorband"))
    assert "11: +0.00, 12: +0.30" in row and "| 18, 17 |" in row and "0 (the defaults), 2" in row
    assert "--only search_value --seeds 11 12 --approaches priorband`" in row  # each arm's own seeds, rerunnable
    assert sv.changed_knobs(None, defaults) is None and sv.changed_knobs(defaults, None) is None


def test_pick_of_reads_ours_best_trial_and_a_peers_best_line(tmp_path):
    run = tmp_path / "run"
    for tid, score, lr in (("0000", 0.8, 1e-3), ("0001", 0.85, 2e-3)):
        (run / f"trial_{tid}").mkdir(parents=True)
        (run / f"trial_{tid}" / "trial.json").write_text(json.dumps({
            "status": "COMPLETED", "score": score,
            "hyperparameters": {"values": {"learning_rate": lr, "tuner/epochs": 2}}}))
    assert sv.pick_of("priorband", run, tmp_path / "none") == {"learning_rate": 2e-3}
    (run / "best_hyperparameters.json").write_text(json.dumps({"learning_rate": 5e-3, "tuner/round": 1}))
    assert sv.pick_of("hyperband", run, tmp_path / "none") == {"learning_rate": 5e-3}
    progress = tmp_path / "p.jsonl"
    progress.write_text("\n".join(json.dumps(ln) for ln in (
        {"time": 1, "score": 0.7, "hyperparameters": {"units": 64}},
        {"time": 2, "score": 0.9, "hyperparameters": {"units": 128}}, {"time": 3, "score": 0.95})) + "\n{cut")
    assert sv.pick_of("random", run, progress) == {"units": 128}
    assert sv.pick_of("defaults", run, progress) is None


def test_arm_commands_give_each_arm_the_same_split_and_budget():
    p = sv.SETTINGS["full"]
    commands = {arm: sv.arm_command(arm, "cnn", 7, p, "work", "p.jsonl", []) for arm in sv.ARMS}
    for arm, argv in commands.items():
        text = " ".join(argv)
        assert "--subset 10000" in text and "--seed 7" in text, arm
    assert "--tuner priorband" in " ".join(commands["priorband"]) and "--time-budget 900s" in " ".join(commands["priorband"])
    assert "--tuner hyperband" in " ".join(commands["hyperband"])
    # the sampler is measured whatever the machine's pace: a slow machine must not end its search after the defaults
    assert "--small-budget search" in " ".join(commands["priorband"])
    assert commands["defaults"][:4] == ["python", "-m", "benchmarks.search_value", "staircase"]
    # each variant names its own run folders (--overwrite must never reach another variant's run)
    names = {v: sv.arm_command("priorband", "cnn", 7, p, "work", "p.jsonl", [], variant=v) for v in sv.VARIANTS}
    names = {v: argv[argv.index("--name") + 1] for v, argv in names.items()}
    assert names["search_value"] == "sv-priorband-s7" and len(set(names.values())) == len(sv.VARIANTS)


@pytest.mark.slow
def test_reference_fit_trains_a_pick_and_the_bad_defaults_space_is_worse(data_source):
    """One epoch on 600 images: the mlp defaults learn (well above chance); the cnn space with poor defaults
    registers them (SGD at 0.002), and a pick overrides them."""
    p = {"subset": 600, "val_size": 0.05, "ref_epochs": 1}
    good = sv.reference_fit("mlp", None, 42, 1, p, str(data_source["dir"]), data_source["skip_md5"])
    assert good["val_accuracy"] > 0.4 and good["epoch_s"] > 0
    # the defaults' active values come back, so an arm whose pick is the defaults reuses their fit
    assert sv.is_defaults(dict(good["values"], **{"tuner/epochs": 3}), good["values"])
    changed = next(iter(good["values"]))
    assert not sv.is_defaults(dict(good["values"], **{changed: "other"}), good["values"])
    assert not sv.is_defaults(None, good["values"]) and not sv.is_defaults(good["values"], None)
    import keras_tuner as kt

    from benchmarks.spaces import cnn_bad_defaults
    from fashion_tuner import spaces

    hp = kt.HyperParameters()
    with spaces.using_data_context(spaces.DataContext()):
        cnn_bad_defaults.build_model(hp)
    assert hp.values["optimizer"] == "sgd" and hp.values["sgd_learning_rate"] == cnn_bad_defaults.BAD_SGD_LEARNING_RATE
    assert "learning_rate" not in hp.values  # Adam's rate is inactive under SGD, as in the cnn space
