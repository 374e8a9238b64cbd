"""Wall time of one MLP search budget: 2 workers x 1 thread against 1 worker x 2 threads.

Both layouts run the same seeded random search (so the same trials) as a loopback
distributed search: a chief on 127.0.0.1 and the worker processes, each worker's TensorFlow
pools capped with TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS. Timed from launch until
the last worker exits (the budget is done; the chief itself notices within its 20 s poll,
reported separately). Process start-up (TensorFlow import, data load) is included.
Prints one JSON line; goal: ``ratio_2x1_over_1x2 <= 0.75``.

    .venv/bin/python benchmarks/scale_workers.py [--trials 8] [--epochs 2] [--subset 10000] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 1800


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_layout(workers: int, threads: int, args, root: Path) -> dict:
    address = f"127.0.0.1:{free_port()}"
    name = f"w{workers}x{threads}"
    search = [sys.executable, str(REPO / "main.py"), "search", "--space", "mlp", "--tuner", "random",
              "--max-trials", str(args.trials), "--max-epochs", str(args.epochs), "--subset", str(args.subset),
              "--seed", "11", "--results-dir", str(root), "--name", name]
    if args.data_dir:
        search += ["--data-dir", args.data_dir]
    base_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    logs = []
    procs = []
    start = time.monotonic()
    try:
        log = open(root / f"{name}-chief.log", "w")
        logs.append(log)
        chief = subprocess.Popen([*search, "--role", "chief", "--oracle-address", address], stdout=log,
                                 stderr=subprocess.STDOUT, env={**base_env, "TF_NUM_INTRAOP_THREADS": "1",
                                                                "TF_NUM_INTEROP_THREADS": "1"})
        procs.append(chief)
        env = {**base_env, "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": str(threads)}
        for i in range(workers):
            log = open(root / f"{name}-worker{i}.log", "w")
            logs.append(log)
            procs.append(subprocess.Popen([*search, "--role", "worker", "--oracle-address", address,
                                           "--worker-id", str(i)], stdout=log, stderr=subprocess.STDOUT, env=env))
        for proc in procs[1:]:
            proc.wait(timeout=TIMEOUT_S)
        workers_done = time.monotonic() - start
        chief.wait(timeout=120)
        chief_done = time.monotonic() - start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for log in logs:
            log.close()
    codes = [p.returncode for p in procs]
    if any(codes):
        raise SystemExit(f"{name}: exit codes {codes}; logs in {root}")
    run = json.loads((root / name / "run.json").read_text())
    return {"workers": workers, "threads": threads, "wall_s": round(workers_done, 1),
            "chief_exit_s": round(chief_done, 1), "trials": run["trials"], "best": run["best"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--subset", type=int, default=10000)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scale_workers-") as tmp:
        one = run_layout(1, 2, args, Path(tmp))
        two = run_layout(2, 1, args, Path(tmp))
    print(json.dumps({"benchmark": "scale_workers", "cpu_count": os.cpu_count(), "trials": args.trials,
                      "epochs": args.epochs, "subset": args.subset, "1x2": one, "2x1": two,
                      "ratio_2x1_over_1x2": round(two["wall_s"] / one["wall_s"], 3)}))


if __name__ == "__main__":
    main()
