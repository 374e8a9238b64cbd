"""A run folder is untrusted input (fashion_tuner.rundir, README: Reliability and safe loading): paths read
from it never lead outside it, nothing is written through a symlink, every JSON is checked before use.

The commands run in process (``cli.main``): TensorFlow is loaded once for the module."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import strategies as st

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


def _resume(data_source, tmp_path, **overrides):
    from conftest import search_config
    from fashion_tuner import search

    return search.run_search(search_config(data_source, tmp_path, name="tiny", **overrides))


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


def test_a_space_that_is_not_the_trials_is_refused(tiny_run, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "sent")
    edit_json(run / runs.RUN_JSON, lambda r: r.update(space="cnn"))
    assert cli.main(["retrain-best", str(run), "--epochs", "1"]) == 2
    assert "declares hyperparameters trial 0 never had" in error_line(capsys)
    assert not (run / runs.REPORT_DIR).exists()




# ----------------------------------------------------------------------------- 4, 5. --overwrite


def test_overwrite_keeps_user_files_that_merely_look_like_ours(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "tiny")
    mine = ["trial_notes.txt", "tuner_ideas.json", "paper.tmp", "report.txt", "trial_link"]
    for name in mine[:-1]:
        (run / name).write_text("mine")
    (run / "trial_link").symlink_to(tmp_path)
    delete, keep = runs.overwrite_plan(run)
    assert sorted(p.name for p in keep) == sorted(mine)
    assert {p.name for p in delete} >= {"run.json", "trial_0", "trial_1", "tuner0.json", "split.npz", "tensorboard"}


def test_a_killed_overwrite_is_finished_by_the_same_command(tiny_run, data_source, tmp_path, monkeypatch):
    from fashion_tuner.search import engine

    run = copy_run(tiny_run, tmp_path / "tiny")
    (run / "notes.txt").write_text("mine")
    real_rmtree = shutil.rmtree

    def killed(path, *args, **kwargs):  # the first folder: run.json and the other files are gone already
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        _resume(data_source, tmp_path, seed=2, overwrite=True)
    monkeypatch.setattr(engine.shutil, "rmtree", real_rmtree)
    assert not (run / runs.RUN_JSON).exists() and (run / "notes.txt").exists()
    with pytest.raises(UserError, match="rerun with --overwrite to finish it"):
        _resume(data_source, tmp_path, seed=2)
    _resume(data_source, tmp_path, seed=2, overwrite=True)
    assert runs.read_run(run)["args"]["seed"] == 2 and (run / "notes.txt").read_text() == "mine"
    assert not (run / runs.OVERWRITE_MARKER).exists() and len(runs.read_trials(run)) == 2



# ----------------------------------------------------------------------------- 11. output folders


def test_review_and_compare_out_never_overwrite_or_delete_a_users_files(tiny_run, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("trials.csv", "importance.png", "compare.csv"):
        (mine / name).write_text("mine")
    before = tree_snapshot(mine)
    assert cli.main(["review", str(tiny_run), "--out", str(mine)]) == 2
    assert "did not write" in error_line(capsys)
    assert cli.main(["compare", str(tiny_run), "--out", str(mine)]) == 2
    assert "did not write" in error_line(capsys)
    assert tree_snapshot(mine) == before
    ours = tmp_path / "ours"
    for _ in range(2):  # a folder this tool wrote is rewritten
        assert cli.main(["review", str(tiny_run), "--out", str(ours)]) == 0
    (ours / "notes.txt").write_text("mine")
    assert cli.main(["review", str(tiny_run), "--out", str(ours)]) == 2 and "notes.txt" in error_line(capsys)
    from fashion_tuner import outdir

    listed = outdir.listed(ours)
    assert "review.html" in listed and listed == {p.name for p in ours.iterdir()} - {outdir.MARKER, "notes.txt"}


# ----------------------------------------------------------------------------- 6. identity by content


def test_an_edited_class_weight_file_is_refused_on_resume(tiny_run, data_source, tmp_path):
    run = copy_run(tiny_run, tmp_path / "tiny")
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({"Shirt": 2.0}))
    edit_json(run / runs.RUN_JSON, lambda r: (r["args"].update(class_weight=str(weights)),
                                              r.update(class_weight={str(i): 2.0 if i == 6 else 1.0 for i in range(10)})))
    weights.write_text(json.dumps({"Shirt": 3.0}))
    before = tree_snapshot(run)
    with pytest.raises(UserError, match="now gives other weights"):
        _resume(data_source, tmp_path, class_weight=str(weights))
    assert tree_snapshot(run) == before


def test_an_edited_space_file_is_refused_on_resume(tiny_run, data_source, tmp_path):
    from fashion_tuner import spaces

    space = tmp_path / "my_space.py"
    space.write_text("from search_spaces.mlp import build_model  # noqa: F401\n")
    run = copy_run(tiny_run, tmp_path / "tiny")
    edit_json(run / runs.RUN_JSON, lambda r: (r.update(space=spaces.space_reference(str(space)),
                                                       space_sha256=spaces.space_digest(str(space))),
                                              r["args"].update(space=str(space))))
    space.write_text(space.read_text() + "# edited\n")
    before = tree_snapshot(run)
    with pytest.raises(UserError, match="has changed since"):
        _resume(data_source, tmp_path, space=str(space))
    assert tree_snapshot(run) == before


def test_a_swapped_split_is_refused(tiny_run, data_source, tmp_path, capsys):
    import numpy as np

    from fashion_tuner import fsio

    run = copy_run(tiny_run, tmp_path / "tiny")
    assert runs.read_run(run)["split"]["sha256"] == runs.file_digest(run / runs.SPLIT_FILE)
    with np.load(run / runs.SPLIT_FILE) as f:
        arrays = dict(f)
    arrays["val_idx"], arrays["test_idx"] = arrays["test_idx"], arrays["val_idx"]
    fsio.atomic_savez(run / runs.SPLIT_FILE, **arrays)
    before = tree_snapshot(run)
    assert cli.main(["retrain-best", str(run), "--epochs", "1"]) == 2
    assert "not the split this run was searched with" in error_line(capsys)
    with pytest.raises(UserError, match="not the split this run"):
        _resume(data_source, tmp_path)
    assert tree_snapshot(run) == before


# ----------------------------------------------------------------------------- 7. retrain-best on a full disk


def test_retrain_best_checks_free_space_on_the_runs_own_disk(tiny_run, tmp_path, capsys, monkeypatch):
    run = copy_run(tiny_run, tmp_path / "tiny")
    monkeypatch.setenv("FASHION_TUNER_MIN_FREE_MB", str(10 ** 12))  # more than any disk has
    assert cli.main(["retrain-best", str(run), "--epochs", "1"]) == 2
    line = error_line(capsys)
    assert "no space left on the disk holding" in line and str(run) in line
    assert not (run / runs.REPORT_DIR).exists() and not list(run.glob(".report.*"))


def test_an_epoch_backup_stops_with_one_line_before_the_disk_is_full(tmp_path, monkeypatch):
    from fashion_tuner import backup, fsio
    from fashion_tuner.devices import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    monkeypatch.setenv("FASHION_TUNER_MIN_FREE_MB", str(10 ** 12))
    with backup.attached(model, backup.FitSlots(tmp_path / "backup")):
        with pytest.raises(fsio.DiskFull, match=f"disk holding {tmp_path}"):
            model.fit(np.zeros((8, 4)), np.zeros((8, 2)), epochs=2, verbose=0)
    assert not (tmp_path / "backup").exists() or not list((tmp_path / "backup").rglob("*.h5"))


# ----------------------------------------------------------------------------- 12. the low ones


def test_a_npy_whose_header_claims_too_much_is_one_line(tmp_path):
    from fashion_tuner import predict

    path = tmp_path / "huge.npy"
    with open(path, "wb") as fh:
        import numpy as np

        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (200000, 200000)})
        fh.write(b"\0" * 100)
    with pytest.raises(UserError, match="header claims"):
        predict.load_image(path)
    with pytest.raises(UserError, match="is a folder"):
        predict.load_image(tmp_path)


def test_a_gzip_bomb_is_refused_before_it_is_unpacked_whole(tmp_path):
    import gzip

    from fashion_tuner import data as data_mod

    bomb = tmp_path / "bomb.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as fh:
        chunk = b"\0" * 10 ** 6
        for _ in range(data_mod.MAX_IDX_BYTES // 10 ** 6 + 2):
            fh.write(chunk)
    with pytest.raises(UserError, match="unpacks to more than"):
        data_mod.read_gzip(bomb)


def test_disk_use_does_not_follow_a_trial_symlink(tiny_run, tmp_path):
    from fashion_tuner import checkpoints

    run = copy_run(tiny_run, tmp_path / "tiny")
    before = checkpoints.disk_usage(run)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "checkpoint.weights.h5").write_bytes(b"x" * 10 ** 6)
    (run / "trial_9").symlink_to(elsewhere)
    assert checkpoints.disk_usage(run) == before


def test_an_empty_run_name_is_refused(tmp_path, capsys, data_args):
    assert cli.main(["search", "--space", "mlp", "--tuner", "random", "--max-trials", "1", "--max-epochs", "1",
                     "--subset", "300", "--results-dir", str(tmp_path), "--name", "", *data_args]) == 2
    assert "run name '' is not allowed" in error_line(capsys)
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- fuzz: any run folder is data
# Hypothesis mutates a copy of the tiny run (JSON values and types, paths, symlinks, truncations, deletions)
# and runs the commands in process. FASHION_TUNER_FUZZ_EXAMPLES sets the number of cases (CI: a few, fixed).

FUZZ_EXAMPLES = int(os.environ.get("FASHION_TUNER_FUZZ_EXAMPLES", "0")) or None
OUTSIDE = "{outside}"  # replaced by the path of a file outside the run when a mutation is applied
_PATHS = [OUTSIDE, "../../outside.txt", "/", "..", "0/../../../x/esc", "", "trial_0", "..\\x", "a" * 300]
_LEAF = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
         | st.sampled_from(_PATHS + [10 ** 9, -1, 0, 1e308, float("nan"), float("inf")]))
JSON_VALUES = st.recursive(_LEAF, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids,
                                                                                          max_size=3), max_leaves=5)


def _settings(default: int):
    from hypothesis import HealthCheck, Phase, settings

    # no shrinking: each case runs real commands (seconds); the failing case is printed as it was drawn
    return settings(max_examples=FUZZ_EXAMPLES or default, deadline=None, derandomize=FUZZ_EXAMPLES is None,
                    database=None, suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])


def _json_paths(value, prefix=()):
    """Every key path into a parsed JSON value, the root included."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _json_paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _json_paths(v, prefix + (i,))


def _set(root, path, value, delete=False):
    if not path:
        return value
    node = root
    for part in path[:-1]:
        node = node[part]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return root


def _substitute(value, outside: Path):
    if value == OUTSIDE:
        return str(outside)
    if isinstance(value, list):
        return [_substitute(v, outside) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, outside) for k, v in value.items()}
    return value


@st.composite
def mutations(draw, files: list[str]):
    """A list of (kind, file, details) edits to a run folder whose files (relative paths) are ``files``."""
    def one():
        kind = draw(st.sampled_from(["json", "json", "json", "whole", "truncate", "symlink", "delete", "lock"]))
        json_files = [f for f in files if f.endswith(".json")]
        target = draw(st.sampled_from(json_files if kind in ("json", "whole") else files + ["trial_9", "review",
                                                                                          "trial_0", "tensorboard"]))
        if kind == "json":
            return kind, target, (draw(st.integers(0, 10 ** 6)), draw(JSON_VALUES), draw(st.booleans()))
        if kind == "whole":
            return kind, target, draw(JSON_VALUES)
        if kind == "truncate":
            return kind, target, draw(st.floats(0, 1))
        return kind, target, draw(st.sampled_from(["file", "dir", "root"]))
    return [one() for _ in range(draw(st.integers(1, 3)))]


def _apply(run: Path, base: Path, edits) -> None:
    outside, outside_dir = base / "outside.txt", base / "outside_dir"
    links = {"file": outside, "dir": outside_dir, "root": base}
    for kind, name, detail in edits:
        path = run / name
        if kind in ("json", "whole"):
            if not path.is_file() or path.is_symlink():
                continue
            try:
                payload = json.loads(path.read_text())
            except ValueError:
                continue
            if kind == "json":
                index, value, delete = detail
                paths = list(_json_paths(payload))
                where = paths[index % len(paths)]
                payload = _set(payload, where, _substitute(value, outside), delete and bool(where))
            else:
                payload = _substitute(detail, outside)
            path.write_text(json.dumps(payload))
        elif kind == "truncate" and path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            path.write_bytes(data[:int(len(data) * detail)])
        elif kind in ("symlink", "delete"):
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
            if kind == "symlink":
                path.symlink_to(links[detail])
        elif kind == "lock":
            (run.parent / locks.LOCKS_DIR).mkdir(exist_ok=True)
            if not locks.lock_path(run).is_symlink():
                locks.lock_path(run).symlink_to(links[detail])


def _fingerprint(base: Path, skip: list[Path]) -> dict:
    """{relative path: content digest or link target} of everything under ``base`` but ``skip``, links not followed."""
    import hashlib

    out = {}
    for folder, dirs, files in os.walk(base, followlinks=False):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d not in skip]
        for name in files + [d for d in dirs if (here / d).is_symlink()]:
            p = here / name
            key = str(p.relative_to(base))
            out[key] = "-> " + os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
        out[str(here.relative_to(base)) + "/"] = "dir"
    return out


def _run_cli(args: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(args)
    return code, err.getvalue()


def _fuzz_case(tiny_run: Path, edits, commands) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "outside.txt").write_text("the user's file")
        (base / "outside_dir").mkdir()
        (base / "outside_dir" / "keep.txt").write_text("the user's folder")
        run = copy_run(tiny_run, base / "results" / "sent")
        _apply(run, base, edits)
        before = _fingerprint(base, [run])
        for args in commands(run, base):
            code, err = _run_cli(args)
            assert "Traceback" not in err and "internal error" not in err, (args, edits, err[-3000:])
            assert code in (0, 2), (args, edits, code, err[-3000:])
            if code == 2:
                assert len([ln for ln in err.splitlines() if ln.startswith("error: ")]) == 1, (args, edits, err)
            assert _fingerprint(base, [run]) == before, (args, edits)


def _files_of(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in rundir.walk_files(run))


def test_fuzz_list_and_tensorboard_never_touch_anything_outside_the_run(tiny_run):
    from hypothesis import given

    def commands(run, base):  # a tenth of a second each: many cases
        return [["list", "--results-dir", str(run.parent)],
                ["review", str(run), "--tensorboard", str(run / runs.TENSORBOARD_DIR)]]

    @_settings(default=30)
    @given(mutations(_files_of(tiny_run)))
    def case(edits):
        _fuzz_case(tiny_run, edits, commands)

    case()


@pytest.mark.slow
def test_fuzz_review_never_touches_anything_outside_the_run(tiny_run):
    from hypothesis import given

    def commands(run, base):  # about 3 s each (the plots)
        return [["review", str(run)]]

    @_settings(default=8)
    @given(mutations(_files_of(tiny_run)))
    def case(edits):
        _fuzz_case(tiny_run, edits, commands)

    case()


@pytest.mark.slow
def test_fuzz_retrain_best_never_touches_anything_outside_the_run(tiny_run, data_source):
    from hypothesis import given

    data = ["--data-dir", str(data_source["dir"])]

    def commands(run, base):
        return [["retrain-best", str(run), "--epochs", "1", *data]]

    @_settings(default=2)
    @given(mutations(_files_of(tiny_run)))
    def case(edits):
        _fuzz_case(tiny_run, edits, commands)

    case()
