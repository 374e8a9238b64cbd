"""The search engine end to end: every tuner, run.json, failing trials, resume, refusal, seeds."""

import gc
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_cli, search_config, tree_snapshot
from fashion_tuner import fitting, locks, runs, search, splits
from fashion_tuner.errors import UserError

SPACES = Path(__file__).parent / "spaces"


def trials_of(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(run_dir.glob("trial_*/trial.json"))]


def test_tiny_run_is_a_keras_tuner_project_with_manifest(tiny_run):
    assert (tiny_run / "oracle.json").is_file()
    trials = trials_of(tiny_run)
    assert len(trials) == 2 and all(t["status"] == "COMPLETED" for t in trials)
    run = runs.read_run(tiny_run)
    assert run["space"] == "mlp" and run["tuner"] == "random" and run["status"] == "finished"
    assert run["objective"] == "val_accuracy" and run["direction"] == "max"
    assert run["split"]["sizes"]["train"] == 600
    assert set(run["versions"]) >= {"python", "tensorflow", "keras", "keras_tuner"}
    assert len(run["data"]["md5"]) == 4 and run["started"] and run["finished"]
    assert run["args"]["max_trials"] == 2 and run["trials"] == {"COMPLETED": 2}
    best = max(trials, key=lambda t: t["score"])
    assert run["best"] == {"trial_id": best["trial_id"], "score": best["score"]}
    assert json.loads((tiny_run / runs.BEST_HP_FILE).read_text()) == best["hyperparameters"]["values"]
    split = splits.load_split(tiny_run / runs.SPLIT_FILE)
    assert split.train_idx.size == 600
    assert gc.get_freeze_count() == 0  # the search hid its long-lived objects from gc only while it ran


def test_the_search_command_line_does_not_import_scikit_learn():
    # scikit-learn takes ~1 s to import and only a new split needs it; every search process pays the import
    code = "import sys; import fashion_tuner.cli, fashion_tuner.runs, fashion_tuner.search; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_first_trial_is_the_space_defaults_then_random(tiny_run):
    import keras_tuner as kt

    from fashion_tuner import spaces

    hp = kt.HyperParameters()
    spaces.load_space("mlp").build_model(hp)  # registers every active hyperparameter at its default
    first, second = (t["hyperparameters"]["values"] for t in trials_of(tiny_run))
    assert {k: v for k, v in first.items() if not k.startswith("tuner/")} == hp.values
    assert second != first


@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["hyperband", "bayesian"])
def test_other_tuners(tuner, data_source, tmp_path):
    cfg = search_config(data_source, tmp_path, tuner=tuner, max_epochs=2, factor=2, max_trials=3, name=tuner)
    run_dir = search.run_search(cfg)
    trials = trials_of(run_dir)
    assert len(trials) >= 2 and any(t["status"] == "COMPLETED" for t in trials)
    if tuner == "hyperband":
        assert all("tuner/epochs" in t["hyperparameters"]["values"] for t in trials)
        assert len(trials) == search.expected_trials(cfg)
    else:
        assert len(trials) == 3


def test_tuner_never_sees_a_held_out_image(data_source, fashion, tmp_path, monkeypatch):
    spy = tmp_path / "spy.jsonl"
    monkeypatch.setenv("SPY_OUT", str(spy))
    cfg = search_config(data_source, tmp_path, space=str(SPACES / "spy_space.py"), max_trials=1, name="spy")
    run_dir = search.run_search(cfg)
    split = splits.load_split(run_dir / runs.SPLIT_FILE)
    seen = set(json.loads(spy.read_text().splitlines()[0]))
    held_out = runs.to_model_input(fashion.x_test[split.test_idx])
    held_out_digests = {hashlib.md5(img.tobytes()).hexdigest() for img in held_out}
    val = runs.to_model_input(fashion.x_test[split.val_idx])
    # images that are byte-identical between validation and held-out test can exist in the raw
    # data; everything else of the held-out set must be absent
    duplicates = held_out_digests & {hashlib.md5(img.tobytes()).hexdigest() for img in val}
    train = runs.to_model_input(fashion.x_train[split.train_idx])
    duplicates |= held_out_digests & {hashlib.md5(img.tobytes()).hexdigest() for img in train}
    assert not (seen & held_out_digests) - duplicates
    assert len(seen) > 600


@pytest.mark.slow
def test_failing_trials_are_recorded_and_search_goes_on(data_source, tmp_path, capsys):
    cfg = search_config(data_source, tmp_path, space=str(SPACES / "flaky_space.py"), max_trials=4, name="flaky")
    search.run_search(cfg)
    trials = {t["trial_id"]: t for t in trials_of(tmp_path / "flaky")}
    statuses = sorted(t["status"] for t in trials.values())
    assert statuses == ["COMPLETED", "COMPLETED", "FAILED", "FAILED"]
    messages = " ".join(t["message"] or "" for t in trials.values() if t["status"] == "FAILED")
    assert "diverged" in messages and "does not fit the input" in messages
    out = capsys.readouterr().out
    assert "failed: " in out and "2 completed, 2 failed" in out
    assert runs.read_run(tmp_path / "flaky")["trials"] == {"COMPLETED": 2, "FAILED": 2}


@pytest.mark.slow
def test_all_trials_failing_exits_non_zero_with_reasons(data_args, tmp_path):
    result = run_cli("search", "--space", str(SPACES / "nan_space.py"), "--tuner", "random", "--max-trials", "3",
                     "--max-epochs", "1", "--subset", "300", "--results-dir", str(tmp_path), "--name", "nan",
                     "--max-failures", "2", *data_args)
    assert result.returncode == 2
    assert "error: every trial failed" in result.stderr and "diverged" in result.stderr
    assert "Traceback" not in result.stderr
    assert runs.read_run(tmp_path / "nan")["status"] == "failed"


def test_different_search_into_existing_run_is_refused(tiny_run, data_source):
    before = tree_snapshot(tiny_run)
    cfg = search_config(data_source, tiny_run.parent, tuner="bayesian", name="tiny")
    with pytest.raises(UserError, match="different search .*tuner 'random' -> 'bayesian'"):
        search.run_search(cfg)
    assert tree_snapshot(tiny_run) == before


def test_rerunning_a_finished_search_adds_nothing(tiny_run, data_source, tmp_path):
    import shutil

    copy = tmp_path / "tiny"
    shutil.copytree(tiny_run, copy)
    search.run_search(search_config(data_source, tmp_path, name="tiny"))
    assert len(trials_of(copy)) == 2


@pytest.mark.slow
def test_seeded_runs_propose_identical_trials(data_source, tmp_path):
    sequences = []
    for name in ("seed-a", "seed-b"):
        run_dir = search.run_search(search_config(data_source, tmp_path, max_trials=2, seed=7, name=name))
        sequences.append([t["hyperparameters"]["values"] for t in trials_of(run_dir)])
    assert sequences[0] == sequences[1]
    other = search.run_search(search_config(data_source, tmp_path, max_trials=2, seed=8, name="seed-c"))
    assert [t["hyperparameters"]["values"] for t in trials_of(other)] != sequences[0]


def _search_process(data_args, results: Path, trials: int, name: str) -> subprocess.Popen:
    cmd = [sys.executable, str(REPO / "main.py"), "search", "--space", "mlp", "--tuner", "random",
           "--max-trials", str(trials), "--max-epochs", "2", "--subset", "1500", "--results-dir", str(results),
           "--name", name, *data_args]
    # A shell without job control starts background commands with SIGINT ignored, and Python then
    # never raises KeyboardInterrupt: give the search the default disposition a terminal gives it.
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_line(proc: subprocess.Popen, marker: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if marker in line:
            return
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError(f"never saw {marker!r}; stderr: {proc.stderr.read()[-2000:]}")


def _lock_released(path, timeout: float) -> bool:
    """True once nobody holds the flock on ``path`` (a missing file is a free lock), False after ``timeout`` s."""
    import fcntl

    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path, "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True  # closing the file releases the probe's own lock
        except FileNotFoundError:
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)


def _processes_with(text: str) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in ps if text in line and "main.py" in line]


@pytest.mark.slow
def test_search_in_fresh_processes_finishes_the_budget(data_args, tmp_path):
    result = run_cli("search", "--space", "mlp", "--tuner", "random", "--max-trials", "4", "--max-epochs", "1",
                     "--subset", "600", "--results-dir", str(tmp_path), "--name", "batches", "--trials-per-process",
                     "2", "--overwrite", *data_args)
    assert result.returncode == 0, result.stderr
    trials = trials_of(tmp_path / "batches")
    assert len({t["trial_id"] for t in trials}) == 4 and all(t["status"] == "COMPLETED" for t in trials)
    # process 2 resumed the run silently: one header for the whole search, not one per process
    out = result.stdout
    assert out.count("Starting random search") == 1 and "Resuming" not in out and out.count("devices:") == 1
    assert "Reloading Tuner" not in out
    assert "[4/4]" in out  # progress counts across processes
    # elapsed time runs on the command's clock: it never goes backwards when the next process takes over
    elapsed = [_seconds(line.split("elapsed ")[1].split()[0]) for line in out.splitlines() if " elapsed " in line]
    assert len(elapsed) == 4 and elapsed == sorted(elapsed) and elapsed[-1] >= 5
    assert "wall time of this search command:" in out
    assert runs.read_run(tmp_path / "batches")["status"] == "finished"
    # its trials were timed, so the budget line of a resume says what is left; a finished run says so
    again = run_cli("search", "--space", "mlp", "--tuner", "random", "--max-trials", "4", "--max-epochs", "1",
                    "--subset", "600", "--results-dir", str(tmp_path), "--name", "batches", "--trials-per-process",
                    "2", *data_args)
    assert again.returncode == 0 and "already finished (4 trials)" in again.stdout, again.stderr[-1500:]
    assert len(search.trial_seconds(tmp_path / "batches")) == 4


def _seconds(text: str) -> int:
    """Seconds of a printed duration: ``7s`` or ``2m05s`` (budget.describe)."""
    minutes, _, seconds = text.rstrip("s").rpartition("m")
    return int(minutes or 0) * 60 + int(seconds)


# The next: line run as printed: tests/test_hints.py


def test_a_python_without_the_requirements_gets_set_up_advice(tmp_path):
    # -S: no site-packages, as with a system Python that never had `pip install -r requirements.txt`
    proc = subprocess.run([sys.executable, "-S", str(REPO / "main.py"), "list", "--results-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "does not have the requirements" in lines[0] and "bash scripts/setup.sh" in lines[0]


def test_space_defaults_and_the_retraining_they_record():
    cnn = search.apply_space_defaults(search.SearchConfig(space="cnn", max_epochs=None))
    assert (cnn.max_epochs, cnn.subset, cnn.trial_timeout) == (6, 10000, 300)
    assert cnn.retrain_defaults == {"epochs": 30, "train_on": "full", "patience": 5}
    custom = search.apply_space_defaults(search.SearchConfig(space="cnn", max_epochs=2))
    assert custom.subset == 10000 and custom.retrain_defaults is None  # a custom budget retrains as searched
    mlp = search.apply_space_defaults(search.SearchConfig(space="mlp", max_epochs=None))
    assert (mlp.max_epochs, mlp.subset, mlp.trial_timeout) == (20, None, None)
    assert mlp.retrain_defaults == {"epochs": 50, "train_on": "train", "patience": 6}
    own = search.apply_space_defaults(search.SearchConfig(space=str(SPACES / "nan_space.py"), max_epochs=None))
    assert own.max_epochs == 10 and own.retrain_defaults is None


@pytest.mark.slow
def test_sigkill_then_rerun_finishes_the_budget(data_args, tmp_path):
    proc = _search_process(data_args, tmp_path, 4, "killed")
    _wait_for_line(proc, "[2/4]")
    time.sleep(1.0)  # let the third trial start
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # the search ran in a child process (--trials-per-process); it dies with its parent
    deadline = time.monotonic() + 15
    while _processes_with("--name killed") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_with("--name killed")
    # a dying child closes its files after its memory is gone (and its command line with it): on a loaded
    # machine the lock can outlive the process list entry by a few seconds
    assert _lock_released(locks.lock_path(tmp_path / "killed"), timeout=30)
    done_before = [t for t in trials_of(tmp_path / "killed") if t["status"] == "COMPLETED"]
    assert len(done_before) >= 2
    result = run_cli("search", "--space", "mlp", "--tuner", "random", "--max-trials", "4", "--max-epochs", "2",
                     "--subset", "1500", "--results-dir", str(tmp_path), "--name", "killed", *data_args)
    assert result.returncode == 0, result.stderr
    trials = trials_of(tmp_path / "killed")
    ids = [t["trial_id"] for t in trials]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert all(t["status"] == "COMPLETED" for t in trials)
    # the trials finished before the kill are kept as they were
    after = {t["trial_id"]: t for t in trials}
    for t in done_before:
        assert after[t["trial_id"]]["score"] == t["score"]


@pytest.mark.slow
def test_sigint_exits_130_and_is_resumable(data_args, tmp_path):
    proc = _search_process(data_args, tmp_path, 3, "ctrl-c")
    _wait_for_line(proc, "[1/3]")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Resume with:" in stderr and "--name ctrl-c" in stderr and "Traceback" not in stderr
    assert runs.read_run(tmp_path / "ctrl-c")["status"] == "interrupted"
    marker = tmp_path / "ctrl-c" / runs.TENSORBOARD_DIR / ".fashion_tuner_tensorboard.json"
    done = {f"trial_{t['trial_id']}" for t in trials_of(tmp_path / "ctrl-c") if t["status"] == "COMPLETED"}
    assert done and done <= set(json.loads(marker.read_text())["sessions"])  # the logdir was written on the way out
    result = run_cli("search", "--space", "mlp", "--tuner", "random", "--max-trials", "3", "--max-epochs", "2",
                     "--subset", "1500", "--results-dir", str(tmp_path), "--name", "ctrl-c", *data_args)
    assert result.returncode == 0, result.stderr
    trials = trials_of(tmp_path / "ctrl-c")
    assert len({t["trial_id"] for t in trials}) == 3 and all(t["status"] == "COMPLETED" for t in trials)
    assert len(json.loads(marker.read_text())["sessions"]) == 3, marker.read_text()  # and rewritten by the resume


def test_class_weights(tmp_path):
    y = np.array([0] * 30 + [1] * 10 + list(range(2, 10)) * 5)
    balanced = fitting.resolve_class_weight("balanced", y)
    assert balanced[1] > balanced[0] and len(balanced) == 10
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"Shirt": 2.0, "2": 1.5}))
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    weights = fitting.resolve_class_weight(str(path), y, names)
    assert weights[6] == 2.0 and weights[2] == 1.5 and weights[0] == 1.0
    assert fitting.resolve_class_weight("none", y) is None
    path.write_text(json.dumps({"Hat": 2.0}))
    with pytest.raises(UserError, match="neither a class index nor a class name"):
        fitting.resolve_class_weight(str(path), y, names)


def test_expected_trials_matches_keras_tuner_hyperband(data_source, tmp_path):
    cfg = search_config(data_source, tmp_path, tuner="hyperband", max_epochs=4, factor=2)
    # end size ceil(1 + log2 4) = 3; brackets 0-2 (epochs 4, 2, 1): bracket 2 runs 3*4/3=4... per
    # Keras Tuner's _get_size: ceil(3 / (b + 1) * 2 ** (b - r))
    sizes = [math.ceil(3 / (b + 1) * 2 ** (b - r)) for b in range(3) for r in range(b + 1)]
    assert search.expected_trials(cfg) == sum(sizes) == 3 + 3 + 2 + 4 + 2 + 1
    assert search.expected_trials(search_config(data_source, tmp_path, tuner="random", max_trials=7)) == 7


def test_a_built_in_space_is_its_file(tmp_path):
    # adding a built-in space is adding search_spaces/<name>.py: its name and default budget are read
    # from the file (never imported for that), nothing else lists it
    from fashion_tuner import spaces

    (tmp_path / "tiny_net.py").write_text('SEARCH_DEFAULTS = {"max_epochs": 3, "subset": 500}\n\n'
                                          "def build_model(hp):\n    raise RuntimeError('not imported')\n")
    (tmp_path / "helpers.py").write_text("def helper():\n    return 1\n")  # no build_model: not a space
    (tmp_path / "plain.py").write_text("def build_model(hp):\n    return None\n")
    assert spaces.read_builtin_spaces(tmp_path) == {"plain": {}, "tiny_net": {"max_epochs": 3, "subset": 500}}
    assert spaces.BUILTIN_SPACES == ("cnn", "cnn_100k", "mlp", "transfer")
    assert spaces.SPACE_DEFAULTS["cnn"]["retrain"] == {"epochs": 30, "train_on": "full", "patience": 5}


MLP_DEFAULT_PARAMS = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10  # the mlp space's defaults: 2 x Dense 256


@pytest.mark.slow
def test_priorband_search_rejects_big_models_before_they_train(data_source, tmp_path):
    """A real priorband search (the default tuner) with --max-params just above the defaults' size: trial 0 is
    the defaults, no trained model is over the limit, the rejected draws are counted in oracle.json and review
    says so, and no trial folder exists for a rejected configuration."""
    from fashion_tuner.review.project import read_project

    limit = MLP_DEFAULT_PARAMS + 1000
    cfg = search_config(data_source, tmp_path, tuner="priorband", max_epochs=2, factor=2, max_params=limit,
                        name="small")
    run_dir = search.run_search(cfg)
    trials = trials_of(run_dir)
    assert len(trials) == search.expected_trials(cfg) == 5
    first = min(trials, key=lambda t: t["trial_id"])["hyperparameters"]["values"]
    assert first["hidden_layers"] == 2 and first["units_0"] == first["units_1"] == 256
    sizes = [json.loads(p.read_text())["parameters"] for p in run_dir.glob("trial_*/model.json")]
    assert len(sizes) == len(trials) and max(sizes) <= limit and MLP_DEFAULT_PARAMS in sizes
    oracle = json.loads((run_dir / "oracle.json").read_text())
    assert oracle["priorband"]["rejected"] > 0
    assert f"{oracle['priorband']['rejected']} configuration(s) rejected" in read_project(run_dir).tuner_detail
    assert runs.read_run(run_dir)["args"]["max_params"] == limit


def test_max_params_with_a_tuner_that_cannot_reject_is_one_line(tmp_path, data_args):
    result = run_cli("search", "--tuner", "random", "--max-params", "1000", "--results-dir", str(tmp_path), *data_args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "--max-params" in result.stderr and "--tuner priorband" in result.stderr
    assert not any(tmp_path.iterdir())
