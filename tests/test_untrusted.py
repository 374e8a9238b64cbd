"""A run folder is untrusted input (fashion_tuner.rundir, README: Reliability and safe loading): paths read
from it never lead outside it, nothing is written through a symlink, every JSON is checked before use.

The commands run in process (``cli.main``): TensorFlow is loaded once for the module."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import tree_snapshot
from fashion_tuner import cli, locks, rundir, runs
from fashion_tuner.errors import UserError
from fashion_tuner.review.tensorboard import MARKER
from test_trust import copy_run


def error_line(capsys) -> str:
    """The one line a refused command printed on stderr (no traceback)."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def surroundings(root: Path, run: Path) -> dict:
    """tree_snapshot of ``root`` without the run folder itself: what a command must leave alone."""
    return {k: v for k, v in tree_snapshot(root).items() if not (root / k).is_relative_to(run)}


def edit_json(path: Path, edit) -> None:
    payload = json.loads(path.read_text())
    edit(payload)
    path.write_text(json.dumps(payload))


# ----------------------------------------------------------------------------- the shared checks


def test_rundir_checks_paths_names_and_links(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "out").symlink_to(tmp_path)
    assert rundir.is_inside(tmp_path / "run", tmp_path / "run" / "a" / "b")
    for bad in (tmp_path / "run" / ".." / "x", Path("/etc/passwd"), tmp_path / "run" / "out" / "x"):
        assert not rundir.is_inside(tmp_path / "run", bad)
        with pytest.raises(UserError, match="leads outside"):
            rundir.inside(tmp_path / "run", bad)
    for bad in ("", ".", "..", "a/b", "../x", "/abs", ".hidden", "-x", "a" * 101, 3, None):
        assert not rundir.is_safe_component(bad)
    assert rundir.is_safe_component("0000") and rundir.is_safe_component("trial_0.v2")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(UserError, match="symbolic link"):
        rundir.open_nofollow(tmp_path / "link", os.O_RDWR | os.O_CREAT)
    assert victim.read_text() == "keep"


# ----------------------------------------------------------------------------- 1. marker lists


def test_a_tensorboard_marker_never_deletes_outside_its_folder(tiny_run, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "sent")
    board = run / runs.TENSORBOARD_DIR
    victims = [tmp_path / "home.txt", tmp_path / "linked.txt", run / "notes.txt"]
    for v in victims:
        v.write_text("mine")
    (board / "link.txt").symlink_to(victims[1])
    (tmp_path / "empty").mkdir()
    edit_json(board / MARKER, lambda m: (m["files"].extend([str(victims[0]), "../notes.txt", "link.txt",
                                                          "../../home.txt", 7]),
                                         m["sessions"].append("../../empty")))
    before = surroundings(tmp_path, board)
    assert cli.main(["review", str(run), "--tensorboard", str(board)]) == 0
    assert all(v.read_text() == "mine" for v in victims) and (tmp_path / "empty").is_dir()
    assert surroundings(tmp_path, board) == before
    assert "ignoring" in capsys.readouterr().err
    written = json.loads((board / MARKER).read_text())["files"]
    assert written and all(rundir.is_inside(board, board / f) for f in written)


# ----------------------------------------------------------------------------- 2. symlinks where we write


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(tiny_run, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "base")
    victim = tmp_path / "important.txt"
    victim.write_text("precious")
    (tmp_path / locks.LOCKS_DIR).mkdir()
    locks.lock_path(run).symlink_to(victim)
    assert cli.main(["retrain-best", str(run), "--epochs", "1"]) == 2
    assert "symbolic link" in error_line(capsys)
    assert victim.read_text() == "precious" and not (run / runs.REPORT_DIR).exists()


def test_a_symlinked_locks_folder_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / locks.LOCKS_DIR).symlink_to(elsewhere)
    with pytest.raises(UserError, match="symbolic link"):
        locks.RunLock(tmp_path / "results" / "base", "search").acquire()
    assert not any(elsewhere.iterdir())


def test_an_atomic_write_never_follows_a_planted_temporary_file(tmp_path):
    from fashion_tuner import fsio

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / f".run.json.tmp-{os.getpid()}").symlink_to(victim)
    fsio.atomic_write_text(tmp_path / "run.json", "{}")
    assert victim.read_text() == "precious" and (tmp_path / "run.json").read_text() == "{}"


# ----------------------------------------------------------------------------- 3. ids that become paths


def _escape_trial_0(run: Path, to: str) -> None:
    edit_json(run / "trial_0" / "trial.json", lambda t: t.update(trial_id=to))


def test_a_trial_id_that_leaves_the_run_is_left_out_everywhere(tiny_run, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "results" / "sent")
    _escape_trial_0(run, "0/../../../x/esc")
    assert [t["trial_id"] for t in runs.read_trials(run)] == ["1"]
    from fashion_tuner.review.project import read_project

    project = read_project(run)
    assert list(project.trials["trial_id"]) == ["1"] and any("trial_id" in p for p in project.problems)
    out = tmp_path / "board"
    before = surroundings(tmp_path, out)
    assert cli.main(["review", str(run), "--tensorboard", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["trial_1"]
    assert surroundings(tmp_path, out) == before
    assert not (tmp_path / "x").exists()
    capsys.readouterr()


def test_a_retrain_backup_folder_never_leaves_the_run(tmp_path):
    from fashion_tuner.retrain.job import RetrainJob

    job = RetrainJob(None, {}, {}, tmp_path / "run" / ".report.tmp-1", 1, 1, "train", 1, 1, None)
    assert job.backup_dir({"trial_id": "3", "hyperparameters": {"values": {}}}, "member").parent.name == "retrain_backup"
    with pytest.raises(UserError, match="not a plain name"):
        job.backup_dir({"trial_id": "0/../../../x/esc", "hyperparameters": {"values": {}}}, "member")


def test_retrain_best_writes_nothing_outside_the_run_for_an_escaping_trial_id(tiny_run, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "results" / "sent")
    for trial in ("trial_0", "trial_1"):
        edit_json(run / trial / "trial.json", lambda t: t.update(trial_id="0/../../../x/esc", score=0.99))
    before = surroundings(tmp_path, run)
    code = cli.main(["retrain-best", str(run), "--epochs", "1"])
    assert code == 2 and "no completed trial" in error_line(capsys)
    assert surroundings(tmp_path, run) == before and not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- 9. values outside the space


@pytest.mark.parametrize("name,value", [("units_0", 10 ** 9), ("dropout", 5), ("optimizer", "evil"),
                                        ("learning_rate", -0.1), ("batch_size", 0), ("not_declared", 1)])
def test_a_value_outside_the_declared_space_is_never_built(tiny_run, tmp_path, capsys, name, value):
    run = copy_run(tiny_run, tmp_path / "results" / "sent")
    for trial in ("trial_0", "trial_1"):
        edit_json(run / trial / "trial.json", lambda t: t["hyperparameters"]["values"].update({name: value}))
    assert runs.read_trials(run) == []
    assert cli.main(["retrain-best", str(run), "--epochs", "1"]) == 2
    assert "no completed trial" in error_line(capsys) and not (run / runs.REPORT_DIR).exists()


def test_a_widened_trial_space_does_not_widen_the_declared_one(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "sent")

    def widen(t):
        for entry in t["hyperparameters"]["space"]:
            if entry["config"]["name"] == "units_0":
                entry["config"]["max_value"] = 10 ** 9
        t["hyperparameters"]["values"]["units_0"] = 10 ** 9
    edit_json(run / "trial_0" / "trial.json", widen)
    assert [t["trial_id"] for t in runs.read_trials(run)] == ["1"]


# ----------------------------------------------------------------------------- 10. JSON types


def test_wrong_json_types_are_one_line_and_list_shows_the_run_as_damaged(tiny_run, tmp_path, capsys):
    results = tmp_path / "results"
    good = copy_run(tiny_run, results / "good")
    bad = copy_run(tiny_run, results / "bad")
    edit_json(bad / runs.RUN_JSON, lambda r: r["args"].update(seed="1"))
    before = tree_snapshot(results)
    assert cli.main(["retrain-best", str(bad), "--epochs", "1"]) == 2
    assert "args/seed" in error_line(capsys)
    assert cli.main(["list", "--results-dir", str(results)]) == 0
    rows = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()[1:]}
    assert "damaged" in rows["bad"] and "finished" in rows["good"]
    assert tree_snapshot(results) == before
    for edit in (lambda t: t["hyperparameters"].update(values=[1]), lambda t: t.update(metrics="x"),
                 lambda t: t.update(score="high"), lambda t: t.update(best_step=[])):
        edit_json(good / "trial_0" / "trial.json", edit)
        assert [t["trial_id"] for t in runs.read_trials(good)] == ["1"]
        assert cli.main(["list", "--results-dir", str(results)]) == 0
        shutil.copy(tiny_run / "trial_0" / "trial.json", good / "trial_0" / "trial.json")


def test_an_oracle_of_the_wrong_shape_is_refused_before_the_resume_writes(tiny_run, data_source, tmp_path, capsys):
    from conftest import search_config
    from fashion_tuner import search

    run = copy_run(tiny_run, tmp_path / "tiny")
    edit_json(run / "oracle.json", lambda o: o.update(hyperparameters=None))
    before = tree_snapshot(run)
    with pytest.raises(UserError, match="oracle.json is damaged"):
        search.run_search(search_config(data_source, tmp_path, name="tiny", max_trials=3))
    assert tree_snapshot(run) == before
    assert cli.main(["review", str(run), "--out", str(tmp_path / "rev")]) == 0
    edit_json(run / "oracle.json", lambda o: o.update(hyperparameters={"space": []}, start_order=["../../x"]))
    with pytest.raises(UserError, match="oracle.json is damaged"):
        search.run_search(search_config(data_source, tmp_path, name="tiny", max_trials=3))
    capsys.readouterr()


# ----------------------------------------------------------------------------- 8. run.json's space


@pytest.mark.slow
def test_a_space_that_is_not_the_trials_is_refused(tiny_run, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "sent")
    edit_json(run / runs.RUN_JSON, lambda r: r.update(space="cnn"))
    assert cli.main(["retrain-best", str(run), "--epochs", "1"]) == 2
    assert "declares hyperparameters trial 0 never had" in error_line(capsys)
    assert not (run / runs.REPORT_DIR).exists()
