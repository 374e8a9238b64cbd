"""A Ctrl-C that Python loses (raised inside a garbage-collector callback) still stops the command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import lose_a_sigint
from fashion_tuner import cli, interrupts, runs
from fashion_tuner.search import processes
from fashion_tuner.fitting import standard_callbacks

SPACES = Path(__file__).parent / "spaces"


@pytest.fixture(autouse=True)
def sigint_as_in_a_terminal():
    """pytest-xdist workers and background jobs of a shell start with SIGINT ignored (and a command then
    leaves it ignored, as it should); these tests need Python's default, which a terminal gives."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_lost_interrupt_is_recorded_raised_again_and_not_printed(capsys):
    with interrupts.handled():
        lose_a_sigint()
        assert interrupts.received() == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            interrupts.raise_if_received()
    assert "Traceback" not in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is not interrupts._on_signal  # the previous handler is back
    assert interrupts.received() is None  # handled: a later fit in this process does not raise it again
    interrupts.raise_if_received()


def test_after_an_interrupt_errors_python_can_only_print_stay_quiet(capsys):
    """After a signal, an error raised where Python can only print it ("Exception ignored in ...", as TensorFlow's
    tracing context cut short by SIGTERM failing its cleanup at exit) is logged at debug level, not printed;
    a command that no signal interrupted leaves the hook as it found it."""
    class FailsItsCleanup:
        def __del__(self):
            raise TypeError("'NoneType' object is not iterable")

    before = sys.unraisablehook
    with interrupts.handled():
        pass
    assert sys.unraisablehook is before
    with interrupts.handled():
        lose_a_sigint()
        with pytest.raises(KeyboardInterrupt):
            interrupts.raise_if_received()
    assert sys.unraisablehook is not before  # quiet for the rest of the process
    try:
        cut_short = FailsItsCleanup()
        del cut_short
        err = capsys.readouterr().err
        assert "Traceback" not in err and "Exception ignored" not in err and "NoneType" not in err
    finally:
        sys.unraisablehook = before


def test_a_fit_stops_at_the_next_batch_after_a_lost_interrupt():
    import keras

    batches = []

    class LoseOne(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)
            if len(batches) == 3:
                lose_a_sigint()

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(400, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    with interrupts.handled(), pytest.raises(KeyboardInterrupt):
        model.fit(x, y, validation_data=(x, y), epochs=2, batch_size=10, verbose=0,
                  callbacks=[LoseOne(), *standard_callbacks()])
    assert len(batches) == 3  # of 80: the trial guard raised it again after the batch that lost it


def test_the_search_parent_stops_waiting_after_a_lost_interrupt():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with interrupts.handled():
            lose_a_sigint()
            started = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                processes.wait(child)
        assert time.monotonic() - started < 5
    finally:
        child.kill()
        child.wait()


def test_an_error_raised_for_a_ctrl_c_interrupts_the_search_and_fails_no_trial(tmp_path, data_args, capsys):
    args = ["search", "--space", str(SPACES / "interrupted_space.py"), "--tuner", "random", "--max-trials", "3",
            "--max-epochs", "1", "--subset", "600", "--results-dir", str(tmp_path), "--name", "tf-error",
            "--trials-per-process", "0", *data_args]
    assert cli.main(args) == 128 + signal.SIGINT
    err = capsys.readouterr().err
    assert "interrupted (SIGINT)" in err and "Resume with:" in err and "internal error" not in err
    run = tmp_path / "tf-error"
    assert runs.read_run(run)["status"] == "interrupted"
    statuses = sorted(json.loads(p.read_text())["status"] for p in run.glob("trial_*/trial.json"))
    assert statuses == ["COMPLETED", "RUNNING"]  # the interrupted trial is rerun by a resume, not failed
