"""Every kind of command we print runs as printed from the repository root: the search's ``next:``
line (with the space file it needs), the ``tensorboard --logdir`` view line (the venv's tensorboard,
which is not on PATH), and the set-up line a Python without the requirements gets."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from fashion_tuner import hints

SPACE = "tests/spaces/mixed_space.py"  # relative to the repository root, as a user types it there


def printed(stdout: str, prefix: str) -> str:
    """The command on the last line starting with ``prefix`` (after ``view: `` when the line has one)."""
    line = [ln for ln in stdout.splitlines() if ln.startswith(prefix)][-1]
    return line.split("view: ", 1)[1].split("  (")[0] if "view: " in line else line[len(prefix):]


@pytest.mark.slow
def test_search_with_a_space_file_prints_a_next_step_that_runs(tmp_path, data_args):
    result = run_cli("search", "--space", SPACE, "--tuner", "random", "--max-trials", "1", "--max-epochs", "1",
                     "--subset", "300", "--results-dir", str(tmp_path), "--name", "next", *data_args)
    assert result.returncode == 0, result.stderr[-1500:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("next: "), lines[-3:]  # the last line, after the tensorboard and optuna lines
    command = printed(result.stdout, "next: ")
    assert f"--space {SPACE}" in command  # retrain-best runs a space file only when it is named again
    assert not command.startswith("python ")  # the interpreter that ran the search, not whatever `python` is
    viewer = shlex.split(printed(result.stdout, "tensorboard: "))[0]
    assert viewer == hints.tool("tensorboard") and (REPO / viewer).is_file() or viewer == "tensorboard"
    proc = subprocess.run(command + " --epochs 1", shell=True, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert (tmp_path / "next" / "report" / "report.html").is_file()
    # not a terminal: a line per epoch inside the trial and the retraining (fashion_tuner.fitprogress)
    assert "trial 0 epoch 1/1: " in result.stdout and "[retrain-best] trial 0 epoch 1/1: " in proc.stdout


@pytest.mark.slow
def test_review_tensorboard_view_line_runs_tensorboard_on_the_logdir(tiny_run, tmp_path):
    """The printed command, run as printed plus TensorBoard's own --inspect (it reads the logdir the way the server
    does and exits: a server's start-up took over 90 s on a loaded CI machine), finds the two trials' event files."""
    out = tmp_path / "tb"
    result = run_cli("review", str(tiny_run), "--tensorboard", str(out))
    assert result.returncode == 0, result.stderr[-1500:]
    command = printed(result.stdout, "view: ")
    if hints.tool("tensorboard") != "tensorboard":  # the venv is not on PATH: its script, by its path
        assert command.startswith(f"{hints.tool('tensorboard')} --logdir ")
    inspected = subprocess.run(f"{command} --inspect", shell=True, cwd=REPO, capture_output=True, text=True,
                               timeout=300)
    assert inspected.returncode == 0, inspected.stderr[-1500:]
    text = inspected.stdout + inspected.stderr
    assert "trial_0" in text and "trial_1" in text and "Event statistics" in text  # tiny_run's two trials


def test_tool_names_the_script_beside_this_interpreter(monkeypatch, tmp_path):
    venv_bin = REPO / ".venv" / "bin"
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))  # not activated: `tensorboard` alone is "command not found"
    if (venv_bin / "tensorboard").is_file():
        assert hints.tool("tensorboard") == ".venv/bin/tensorboard"
    monkeypatch.setenv("PATH", str(venv_bin))  # activated: the bare name finds the same script
    assert hints.tool("tensorboard") == "tensorboard"
    assert hints.tool("no-such-tool") == "no-such-tool"


def without_tensorflow(tmp_path: Path) -> Path:
    """A folder of links to this venv's site-packages, TensorFlow left out: with ``python -S`` and it as
    PYTHONPATH, a Python that has the other requirements but no TensorFlow, and is not the venv."""
    import site

    folder = tmp_path / "site"
    folder.mkdir()
    for entry in Path(site.getsitepackages()[0]).iterdir():
        if not entry.name.lower().startswith("tensorflow"):
            (folder / entry.name).symlink_to(entry)
    return folder


def test_a_python_without_tensorflow_is_told_to_set_up_and_that_runs(tmp_path):
    env = {"PYTHONPATH": str(without_tensorflow(tmp_path))}
    proc = run_cli("search", "--space", "mlp", "--results-dir", str(tmp_path / "r"), env=env, python=[sys.executable, "-S"])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "pip install" not in lines[0]  # pip would install into this Python, not the project's
    assert "`bash scripts/setup.sh`" in lines[0] and "`.venv/bin/python main.py ...`" in lines[0]
    assert (REPO / "scripts" / "setup.sh").is_file()
    if not (REPO / ".venv" / "bin" / "python").is_file():
        pytest.skip("no .venv in this checkout (scripts/setup.sh makes it)")
    then = subprocess.run(".venv/bin/python main.py list --results-dir " + shlex.quote(str(tmp_path / "r")), shell=True,
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert then.returncode == 0, then.stderr
