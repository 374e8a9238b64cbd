"""Resume inside a fit (fashion_tuner.backup): in-process on a real model, and after kill -9 of a real
search and a real retrain-best (subprocesses)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

EPOCHS = 6


class Interrupted(Exception):
    pass


def _model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, 200)),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _callbacks(probe):
    import keras

    return [keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=50, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=1, factor=0.5), probe]


def _probe(stop_at_epoch=None, fail_at_end=False):
    import keras

    class Probe(keras.callbacks.Callback):
        """Records the epochs run and the state seen at each epoch's start; raises to simulate a kill."""

        def __init__(self):
            super().__init__()
            self.begun, self.states, self.val_accuracy = [], [], []

        def on_epoch_begin(self, epoch, logs=None):
            if stop_at_epoch is not None and epoch == stop_at_epoch:
                raise Interrupted()
            es = self.model._ft_es
            self.begun.append(epoch)
            self.states.append({"iterations": int(self.model.optimizer.iterations), "wait": es.wait, "best": es.best,
                                "best_epoch": es.best_epoch})

        def on_epoch_end(self, epoch, logs=None):
            es = self.model._ft_es
            self.val_accuracy.append(logs["val_accuracy"])
            self.last = {"iterations": int(self.model.optimizer.iterations), "wait": es.wait, "best": es.best,
                         "best_epoch": es.best_epoch}

        def on_train_end(self, logs=None):
            if fail_at_end:
                raise Interrupted()

    return Probe()


def _fit(model, data, slots, probe, epochs=EPOCHS, initial_epoch=0):
    from fashion_tuner.backup import attached

    callbacks = _callbacks(probe)
    object.__setattr__(model, "_ft_es", callbacks[0])
    (x, y), val = data
    with attached(model, slots):
        return model.fit(x, y, validation_data=val, epochs=epochs, batch_size=64, callbacks=callbacks, verbose=0,
                         initial_epoch=initial_epoch)


@pytest.fixture(scope="module")
def small(fashion):
    from fashion_tuner.runs import to_model_input

    return ((to_model_input(fashion.x_train[:600]), fashion.y_train[:600]),
            (to_model_input(fashion.x_test[:300]), fashion.y_test[:300]))


def test_resumed_fit_continues_with_model_optimizer_callbacks_and_history(small, tmp_path):
    from fashion_tuner.backup import FitSlots, read_state

    k = 3
    first = _probe(stop_at_epoch=k)
    with pytest.raises(Interrupted):
        _fit(_model(1), small, FitSlots(tmp_path / "b"), first)
    at_kill = first.last
    assert read_state(tmp_path / "b" / "fit_1")["epoch"] == k

    second = _probe()
    history = _fit(_model(2), small, FitSlots(tmp_path / "b"), second)  # another init: the backup must win
    assert second.begun == list(range(k, EPOCHS))  # only the remaining epochs ran
    assert second.states[0] == at_kill  # optimizer step (cosine schedule position) and EarlyStopping state
    assert len(history.history["loss"]) == EPOCHS and history.epoch == list(range(EPOCHS))
    assert history.history["val_accuracy"][:k] == pytest.approx(first.val_accuracy)  # the epochs before the kill
    assert max(history.history["val_accuracy"]) > 0.5  # it learned (10 classes: chance is 0.1)


def test_continuation_fit_resumes_inside_its_own_epochs(small, tmp_path):
    # a Hyperband continuation fits epochs 2..5 (initial_epoch 2); killed at 4, it resumes at 4
    from fashion_tuner.backup import FitSlots

    first = _probe(stop_at_epoch=4)
    with pytest.raises(Interrupted):
        _fit(_model(1), small, FitSlots(tmp_path / "b"), first, initial_epoch=2)
    assert first.begun == [2, 3]
    second = _probe()
    history = _fit(_model(2), small, FitSlots(tmp_path / "b"), second, initial_epoch=2)
    assert second.begun == [4, 5] and history.epoch == [2, 3, 4, 5] and len(history.history["loss"]) == 4


def test_fit_finished_before_the_kill_is_restored_not_rerun(small, tmp_path):
    from fashion_tuner.backup import FitSlots

    first = _probe(fail_at_end=True)  # killed after the last epoch, before the fit returned
    model = _model(1)
    with pytest.raises(Interrupted):
        _fit(model, small, FitSlots(tmp_path / "b"), first, epochs=4)
    best_weights = [w.copy() for w in model.get_weights()]  # EarlyStopping restored them before the "kill"

    second = _probe()
    model2 = _model(2)
    history = _fit(model2, small, FitSlots(tmp_path / "b"), second, epochs=4)
    assert second.begun == []  # no epoch retrained
    assert len(history.history["loss"]) == 4
    assert all(np.allclose(a, b) for a, b in zip(best_weights, model2.get_weights()))


def test_damaged_backup_starts_the_fit_over(small, tmp_path):
    from fashion_tuner.backup import FitSlots

    (tmp_path / "b" / "fit_1").mkdir(parents=True)
    (tmp_path / "b" / "fit_1" / "state.json").write_text('{"version": 1, "epoch": 2, "weights": "missing.weights.h5"}')
    probe = _probe()
    history = _fit(_model(1), small, FitSlots(tmp_path / "b"), probe, epochs=2)
    assert probe.begun == [0, 1] and len(history.history["loss"]) == 2


# ---------------------------------------------------------------------------------------------- subprocesses

def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, str(REPO / "main.py"), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _kill_after_epoch(proc: subprocess.Popen, pattern: str, root: Path, k: int, timeout: float = 240,
                      signum: int = signal.SIGKILL) -> int:
    """Send ``signum`` to ``proc`` once a backup under ``root`` (glob ``pattern``) holds epoch >= k; returns
    the epoch the backup holds once ``proc`` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for state in root.glob(pattern):
            try:
                epoch = json.loads(state.read_text())["epoch"]
            except (OSError, ValueError, KeyError):
                continue
            if epoch >= k:
                proc.send_signal(signum)
                proc.wait(timeout=60)
                return json.loads(state.read_text())["epoch"]
        if proc.poll() is not None:
            pytest.fail(f"finished before epoch {k}: {proc.stdout.read()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no backup appeared in time")


@pytest.mark.slow
def test_search_killed_mid_trial_resumes_the_trial(data_source, tmp_path):
    from fashion_tuner.epochlog import read_epochs

    args = ["search", "--space", "mlp", "--tuner", "random", "--max-trials", "1", "--max-epochs", str(EPOCHS),
            "--subset", "1200", "--patience", "10", "--trials-per-process", "0", "--seed", "1",
            "--results-dir", str(tmp_path), "--name", "r", "--data-dir", str(data_source["dir"])]
    args += ["--skip-md5"] if data_source["skip_md5"] else []
    killed_at = _kill_after_epoch(_start(args), "r/trial_*/backup/fit_1/state.json", tmp_path, 2)
    assert 2 <= killed_at < EPOCHS
    rerun_started = time.time()
    proc = _start(args)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-3000:]
    trial_dir = next((tmp_path / "r").glob("trial_*"))
    assert f"resuming at epoch {killed_at + 1} of {EPOCHS}" in out
    _, rows = read_epochs(trial_dir)
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))  # the final history has every epoch
    assert sum(r["time"] >= rerun_started for r in rows) == EPOCHS - killed_at  # the rerun trained only the rest
    trial = json.loads((trial_dir / "trial.json").read_text())
    assert trial["status"] == "COMPLETED" and 0 <= trial["best_step"] < EPOCHS
    assert trial["score"] == pytest.approx(max(r["val_accuracy"] for r in rows))
    assert not (trial_dir / "backup").exists()  # deleted when the trial ended
    assert (trial_dir / "model.json").is_file()


@pytest.mark.slow
def test_retrain_killed_mid_fit_resumes(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    args = ["retrain-best", str(run), "--epochs", str(EPOCHS)]
    first = _start(args)  # stopped with SIGTERM (as Ctrl-C): the interrupt path keeps the backup too
    _kill_after_epoch(first, "retrain_backup/*/fit_1/state.json", run, 2, signum=signal.SIGTERM)
    assert first.returncode == 128 + signal.SIGTERM
    killed_at = json.loads(next(run.glob("retrain_backup/*/fit_1/state.json")).read_text())["epoch"]
    proc = _start(args)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-3000:]
    assert f"resuming at epoch {killed_at + 1} of {EPOCHS}" in out
    ran = [line for line in out.splitlines()  # fashion_tuner.fitprogress: a line per epoch (not a terminal)
           if line.startswith("[retrain-best] trial ") and " epoch " in line and ": batch " not in line]
    header, *history = (run / "report" / "history.csv").read_text().strip().splitlines()
    header = header.split(",")
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert len(ran) == len(history) - killed_at  # only the remaining epochs were trained
    assert len(history) == metrics["epochs_trained"] and len(history) >= killed_at
    val_acc = [float(row.split(",")[header.index("val_accuracy")]) for row in history]
    assert metrics["best_epoch"] == int(np.argmax(val_acc)) + 1  # the best epoch over the whole history
    assert all((run / "report" / f).is_file() for f in ("report.html", "best_model.keras", "metrics.json"))
    assert not (run / "retrain_backup").exists()


@pytest.mark.slow
def test_top_k_retrain_resumed_keeps_finished_members(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    args = ["retrain-best", str(run), "--epochs", str(EPOCHS), "--top-k", "2"]
    first = _start(args)
    deadline = time.monotonic() + 240
    while len(list(run.glob("retrain_backup/*/fit_1/state.json"))) < 2:  # member 2 has a backup: member 1 is done
        assert time.monotonic() < deadline and first.poll() is None, "member 2 never started"
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=60)
    proc = _start(args)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-3000:]
    assert out.count("restored, not rerun") >= 1  # member 1 came back from its backup without training
    for member in ("model_1", "model_2"):
        metrics = json.loads((run / "report" / member / "metrics.json").read_text())
        assert len((run / "report" / member / "history.csv").read_text().strip().splitlines()) - 1 == metrics["epochs_trained"]
    assert not (run / "retrain_backup").exists()
