"""Memory benchmark: resident memory (RSS) over many MLP trials in one search process.

    python -m benchmarks.memory [--trials 30] [--epochs 1] [--subset 2000] [--results-dir DIR]

Runs ``fashion_tuner.tuning.run_search`` in this process (random tuner over the unchanged
``mlp`` space, through ``benchmarks/space_rss_mlp.py``, which records the process RSS from
``/proc/self/status`` after every trial's fit) and prints one JSON line with the series and
``growth_mb``: RSS after trial ``--trials`` minus RSS after trial 3 (the first trials warm up
TensorFlow's caches). Goal: under 150 MB for 30 trials (issue 6).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

from benchmarks import common

HERE = Path(__file__).resolve().parent
GOAL_MB = 150.0
FROM_TRIAL = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--val-size", type=float, default=None)
    parser.add_argument("--results-dir", default=None, help="where the run goes (default: a temp dir)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-md5", action="store_true")
    parser.add_argument("--seed", type=int, default=common.SEED)
    args = parser.parse_args(argv)

    from fashion_tuner.tuning import SearchConfig, run_search

    results_dir = args.results_dir or tempfile.mkdtemp(prefix="fashion_tuner_memory_")
    cfg = SearchConfig(space=str(HERE / "space_rss_mlp.py"), tuner="random", max_trials=args.trials,
                       max_epochs=args.epochs, subset=args.subset, val_size=args.val_size, results_dir=results_dir,
                       name="memory", overwrite=True, seed=args.seed, data_dir=args.data_dir, skip_md5=args.skip_md5,
                       command=["python", "-m", "benchmarks.memory"])
    start_mb = common.rss_mb()
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        run_search(cfg)
    wall = time.perf_counter() - started
    after = [r["after_fit_mb"] for r in common.RSS_LOG]
    first = min(FROM_TRIAL, len(after)) - 1
    growth = after[-1] - after[first] if after else None
    common.emit({"trials": len(after), "epochs": args.epochs, "subset": args.subset, "rss_start_mb": round(start_mb, 1),
                 "rss_after_search_mb": round(common.rss_mb(), 1), "rss_after_fit_mb": after,
                 "rss_before_fit_mb": [r["before_fit_mb"] for r in common.RSS_LOG],
                 "growth_from_trial": first + 1, "growth_mb": None if growth is None else round(growth, 1),
                 "goal_mb": GOAL_MB, "meets_goal": None if growth is None else growth < GOAL_MB,
                 "wall_s": round(wall, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
