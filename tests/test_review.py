"""review / list / compare on directories written by plain Keras Tuner code (no fashion_tuner search code).

The Keras Tuner projects are built once per module (about 25 s on 2 cores): Hyperband, BayesianOptimization,
RandomSearch (enough trials for the importance plot) and GridSearch, on 300 random 16-feature samples with
a one-hidden-layer Dense model and 1-2 epochs per trial.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from fashion_tuner import html_page, runs
from fashion_tuner.errors import UserError
from fashion_tuner.review import (compare_command, find_projects, list_command, load_project, read_project,
                                  review_command)
from fashion_tuner.review.summary import leaderboard

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_FEATURES = 16
# Ten batches an epoch: running them eagerly is faster than tracing each trial's new model into a graph,
# and the Keras Tuner folders it writes are the same.
RUN_EAGERLY = True


def _build(hp):
    import keras
    model = keras.Sequential([
        keras.Input((N_FEATURES,)),
        keras.layers.Dense(hp.Int("units", 4, 16, step=4), activation=hp.Choice("act", ["relu", "tanh"])),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(hp.Float("lr", 1e-3, 1e-1, sampling="log")),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"], run_eagerly=RUN_EAGERLY)
    return model


def _build_grid(hp):
    import keras
    model = keras.Sequential([
        keras.Input((N_FEATURES,)),
        keras.layers.Dense(hp.Choice("units", [4, 8]), activation=hp.Choice("act", ["relu", "tanh"])),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  run_eagerly=RUN_EAGERLY)
    return model


@pytest.fixture(scope="module")
def kt_dirs(tmp_path_factory):
    """{kind: {"path", "best_id", "best_score", "n_trials"}} for four plain Keras Tuner projects."""
    import keras_tuner as kt
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((300, N_FEATURES)).astype("float32")
    y = (x[:, 0] + 0.3 * rng.random(300) > 0.65).astype("int64")
    root = tmp_path_factory.mktemp("kt")
    common = dict(directory=str(root), overwrite=True, seed=1)
    tuners = {
        "hyperband": (kt.Hyperband(_build, objective="val_accuracy", max_epochs=3, factor=3,
                                   project_name="hyperband", **common), 2),
        "bayesian": (kt.BayesianOptimization(_build, objective="val_accuracy", max_trials=4,
                                             num_initial_points=2, project_name="bayesian", **common), 1),
        # A minimised objective with another name, and enough trials for the importance plot.
        "random": (kt.RandomSearch(_build, objective=kt.Objective("val_loss", "min"), max_trials=9,
                                   project_name="random", **common), 1),
        "grid": (kt.GridSearch(_build_grid, objective="val_accuracy", project_name="grid", **common), 1),
    }
    out = {}
    for kind, (tuner, epochs) in tuners.items():
        tuner.search(x, y, epochs=epochs, validation_split=0.3, verbose=0)
        best = tuner.oracle.get_best_trials(1)[0]
        out[kind] = {"path": root / kind, "best_id": best.trial_id, "best_score": best.score,
                     "n_trials": len(tuner.oracle.trials)}
    return out


def _assert_png(path: Path) -> None:
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 100 and img.size[1] > 100
        img.load()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hyperband", "bayesian", "random", "grid"])
def test_review_matches_keras_tuner(kt_dirs, kind, tmp_path, capsys):
    info = kt_dirs[kind]
    project = load_project(info["path"])
    assert project.tuner == kind
    assert project.best["trial_id"] == info["best_id"]
    assert project.best["score"] == pytest.approx(info["best_score"])
    assert project.objective == ("val_loss" if kind == "random" else "val_accuracy")
    assert project.direction == ("min" if kind == "random" else "max")

    assert review_command([str(info["path"])], out=str(tmp_path / "out"), top=3) == 0
    printed = capsys.readouterr().out
    assert f"tuner: {kind}" in printed and f"(trial {info['best_id']})" in printed

    out = tmp_path / "out"
    csv = pd.read_csv(out / "trials.csv", dtype={"trial_id": str})
    assert len(csv) == info["n_trials"]
    assert {"units", "act", "lr"} <= set(csv.columns) or kind == "grid"
    assert "metric:val_accuracy" in csv.columns
    best_row = csv[csv["trial_id"] == info["best_id"]].iloc[0]
    assert best_row["score"] == pytest.approx(info["best_score"])
    expected = {"history", "timeline", "hp_scores", "parallel"} | ({"hyperband"} if kind == "hyperband" else set()) \
        | ({"importance", "heatmap"} if kind == "random" else set())  # importance needs 8+ trials
    assert "curves" not in expected and "no per-epoch history" in (out / "review.html").read_text()
    assert {p.stem for p in out.glob("*.png")} == expected
    for png in out.glob("*.png"):
        _assert_png(png)
    page = (out / "review.html").read_text()
    assert page.count("data:image/png;base64,") == len(expected)
    assert "src='http" not in page and "href=" not in page  # self-contained
    if kind == "hyperband":
        assert {"bracket", "round", "initial_epoch"} <= set(csv.columns)
        assert (csv["epochs_run"] > 0).all()
        assert "too few completed trials" in page  # 6 trials < 8
    if kind == "random":
        assert "permutation importance" in page and "too few" not in page


@pytest.mark.slow
def test_review_parent_folder_default_out(kt_dirs, tmp_path, capsys):
    parent = tmp_path / "many"
    for kind in ("bayesian", "grid"):
        shutil.copytree(kt_dirs[kind]["path"], parent / "nested" / kind)
    assert [p.name for p in find_projects(parent)] == ["bayesian", "grid"]
    assert review_command([str(parent)]) == 0
    for kind in ("bayesian", "grid"):
        assert (parent / "nested" / kind / "review" / "review.html").is_file()  # each run's own review/
    # The review folder is not mistaken for a project on a second pass.
    assert [p.name for p in find_projects(parent)] == ["bayesian", "grid"]


@pytest.mark.slow
def test_truncated_trial_is_a_warning(kt_dirs, tmp_path, capsys):
    copy = tmp_path / "damaged"
    shutil.copytree(kt_dirs["bayesian"]["path"], copy)
    victim = next(p for p in sorted(copy.glob("trial_*")) if p.name[6:] != kt_dirs["bayesian"]["best_id"])
    text = (victim / "trial.json").read_text()
    (victim / "trial.json").write_text(text[: len(text) // 2])
    assert review_command([str(copy)], out=str(tmp_path / "out")) == 0
    err = capsys.readouterr().err
    assert err.count("warning: ") == 1 and "unreadable" in err and "left out" in err and victim.name in err
    csv = pd.read_csv(tmp_path / "out" / "trials.csv", dtype={"trial_id": str})
    # the one rule for an unreadable trial.json (runs.read_trials): left out, with a warning naming it
    assert len(csv) == kt_dirs["bayesian"]["n_trials"] - 1 and victim.name[6:] not in set(csv["trial_id"])
    project = read_project(copy)
    assert project.best["trial_id"] == kt_dirs["bayesian"]["best_id"] and len(project.problems) == 1


def test_missing_and_empty_paths_raise(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        review_command([str(tmp_path / "nope")])
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(UserError, match="no Keras Tuner project"):
        review_command([str(tmp_path / "empty")])
    with pytest.raises(UserError):
        review_command([str(tmp_path / "empty")], top=0)


def _trial(tid, status, score, values, val_acc=None, space=None):
    metrics = {}
    if val_acc is not None:
        metrics = {"val_accuracy": {"direction": "max", "observations": [{"value": [val_acc], "step": 0}]}}
    return {"trial_id": tid, "hyperparameters": {"space": space or [], "values": values},
            "metrics": {"metrics": metrics}, "score": score, "best_step": 0, "status": status,
            "message": "Traceback ...\nValueError: boom" if status == "FAILED" else None}


def _write_project(path: Path, trials: list[dict], oracle: bool = True) -> Path:
    space = [{"class_name": "Float", "config": {"name": "lr", "default": 0.01, "conditions": [],
                                                 "min_value": 1e-4, "max_value": 1e-1, "step": None,
                                                 "sampling": "log"}}]
    for t in trials:
        (path / f"trial_{t['trial_id']}").mkdir(parents=True)
        t["hyperparameters"]["space"] = space
        # allow_nan: Keras Tuner writes NaN scores as bare NaN tokens
        (path / f"trial_{t['trial_id']}" / "trial.json").write_text(json.dumps(t))
    if oracle:
        (path / "oracle.json").write_text(json.dumps({
            "ongoing_trials": {"tuner0": trials[-1]["trial_id"]}, "hyperparameters": {"space": space, "values": {}},
            "start_order": [t["trial_id"] for t in trials], "end_order": [], "seed": 1,
            "tried_so_far": [], "id_to_hash": {}}))
    return path


def test_damaged_project_without_keras(tmp_path, capsys):
    """Failed, NaN, running, extra-hyperparameter trials and a missing oracle.json: warnings, exit 0."""
    trials = [_trial("00", "COMPLETED", 0.7, {"lr": 0.01}, 0.7),
              _trial("01", "FAILED", None, {"lr": 0.1}),
              _trial("02", "COMPLETED", float("nan"), {"lr": 0.001}, float("nan")),
              _trial("03", "COMPLETED", 0.8, {"lr": 0.002, "dropout": 0.3}, 0.8),
              _trial("04", "RUNNING", None, {"lr": 0.05})]
    project = _write_project(tmp_path / "proj", trials)
    assert review_command([str(project)]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.strip().splitlines()
    assert all(w.startswith("warning: ") for w in warnings) and len(warnings) == 4
    for needle in ("RUNNING", "NaN", "failed", "dropout"):
        assert any(needle in w for w in warnings), needle
    assert "best: 0.8 (trial 03)" in captured.out
    assert "completed 3, failed 1, invalid 0, running 1" in captured.out
    csv = pd.read_csv(project / "review" / "trials.csv", dtype={"trial_id": str})
    assert len(csv) == 5 and "dropout" in csv.columns and csv["message"].iloc[1] == "ValueError: boom"
    for png in (project / "review").glob("*.png"):
        _assert_png(png)
    assert html_page.CSS in (project / "review" / "review.html").read_text()  # the report's page helper

    os.remove(project / "oracle.json")
    shutil.rmtree(project / "review")
    assert review_command([str(project)], out=str(tmp_path / "out2")) == 0
    err = capsys.readouterr().err
    assert "no oracle.json" in err
    assert (tmp_path / "out2" / "review.html").is_file()


def test_ranking_is_the_runs_ranking(tmp_path):
    """Completed trials with a finite score, best first, ties in start order: runs.ranked_trials, the one
    ranking of every command (an infinite score never ranks)."""
    trials = [_trial("0", "COMPLETED", 0.7, {"lr": 0.01}, 0.7), _trial("1", "COMPLETED", float("inf"), {"lr": 0.02}),
              _trial("2", "COMPLETED", 0.9, {"lr": 0.03}, 0.9), _trial("3", "COMPLETED", 0.9, {"lr": 0.04}, 0.9),
              _trial("4", "FAILED", None, {"lr": 0.05})]
    path = _write_project(tmp_path / "p", trials)
    project = read_project(path)
    stored = [json.loads((path / f"trial_{t['trial_id']}" / "trial.json").read_text()) for t in trials]
    assert project.ranking == [t["trial_id"] for t in runs.ranked_trials(stored, project.direction)] == ["2", "3", "0"]
    assert project.best["trial_id"] == "2" and list(leaderboard(project, 10)["trial_id"]) == ["2", "3", "0"]
    assert any("NaN or missing score" in p and "1" in p for p in project.problems)


def test_not_writable_goes_beside(tmp_path, monkeypatch, capsys):
    project = _write_project(tmp_path / "ro", [_trial("0", "COMPLETED", 0.5, {"lr": 0.01}, 0.5)])
    real_access = os.access
    # Permissions as a non-root user would see them (the tests may run as root, which ignores chmod).
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != project and real_access(p, mode))
    assert review_command([str(project)]) == 0
    assert (tmp_path / "ro-review" / "review.html").is_file()
    assert not (project / "review").exists()


def _make_run(results: Path, name: str, source: Path, tuner: str, test_acc: float | None) -> Path:
    run = results / name
    shutil.copytree(source, run)
    (run / "run.json").write_text(json.dumps({
        "name": name, "space": "mlp", "tuner": tuner, "objective": "val_accuracy", "direction": "max",
        "args": {"max_epochs": 3, "factor": 3, "max_trials": 9, "batch_size": 32, "seed": 1},
        "status": "finished"}))
    if test_acc is not None:
        (run / "report").mkdir()
        (run / "report" / "metrics.json").write_text(json.dumps({"test_accuracy": test_acc}))
    return run


@pytest.mark.slow
def test_list_and_compare(kt_dirs, tmp_path, capsys):
    results = tmp_path / "results"
    _make_run(results, "hb-run", kt_dirs["hyperband"]["path"], "hyperband", 0.8123)
    _make_run(results, "bo-run", kt_dirs["bayesian"]["path"], "bayesian", None)
    (results / "not-a-run").mkdir()
    assert list_command(str(results)) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 3 and "not-a-run" not in out
    hb_line = next(line for line in lines if line.startswith("hb-run"))
    assert "hyperband" in hb_line and "0.8123" in hb_line and "mlp" in hb_line
    assert f"{kt_dirs['hyperband']['best_score']:.4f}" in hb_line

    before = sorted(p.name for p in results.iterdir())
    assert compare_command(["hb-run", str(results / "bo-run")], str(results)) == 0
    out = capsys.readouterr().out
    assert "hb-run" in out and "bo-run" in out and "best score" in out and "0.8123" in out
    assert sorted(p.name for p in results.iterdir()) == before  # no --out: nothing written among the runs
    target = tmp_path / "cmp"
    assert compare_command(["hb-run", str(results / "bo-run")], str(results), out=str(target)) == 0
    capsys.readouterr()
    table = pd.read_csv(target / "compare.csv", index_col=0)
    assert list(table.columns) == ["hb-run", "bo-run"]
    assert table.loc["best trial", "hb-run"].lstrip("0") == kt_dirs["hyperband"]["best_id"].lstrip("0")
    # a Hyperband budget has no max_trials, the others no factor
    assert table.loc["budget: max_trials", "hb-run"] == "-" and table.loc["budget: factor", "bo-run"] == "-"
    _assert_png(target / "history.png")
    # compare folders are not runs
    assert list_command(str(results)) == 0
    assert "compare-" not in capsys.readouterr().out
    with pytest.raises(UserError, match="not found"):
        compare_command(["nope"], str(results))
    with pytest.raises(UserError, match="inside a run"):
        compare_command(["hb-run"], str(results), out=str(results / "hb-run" / "x"))


def test_list_missing_or_empty(tmp_path, capsys):
    assert list_command(str(tmp_path / "missing")) == 0
    assert "does not exist" in capsys.readouterr().out
    assert list_command(str(tmp_path)) == 0
    assert "no runs" in capsys.readouterr().out
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError):
        list_command(str(tmp_path / "file"))


def test_conditional_hyperparameters_are_not_problems(tiny_run, tmp_path, capsys):
    """A trial without a conditional hyperparameter (units_3 of a 2-layer MLP) is normal; one without an
    unconditional hyperparameter is reported."""
    results = tmp_path / "results"
    shutil.copytree(tiny_run, results / "tiny")
    trial_files = sorted((results / "tiny").glob("trial_*/trial.json"))
    trial = json.loads(trial_files[0].read_text())
    values = trial["hyperparameters"]["values"]
    conditional = [h["config"]["name"] for h in trial["hyperparameters"]["space"] if h["config"].get("conditions")]
    assert conditional, "the mlp space has per-layer units under a condition"
    values["hidden_layers"] = 1
    for name in conditional:
        if name != "units_1":
            values.pop(name, None)
    trial_files[0].write_text(json.dumps(trial))
    assert list_command(str(results)) == 0
    assert compare_command(["tiny"], str(results)) == 0
    assert "problem" not in capsys.readouterr().err

    values.pop("activation")  # not conditional: a trial without it is worth a warning
    trial_files[0].write_text(json.dumps(trial))
    assert list_command(str(results)) == 0
    assert "1 problem(s)" in capsys.readouterr().err


def test_review_names_the_searchs_pick_beside_the_best_score(tiny_run, tmp_path):
    """priorband keeps the space's defaults unless a trial beats them by more than the validation noise: the
    review's summary names the trial retrain-best will train, and why, under the best score (they differ here:
    the defaults' trial scores 0.1 pp under the best)."""
    from fashion_tuner.review.summary import summary_lines

    run_dir = tmp_path / "tiny"
    shutil.copytree(tiny_run, run_dir)
    assert not [ln for ln in summary_lines(read_project(run_dir)) if ln.startswith("pick")]  # random: the scores'
    best, other = (t["trial_id"] for t in runs.ranked_trials(runs.read_trials(run_dir))[:2])
    path = run_dir / f"trial_{other}" / "trial.json"
    trial = json.loads(path.read_text())
    trial["score"] = runs.trial_score(json.loads((run_dir / f"trial_{best}" / "trial.json").read_text())) - 0.001
    path.write_text(json.dumps(trial))
    oracle = json.loads((run_dir / "oracle.json").read_text())
    oracle["priorband"] = {"draws": {other: "defaults"}}  # as priorband records its trial 0
    (run_dir / "oracle.json").write_text(json.dumps(oracle))
    lines = summary_lines(read_project(run_dir))
    assert any(ln.startswith("best: ") and f"(trial {best})" in ln for ln in lines)
    pick = [ln for ln in lines if ln.startswith("pick")]
    assert len(pick) == 1 and f"trial {other}: the space's defaults" in pick[0] and "stay the pick" in pick[0]


CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parent.parent / "scripts" / "screenshot_report.py"


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="/usr/bin/chromium is not installed (apt-get install -y chromium)")
def test_review_of_a_search_renders_in_headless_chromium(tiny_run, tmp_path, capsys):
    """Our own search records every epoch: the page has learning curves and an exact timeline, every
    figure decodes in Chromium, and no figure is wider than the page's bound."""
    import subprocess
    import sys

    assert review_command([str(tiny_run)], out=str(tmp_path / "rev"), top=5) == 0
    out = tmp_path / "rev"
    assert {"curves.png", "timeline.png", "parallel.png", "history.png"} <= {p.name for p in out.glob("*.png")}
    for png in out.glob("*.png"):
        with Image.open(png) as img:
            assert img.size[0] <= 1260, (png.name, img.size)
    project = load_project(tiny_run)
    assert project.curves and all(exact for _, _, exact in project.times.values())
    shot = tmp_path / "review.png"
    proc = subprocess.run([sys.executable, str(SCREENSHOT), str(out / "review.html"), str(shot)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    n = len(list(out.glob("*.png")))
    assert f'"images": {n}, "rendered": {n}' in proc.stdout


def test_epochs_run_is_what_the_trial_logged_else_its_budget():
    """A trial the time budget stopped after 1 of its 2 Hyperband epochs counts 1, as its epochs.jsonl does;
    a plain Keras Tuner trial (no epoch log) counts its budget; a re-logged epoch (resumed fit) counts once."""
    from fashion_tuner.review.project import trials_frame

    def trial(tid, epochs_logged):
        return {"trial_id": tid, "status": "completed", "score": 0.8, "best_step": 0, "metrics": {},
                "values": {"units": 64, "tuner/epochs": 3, "tuner/initial_epoch": 1}, "message": None,
                "epochs": [{"epoch": e, "time": 1.0 + e} for e in epochs_logged]}

    frame = trials_frame([trial("a", [2]), trial("b", []), trial("c", [2, 3, 3])], {"units": {}})
    assert list(frame["epochs_run"]) == [1, 2, 2]
