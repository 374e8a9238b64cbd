"""Trust (README: Reliability): --overwrite deletes only runs, a run directory is data, one writer
per run, a resume never mixes data or settings, full disks, damaged files, signals."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_cli, search_config, tree_snapshot, write_idx
from fashion_tuner import data as data_mod
from fashion_tuner import fsio, kt_compat, locks, runs, search
from fashion_tuner.errors import UserError

SPACES = Path(__file__).parent / "spaces"


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(runs.REPORT_DIR))
    return dst


def tiny_args(results: Path, name: str, data_args: list[str], *extra: str) -> list[str]:
    """The CLI form of conftest.search_config (the tiny run's own arguments)."""
    return ["search", "--space", "mlp", "--tuner", "random", "--max-trials", "2", "--max-epochs", "1",
            "--subset", "600", "--seed", "1", "--batch-size", "64", "--results-dir", str(results), "--name", name,
            "--trials-per-process", "0", *data_args, *extra]


def one_error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return lines[0]


def trials_of(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(run_dir.glob("trial_*/trial.json"))]


# ----------------------------------------------------------------------------- 1. --overwrite


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, data_args):
    docs = tmp_path / "Documents"
    docs.mkdir()
    (docs / "f").write_text("hi")
    result = run_cli(*tiny_args(tmp_path, "Documents", data_args, "--overwrite"))
    assert result.returncode == 2
    assert "not a fashion_tuner run" in one_error_line(result)
    assert (docs / "f").read_text() == "hi" and sorted(p.name for p in tmp_path.iterdir()) == ["Documents"]


def test_overwrite_deletes_only_what_the_run_wrote_and_says_so(tiny_run, data_source, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "tiny")
    (run / "notes.txt").write_text("mine")
    old_split = (run / runs.SPLIT_FILE).read_bytes()
    search.run_search(search_config(data_source, tmp_path, name="tiny", seed=2, overwrite=True))
    out = capsys.readouterr().out
    assert "--overwrite: deleting run" in out and "trial_0" in out and "keeping" in out and "notes.txt" in out
    assert "optuna.journal" not in out.split("keeping", 1)[1].splitlines()[0]  # the run's own file: deleted
    assert (run / "notes.txt").read_text() == "mine"
    assert runs.read_run(run)["args"]["seed"] == 2 and (run / runs.SPLIT_FILE).read_bytes() != old_split
    assert len(trials_of(run)) == 2


# ----------------------------------------------------------------------------- 2. code in a run directory


def _plant_space(run: Path, marker: Path) -> Path:
    """A space file inside the run that leaves ``marker`` when imported; run.json points at it (relative)."""
    evil = run / "evil.py"
    evil.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                    "from search_spaces.mlp import build_model  # noqa: F401\n")
    manifest = json.loads((run / runs.RUN_JSON).read_text())
    manifest["space"] = "evil.py"
    (run / runs.RUN_JSON).write_text(json.dumps(manifest))
    return evil


def test_retrain_never_runs_code_named_by_the_run_directory(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "sent")
    marker = tmp_path / "marker"
    _plant_space(run, marker)
    for cwd in (REPO, run):  # a relative path must not resolve against the current directory either
        result = run_cli("retrain-best", str(run), "--epochs", "1", cwd=cwd)
        assert result.returncode == 2
        assert "--space PATH" in one_error_line(result)
        assert not marker.exists()
    manifest = json.loads((run / runs.RUN_JSON).read_text())
    manifest["space"] = str(run / "evil.py")  # an absolute path: the same
    (run / runs.RUN_JSON).write_text(json.dumps(manifest))
    result = run_cli("retrain-best", str(run), "--epochs", "1")
    assert result.returncode == 2 and not marker.exists()


@pytest.mark.slow
def test_retrain_runs_a_space_file_the_user_names(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "mine")
    marker = tmp_path / "marker"
    evil = _plant_space(run, marker)
    result = run_cli("retrain-best", str(run), "--epochs", "1", "--space", str(evil))
    assert result.returncode == 0, result.stderr[-2000:]
    assert marker.read_text() == "ran" and (run / "report" / "metrics.json").is_file()
    builtin = run_cli("retrain-best", str(copy_run(tiny_run, tmp_path / "b")), "--space", str(evil))
    assert builtin.returncode == 2 and "built-in space mlp" in one_error_line(builtin)


# ----------------------------------------------------------------------------- 3. one writer per run


def test_a_second_writer_is_refused_naming_the_holder(tiny_run, tmp_path, data_args):
    run = copy_run(tiny_run, tmp_path / "busy")
    before = tree_snapshot(run)
    with locks.RunLock(run, "search"):
        for args in (tiny_args(tmp_path, "busy", data_args), tiny_args(tmp_path, "busy", data_args, "--overwrite"),
                     ["retrain-best", str(run)]):
            result = run_cli(*args)
            assert result.returncode == 2
            line = one_error_line(result)
            assert "in use by pid" in line and f"pid {os.getpid()} (search)" in line
    assert tree_snapshot(run) == before
    assert not locks.lock_path(run).exists()  # released: the lock file goes with it


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    run = tmp_path / "r"
    code = (f"import sys, time; sys.path.insert(0, {str(REPO)!r}); from fashion_tuner.locks import RunLock; "
            f"RunLock({str(run)!r}, 'search').acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(UserError, match=f"in use by pid {holder.pid}"):
        locks.RunLock(run, "retrain-best").acquire()
    holder.kill()
    holder.wait()
    assert locks.lock_path(run).exists()  # what a pid file would leave: the kernel released the lock anyway
    with locks.RunLock(run, "search") as lock:
        assert lock.fd is not None


def test_a_child_shares_its_parents_lock_but_not_another_runs(tmp_path, monkeypatch):
    with locks.RunLock(tmp_path / "a", "search") as parent:
        monkeypatch.setenv(locks.LOCK_FD_ENV, str(parent.fd))
        with locks.RunLock(tmp_path / "a", "search") as child:
            assert child.inherited
        assert locks.lock_path(tmp_path / "a").exists()  # the child left its parent's lock alone
        with locks.RunLock(tmp_path / "b", "search") as other:  # the variable names another run's lock
            assert not other.inherited


# ----------------------------------------------------------------------------- 4-5. resume identity


def _other_data(fashion, directory: Path) -> Path:
    """The test data with one training image changed: other files, same shapes."""
    directory.mkdir()
    files = data_mod.FILES["fashion_mnist"]
    x = fashion.x_train.copy()
    x[0] = 255 - x[0]
    write_idx(directory / files["train_images"][0], x)
    write_idx(directory / files["train_labels"][0], fashion.y_train.astype(np.uint8))
    write_idx(directory / files["test_images"][0], fashion.x_test)
    write_idx(directory / files["test_labels"][0], fashion.y_test.astype(np.uint8))
    return directory


def test_resume_on_other_data_is_refused(tiny_run, fashion, tmp_path):
    run = copy_run(tiny_run, tmp_path / "tiny")
    before = tree_snapshot(run)
    other = _other_data(fashion, tmp_path / "other")
    result = run_cli(*tiny_args(tmp_path, "tiny", ["--data-dir", str(other), "--skip-md5"]))
    assert result.returncode == 2
    assert "is not the data run tiny was searched on" in one_error_line(result)
    assert tree_snapshot(run) == before


@pytest.mark.parametrize("extra, phrase", [
    (["--max-epochs", "5"], "max_epochs 1 -> 5"),
    (["--patience", "1"], "patience 3 -> 1"),
    (["--batch-size", "32"], "batch_size 64 -> 32"),
    (["--max-trials", "1"], "below the 2 trials"),
])
def test_resume_refuses_a_change_of_what_the_run_is(tiny_run, data_source, tmp_path, extra, phrase):
    run = copy_run(tiny_run, tmp_path / "tiny")
    before = tree_snapshot(run)
    changed = dict(zip([e.lstrip("-").replace("-", "_") for e in extra[::2]], [int(v) for v in extra[1::2]]))
    with pytest.raises(UserError, match=phrase):
        search.run_search(search_config(data_source, tmp_path, name="tiny", **changed))
    assert tree_snapshot(run) == before


def test_hyperband_epochs_are_part_of_the_run(tmp_path):
    cfg = search.SearchConfig(tuner="hyperband", max_epochs=4, factor=2, name="hb", results_dir=str(tmp_path))
    previous = {"space": "mlp", "args": dict(search.identity(cfg), max_epochs=2)}
    with pytest.raises(UserError, match="max_epochs 2 -> 4"):
        search.resume_changes(previous, cfg, tmp_path)
    previous["args"].update(max_epochs=4, factor=3)
    with pytest.raises(UserError, match="factor 3 -> 2"):
        search.resume_changes(previous, cfg, tmp_path)


def test_a_run_recorded_before_auto_precision_resumes_with_float32_not_with_the_new_default(tmp_path):
    """Runs searched before --mixed-precision auto became the default recorded null (float32): resuming
    one under the default would change how its trials train, so it is refused; float32 resumes it."""
    cfg = search.SearchConfig(name="old", results_dir=str(tmp_path))
    previous = {"space": "mlp", "args": dict(search.identity(cfg), mixed_precision=None)}
    with pytest.raises(UserError, match="mixed_precision None -> 'auto'.*pass --mixed-precision float32 to resume"):
        search.resume_changes(previous, cfg, tmp_path)
    assert search.resume_changes(previous, search.SearchConfig(name="old", results_dir=str(tmp_path),
                                                               mixed_precision="float32"), tmp_path) == []


@pytest.mark.slow
def test_a_larger_budget_really_extends_the_run_and_is_recorded(tiny_run, data_source, tmp_path):
    run = copy_run(tiny_run, tmp_path / "tiny")
    search.run_search(search_config(data_source, tmp_path, name="tiny", max_trials=3, max_failures=4))
    trials = trials_of(run)
    assert len(trials) == 3 and all(t["status"] == "COMPLETED" for t in trials)
    manifest = runs.read_run(run)
    assert manifest["args"]["max_trials"] == 3 and manifest["trials"] == {"COMPLETED": 3}
    changes = {c["arg"]: c for c in manifest["changes"]}
    assert changes["max_trials"]["from"] == 2 and changes["max_trials"]["to"] == 3 and changes["max_trials"]["at"]
    assert changes["max_failures"]["to"] == 4


# ----------------------------------------------------------------------------- 6. full disk, atomic writes


def test_keras_tuner_json_writes_are_atomic(tmp_path, monkeypatch):
    from keras_tuner.src import utils

    kt_compat.install_atomic_json()
    path = tmp_path / "oracle.json"
    utils.save_json(str(path), {"a": 1})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # the write fails after part of the data went out
    with pytest.raises(OSError):
        utils.save_json(str(path), {"a": 2, "b": "x" * 10000})
    assert json.loads(path.read_text()) == {"a": 1}  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["oracle.json"]  # no temp file left


def test_full_disk_stops_with_one_line_and_a_rerun_finishes(data_args, tmp_path, monkeypatch, capsys):
    from fashion_tuner import cli

    writes = {"n": 0}
    real = fsio.atomic_write_text

    def fill_up(path, text):
        writes["n"] += 1
        if writes["n"] > 6 and Path(path).name == "trial.json":  # the disk fills up during the search
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, text)

    monkeypatch.setattr(fsio, "atomic_write_text", fill_up)
    args = tiny_args(tmp_path, "full", data_args)
    args[args.index("--max-trials") + 1] = "3"
    handler = signal.getsignal(signal.SIGTERM)
    try:
        assert cli.main(args) == 2
    finally:
        signal.signal(signal.SIGTERM, handler)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "no space left" in err[0] and "rerun the same command" in err[0]
    run = tmp_path / "full"
    for path in [run / "oracle.json", run / runs.RUN_JSON, *run.glob("trial_*/trial.json")]:
        json.loads(path.read_text())  # every file whole
    stopped = runs.read_run(run)
    assert stopped["status"] == "interrupted" and stopped["stop_reason"] == "no space left on device"
    monkeypatch.setattr(fsio, "atomic_write_text", real)  # space freed
    try:
        assert cli.main(args) == 0
    finally:
        signal.signal(signal.SIGTERM, handler)
    trials = trials_of(run)
    assert len(trials) == 3 and all(t["status"] == "COMPLETED" for t in trials)


def test_too_little_free_space_is_refused_before_writing(data_args, tmp_path):
    result = run_cli(*tiny_args(tmp_path, "nospace", data_args), env={fsio.MIN_FREE_ENV: "1e12"})
    assert result.returncode == 2
    assert "no space left on the disk" in one_error_line(result) and not (tmp_path / "nospace").exists()


# ----------------------------------------------------------------------------- 7. damaged Keras Tuner files


def test_a_damaged_oracle_is_one_line_and_nothing_is_written(tiny_run, tmp_path, data_args):
    run = copy_run(tiny_run, tmp_path / "tiny")
    oracle = run / "oracle.json"
    oracle.write_bytes(oracle.read_bytes()[: oracle.stat().st_size // 2])
    before = tree_snapshot(run)
    result = run_cli(*tiny_args(tmp_path, "tiny", data_args))
    assert result.returncode == 2
    assert "oracle.json is damaged" in one_error_line(result)
    assert tree_snapshot(run) == before and runs.read_run(run)["status"] == "finished"


def test_a_damaged_finished_trial_is_one_line(tiny_run, tmp_path, data_args):
    run = copy_run(tiny_run, tmp_path / "tiny")
    trial = run / "trial_1" / "trial.json"
    trial.write_bytes(trial.read_bytes()[: trial.stat().st_size // 2])
    before = tree_snapshot(run)
    result = run_cli(*tiny_args(tmp_path, "tiny", data_args))
    assert result.returncode == 2
    assert "trial_1/trial.json is damaged" in one_error_line(result) and "finished" in result.stderr
    assert tree_snapshot(run) == before


def _as_if_killed_during_trial_1(run: Path) -> None:
    """What a kill during trial 1 leaves: trial 1 RUNNING in its file and in the oracle's ongoing trials."""
    path = run / "trial_1" / "trial.json"
    trial = json.loads(path.read_text())
    trial.update(status="RUNNING", score=None, metrics={"metrics": {}})
    path.write_text(json.dumps(trial))
    (run / "trial_1" / kt_compat.TRIAL_START_FILE).write_text(json.dumps(trial))
    oracle = json.loads((run / "oracle.json").read_text())
    oracle["ongoing_trials"] = {"tuner0": "1"}
    oracle["end_order"] = [t for t in oracle["end_order"] if t != "1"]
    (run / "oracle.json").write_text(json.dumps(oracle))
    manifest = json.loads((run / runs.RUN_JSON).read_text())
    manifest["status"] = "running"
    (run / runs.RUN_JSON).write_text(json.dumps(manifest))


def test_a_damaged_unfinished_trial_is_set_aside_and_rerun(tiny_run, data_source, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "tiny")
    _as_if_killed_during_trial_1(run)
    (run / "tuner0.json").write_text("{")
    trial = run / "trial_1" / "trial.json"
    torn = trial.read_bytes()[:100]
    trial.write_bytes(torn)
    original = {t["trial_id"]: t["score"] for t in trials_of(tiny_run)}
    search.run_search(search_config(data_source, tmp_path, name="tiny"))
    out = capsys.readouterr().out
    assert "repaired: trial 1" in out and "repaired: tuner0.json" in out
    assert (run / "trial_1" / "trial.json.damaged").read_bytes() == torn
    trials = {t["trial_id"]: t for t in trials_of(run)}
    assert trials["1"]["status"] == "COMPLETED" and abs(trials["1"]["score"] - original["1"]) < 0.05
    assert trials["0"]["score"] == original["0"]  # the finished trial was not run again
    assert json.loads((run / "tuner0.json").read_text()) == {} and runs.read_run(run)["status"] == "finished"


# ----------------------------------------------------------------------------- 8. signals


def _search_process(results: Path, name: str, data_args: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, str(REPO / "main.py"), "search", "--space", "mlp", "--tuner", "random", "--max-trials", "3",
           "--max-epochs", "2", "--subset", "1500", "--results-dir", str(results), "--name", name,
           "--trials-per-process", "2", *data_args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def _wait_for(proc: subprocess.Popen, marker: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if marker in line or time.monotonic() > deadline:
            return
    raise AssertionError(f"never saw {marker!r}: {proc.stderr.read()[-2000:]}")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout.split()[2:]
    return [int(c) for c, p in zip(out[::2], out[1::2]) if int(p) == pid]


@pytest.mark.slow
def test_sigterm_is_ctrl_c(tmp_path, data_args):
    proc = _search_process(tmp_path, "term", data_args)
    _wait_for(proc, "[1/3]")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "interrupted (SIGTERM)" in stderr and "Resume with:" in stderr and "Traceback" not in stderr
    assert runs.read_run(tmp_path / "term")["status"] == "interrupted"


@pytest.mark.slow
def test_a_child_killed_by_sigkill_is_reported_and_the_run_resumes(tmp_path, data_args):
    proc = _search_process(tmp_path, "oom", data_args)
    _wait_for(proc, "[1/3]")
    time.sleep(1.0)  # into the second trial
    (child,) = _children(proc.pid)
    os.kill(child, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGKILL
    line = [ln for ln in stderr.splitlines() if ln.strip()][-1]
    assert "killed by SIGKILL (out of memory?)" in line and "Resume with:" in line
    manifest = runs.read_run(tmp_path / "oom")
    assert manifest["status"] == "interrupted" and "SIGKILL" in manifest["stop_reason"]
    running = [t for t in trials_of(tmp_path / "oom") if t["status"] == "RUNNING"]
    assert running and all("SIGKILL" in t["message"] for t in running)
    result = run_cli("search", "--space", "mlp", "--tuner", "random", "--max-trials", "3", "--max-epochs", "2",
                     "--subset", "1500", "--results-dir", str(tmp_path), "--name", "oom", *data_args)
    assert result.returncode == 0, result.stderr[-2000:]
    trials = trials_of(tmp_path / "oom")
    assert len(trials) == 3 and all(t["status"] == "COMPLETED" for t in trials)


# ----------------------------------------------------------------------------- 10-11. bad input, one line


def test_build_model_returning_a_non_model_is_one_line_and_the_run_marked_failed(tmp_path, data_args):
    result = run_cli("search", "--space", str(SPACES / "not_a_model.py"), "--tuner", "random", "--max-trials", "1",
                     "--max-epochs", "1", "--subset", "300", "--results-dir", str(tmp_path), "--name", "dict",
                     *data_args)
    assert result.returncode == 2
    assert "returned dict, not a keras.Model" in one_error_line(result)
    assert runs.read_run(tmp_path / "dict")["status"] == "failed"


def test_a_damaged_split_or_manifest_is_one_line(tiny_run, tmp_path):
    bad_split = copy_run(tiny_run, tmp_path / "split")
    with np.load(bad_split / runs.SPLIT_FILE) as f:
        arrays = dict(f)
    arrays["test_idx"] = arrays["test_idx"] + 10 ** 6
    with open(bad_split / runs.SPLIT_FILE, "wb") as fh:
        np.savez(fh, **arrays)
    manifest = json.loads((bad_split / runs.RUN_JSON).read_text())  # as if run.json recorded this split (else its
    manifest["split"]["sha256"] = runs.file_digest(bad_split / runs.SPLIT_FILE)  # digest refuses it first)
    (bad_split / runs.RUN_JSON).write_text(json.dumps(manifest))
    result = run_cli("retrain-best", str(bad_split))
    assert result.returncode == 2 and "outside the" in one_error_line(result)
    for payload, phrase in (([], "a JSON list"), ({"space": "mlp", "args": [1]}, "'args' is a list")):
        run = copy_run(tiny_run, tmp_path / f"manifest{len(phrase)}")
        (run / runs.RUN_JSON).write_text(json.dumps(payload))
        result = run_cli("retrain-best", str(run))
        assert result.returncode == 2 and phrase in one_error_line(result)
    # review reads any Keras Tuner directory: it goes on without a usable run.json, and says so
    result = run_cli("review", str(tmp_path / "manifest11"), "--out", str(tmp_path / "rev"))
    assert result.returncode == 0 and "unreadable" in result.stderr, result.stderr[-1500:]


def test_a_nan_score_never_ranks_as_best(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "nan")
    path = run / "trial_0" / "trial.json"
    trial = json.loads(path.read_text())
    trial["score"] = float("nan")
    path.write_text(json.dumps(trial))
    other = json.loads((run / "trial_1" / "trial.json").read_text())["score"]
    _, summary = search.summarize(run)
    assert summary["best"] == {"trial_id": "1", "score": other}


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


def test_predict_refuses_bad_images_and_models_on_one_line(tmp_path):
    import keras

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(30000, 30000))
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 0), dtype=np.float32))
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs)))
    other = tmp_path / "cifar.keras"
    model.save(other)
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((28, 28), dtype=np.uint8))
    for args, phrase in ((["--model", str(other), str(bomb)], "refused before decoding"),
                         (["--model", str(other), str(empty)], "empty array"),
                         (["--model", str(other), str(good)], "takes input of shape (None, 32, 32, 3)")):
        result = run_cli("predict", *args)
        assert result.returncode == 2 and phrase in one_error_line(result)


def test_a_model_with_too_few_outputs_says_why_in_the_progress_line(data_source, tmp_path, capsys):
    cfg = search_config(data_source, tmp_path, space=str(SPACES / "five_outputs.py"), max_trials=1, name="five",
                        max_failures=1)
    with pytest.raises(UserError, match="outside the valid range of"):
        search.run_search(cfg)
    line = [ln for ln in capsys.readouterr().out.splitlines() if "FAILED" in ln][0]
    assert "Received a label value of 9 which is outside the valid range of [0, 5)" in line and "{{node" not in line
    assert trials_of(tmp_path / "five")[0]["status"] == "FAILED"  # Keras Tuner saved the last failure too


def test_no_mnist_anywhere_is_one_line(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = run_cli("search", "--dataset", "mnist", "--results-dir", str(tmp_path / "r"), env={"HOME": str(home)})
    assert result.returncode == 2
    assert "mnist data not found" in one_error_line(result) and result.stdout == ""
    assert not (tmp_path / "r").exists()
