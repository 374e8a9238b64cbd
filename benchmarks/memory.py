"""Memory benchmark: resident memory (RSS) of the search over many MLP trials.

    python -m benchmarks.memory [--trials 30] [--epochs 1] [--subset 2000] [--trials-per-process N]
                                [--compare-one-process] [--results-dir DIR]

Runs ``python main.py search`` (random tuner over the unchanged ``mlp`` space, through
``benchmarks/space_rss_mlp.py``, which logs the RSS of the process that ran each trial's fit)
and prints one JSON line. ``growth_mb``: the largest RSS after any later trial minus the RSS after
trial 3 (the first trials warm up TensorFlow's caches), whichever process ran it; goal under 150 MB
for 30 trials (issue 6). The search runs as it does for users: a fresh process every
``--trials-per-process`` trials (the CLI default unless given). ``--compare-one-process`` also runs
the same search in one process (``--trials-per-process 0``) and reports its figures beside.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common
from benchmarks.space_rss_mlp import LOG_ENV
from fashion_tuner.cli import DEFAULT_TRIALS_PER_PROCESS

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GOAL_MB = 150.0
FROM_TRIAL = 3


def measure(args, results_dir: str, per_process: int) -> dict:
    """One search; the RSS series of its trials and the growth figures."""
    log = Path(results_dir) / f"rss-{per_process}.jsonl"
    log.unlink(missing_ok=True)
    argv = [sys.executable, str(REPO / "main.py"), "search", "--space", str(HERE / "space_rss_mlp.py"),
            "--tuner", "random", "--max-trials", str(args.trials), "--max-epochs", str(args.epochs),
            "--subset", str(args.subset), "--results-dir", results_dir, "--name", f"memory-{per_process}",
            "--overwrite", "--seed", str(args.seed), "--trials-per-process", str(per_process),
            *(["--val-size", str(args.val_size)] if args.val_size else []),
            *(["--data-dir", args.data_dir] if args.data_dir else []), *(["--skip-md5"] if args.skip_md5 else [])]
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, LOG_ENV: str(log), "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"search exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    after = [r["after_fit_mb"] for r in rows]
    first = min(FROM_TRIAL, len(after)) - 1
    growth = max(after[first:]) - after[first] if after else None
    return {"trials_per_process": per_process, "processes": len({r["pid"] for r in rows}),
            "rss_after_fit_mb": after, "growth_mb": None if growth is None else round(growth, 1),
            "growth_last_mb": None if not after else round(after[-1] - after[first], 1),
            "peak_rss_mb": max(after) if after else None, "wall_s": round(wall, 1),
            "command": " ".join(["python", "main.py", *argv[2:]])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--trials-per-process", type=int, default=DEFAULT_TRIALS_PER_PROCESS)
    parser.add_argument("--compare-one-process", action="store_true")
    parser.add_argument("--val-size", type=float, default=None)
    parser.add_argument("--results-dir", default=None, help="where the runs go (default: a temp dir)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-md5", action="store_true")
    parser.add_argument("--seed", type=int, default=common.SEED)
    args = parser.parse_args(argv)

    results_dir = str(Path(args.results_dir or tempfile.mkdtemp(prefix="fashion_tuner_memory_")).resolve())
    ours = measure(args, results_dir, args.trials_per_process)
    out = {"trials": len(ours["rss_after_fit_mb"]), "epochs": args.epochs, "subset": args.subset,
           "growth_from_trial": FROM_TRIAL, **ours, "goal_mb": GOAL_MB,
           "meets_goal": None if ours["growth_mb"] is None else ours["growth_mb"] < GOAL_MB}
    if args.compare_one_process and args.trials_per_process != 0:
        out["one_process"] = measure(args, results_dir, 0)
    common.emit(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
