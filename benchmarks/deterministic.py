"""Determinism benchmark: the slowdown of ``main.py search --deterministic``.

    python -m benchmarks.deterministic [--space mlp] [--subset 2000] [--max-trials 2] [--max-epochs 2] [--repeats 3]

Runs the same small random search (``python main.py search ...``) with and without
``--deterministic``, alternating, ``--repeats`` times each, and prints one JSON line: the wall
times, their medians, ``slowdown`` (median deterministic / median default) and whether the
deterministic runs reproduced each other's trial scores exactly.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from benchmarks.common import emit, failure, run_command


def trial_scores(run_dir: Path) -> dict:
    scores = {}
    for path in sorted(run_dir.glob("trial_*/trial.json")):
        t = json.loads(path.read_text())
        scores[t["trial_id"]] = t.get("score")
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="mlp")
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--val-size", type=float, default=None)
    parser.add_argument("--max-trials", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results-dir", default=None, help="where the runs go (default: a temp dir)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-md5", action="store_true")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per search at most")
    args = parser.parse_args(argv)

    results_dir = Path(args.results_dir or tempfile.mkdtemp(prefix="fashion_tuner_det_"))
    base = ["python", "main.py", "search", "--space", args.space, "--tuner", "random", "--max-trials",
            str(args.max_trials), "--max-epochs", str(args.max_epochs), "--subset", str(args.subset),
            "--results-dir", str(results_dir), "--overwrite"]
    if args.val_size:
        base += ["--val-size", str(args.val_size)]
    if args.data_dir:
        base += ["--data-dir", args.data_dir]
    if args.skip_md5:
        base.append("--skip-md5")
    walls = {"default": [], "deterministic": []}
    scores, commands = [], []
    for i in range(args.repeats):
        for mode in ("default", "deterministic"):
            name = f"det-{mode}-{i}"
            argv_i = base + ["--name", name] + (["--deterministic"] if mode == "deterministic" else [])
            result = run_command(argv_i, timeout=args.timeout)
            commands.append(result["command"])
            if result["rc"] != 0:
                emit({"error": f"{result['command']}: {failure(result)}", "commands": commands})
                return 1
            walls[mode].append(round(result["wall_s"], 2))
            if mode == "deterministic":
                scores.append(trial_scores(results_dir / name))
    med = {m: statistics.median(w) for m, w in walls.items()}
    emit({"space": args.space, "subset": args.subset, "max_trials": args.max_trials, "max_epochs": args.max_epochs,
          "repeats": args.repeats, "wall_s": walls, "median_s": {m: round(v, 2) for m, v in med.items()},
          "slowdown": round(med["deterministic"] / med["default"], 3),
          "deterministic_reproducible": (all(s == scores[0] for s in scores[1:]) if len(scores) > 1 else None),
          "commands": commands})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
