"""Distributed search: role flags and environment, waiting for the chief, and a loopback
chief + two workers finishing one search in one directory."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from fashion_tuner import distributed, runs
from fashion_tuner.distributed import ENV_ID, ENV_IP, ENV_PORT, Role
from fashion_tuner.errors import UserError

LOOPBACK_TIMEOUT_S = 540


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_flags_map_onto_keras_tuner_ids():
    chief = distributed.resolve_role("chief", "127.0.0.1:8000", None, environ={})
    assert chief == Role("chief", "127.0.0.1", 8000, "chief")
    worker = distributed.resolve_role("worker", "10.0.0.5:9001", "3", environ={})
    assert worker.tuner_id == "tuner3" and not worker.is_chief
    assert worker.environment() == {ENV_ID: "tuner3", ENV_IP: "10.0.0.5", ENV_PORT: "9001"}
    assert distributed.resolve_role(None, None, None, environ={}) is None


@pytest.mark.parametrize("args, message", [
    (("worker", None, "1"), "needs --oracle-address"),
    (("chief", "localhost", None), "expected HOST:PORT"),
    (("chief", "localhost:99999", None), "expected HOST:PORT"),
    ((None, "localhost:8000", None), "need --role"),
    (("chief", "localhost:8000", "2"), "--worker-id is for --role worker"),
    (("worker", "localhost:8000", "chief2"), "must not contain 'chief'"),
    (("worker", "localhost:8000", "a b"), "letters, digits"),
])
def test_bad_role_flags_are_user_errors(args, message):
    with pytest.raises(UserError, match=message):
        distributed.resolve_role(*args, environ={})


def test_environment_form_keeps_working():
    env = {ENV_ID: "tuner7", ENV_IP: "127.0.0.1", ENV_PORT: "8123"}
    assert distributed.resolve_role(None, None, None, environ=env) == Role("worker", "127.0.0.1", 8123, "tuner7")
    env[ENV_ID] = "chief"
    assert distributed.resolve_role(None, None, None, environ=env).is_chief
    with pytest.raises(UserError, match="KERASTUNER_ORACLE_PORT"):
        distributed.resolve_role(None, None, None, environ={ENV_ID: "chief", ENV_IP: "127.0.0.1"})


def test_role_environment_is_restored(monkeypatch):
    monkeypatch.setenv(ENV_ID, "before")
    monkeypatch.delenv(ENV_IP, raising=False)
    with distributed.role_environment(Role("worker", "127.0.0.1", 8000, "tuner1")):
        assert os.environ[ENV_ID] == "tuner1" and os.environ[ENV_IP] == "127.0.0.1"
    assert os.environ[ENV_ID] == "before" and ENV_IP not in os.environ


def test_chief_refuses_a_busy_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        role = Role("chief", "127.0.0.1", busy.getsockname()[1], "chief")
        with pytest.raises(UserError, match="cannot listen on 127.0.0.1"):
            distributed.check_port_free(role)


def test_worker_waits_for_a_running_chief(tmp_path):
    role = Role("worker", "127.0.0.1", 8000, "tuner1")
    with pytest.raises(UserError, match=r"no running chief .*\(there is no run.json yet\)"):
        distributed.wait_for_chief(tmp_path, role, timeout_s=0.3, poll_s=0.1)
    runs.write_json(tmp_path / runs.RUN_JSON, {"status": "finished", "distributed": {"oracle_address": role.address}})
    (tmp_path / runs.SPLIT_FILE).write_bytes(b"")
    with pytest.raises(UserError, match="status 'finished'"):
        distributed.wait_for_chief(tmp_path, role, timeout_s=0.3, poll_s=0.1)
    runs.write_json(tmp_path / runs.RUN_JSON, {"status": "running", "distributed": {"oracle_address": role.address}})
    assert distributed.wait_for_chief(tmp_path, role, timeout_s=0.3, poll_s=0.1)["status"] == "running"


def _start(args: list[str], log: Path, threads: int | None = None) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    if threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(threads))
    with open(log, "w") as fh:
        return subprocess.Popen([sys.executable, str(REPO / "main.py"), *args], stdout=fh,
                                stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True)


def _kill_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass


@pytest.mark.slow
def test_loopback_chief_and_two_workers_share_one_search(data_args, tmp_path):
    from fashion_tuner.review import review_command

    address = f"127.0.0.1:{free_port()}"
    # the default sampler (priorband) runs in the chief: max_epochs 3, factor 3 is one sweep of 6 trials
    search = ["search", "--space", "mlp", "--tuner", "priorband", "--max-epochs", "3", "--factor", "3",
              "--subset", "600", "--batch-size", "64", "--results-dir", str(tmp_path / "results"),
              "--name", "dist", "--seed", "3", *data_args]
    logs = {name: tmp_path / f"{name}.log" for name in ("chief", "w1", "w2")}
    procs = {"chief": _start([*search, "--role", "chief", "--oracle-address", address], logs["chief"])}
    try:
        procs["w1"] = _start([*search, "--role", "worker", "--oracle-address", address, "--worker-id", "1"],
                             logs["w1"], threads=1)
        procs["w2"] = _start([*search, "--role", "worker", "--oracle-address", address, "--worker-id", "2"],
                             logs["w2"], threads=1)
        deadline = time.monotonic() + LOOPBACK_TIMEOUT_S
        for name, proc in procs.items():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} still running after {LOOPBACK_TIMEOUT_S} s; logs:\n" +
                            "\n".join(f"--- {n}\n{p.read_text()[-1500:]}" for n, p in logs.items()))
        text = {n: p.read_text() for n, p in logs.items()}
        assert all(p.returncode == 0 for p in procs.values()), {n: (p.returncode, text[n][-1500:])
                                                                 for n, p in procs.items()}
    finally:
        _kill_all(list(procs.values()))

    run_dir = tmp_path / "results" / "dist"
    trials = [json.loads(p.read_text()) for p in sorted(run_dir.glob("trial_*/trial.json"))]
    ids = [t["trial_id"] for t in trials]
    assert len(ids) == 6 and len(set(ids)) == 6
    assert all(t["status"] == "COMPLETED" for t in trials)
    # every trial ran on exactly one worker
    done = [int(re.search(r"done \((\d+) trial", text[w]).group(1)) for w in ("w1", "w2")]
    assert sum(done) == 6
    run = runs.read_run(run_dir)
    assert run["status"] == "finished" and run["trials"] == {"COMPLETED": 6}
    assert run["distributed"] == {"role": "chief", "oracle_address": address, "tuner_id": "chief"}
    assert (run_dir / runs.BEST_HP_FILE).is_file() and run["best"]["trial_id"] in ids
    assert "Top 5 trials (6 completed, 0 failed)" in text["chief"]
    oracle = json.loads((run_dir / "oracle.json").read_text())
    draws = oracle["priorband"]["draws"]  # the chief's oracle drew every new configuration (5 new, 1 continued)
    assert len(draws) == 5 and draws[min(draws)] == "defaults"
    assert sum("tuner/trial_id" in t["hyperparameters"]["values"] for t in trials) == 1
    assert review_command([str(run_dir)]) == 0
    assert (run_dir / "review" / "trials.csv").is_file()
