"""Peers at equal wall time: run an approach for a fixed number of seconds, read its anytime curve.

An approach is a command (our ``main.py search``, ``benchmarks/random_cnn.py``,
``benchmarks/optuna_cnn.py``) started in its own process group and stopped (the whole group,
trial subprocesses included) when its wall-clock budget is spent: process start-up, data loading
and every trial count against it alike. Its curve is the best validation accuracy of the trials it
*completed*, against seconds since its start: ours from the ``trial.json`` files Keras Tuner
writes when a trial ends (their modification times), the peers from the JSON lines they append
to ``--progress`` (``{"time": unix seconds, "score": val accuracy}``) after each completed trial.

The functions below the runner are pure (curves in, figures out), for the harness and the tests.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import REPO

GRID_POINTS = 20  # the anytime plot's time grid: budget / GRID_POINTS apart


def run_for(argv: list[str], budget_s: float, log: Path, env: dict | None = None) -> dict:
    """Run ``argv`` (``python`` = this interpreter) in the repository root for at most ``budget_s`` seconds.

    Returns ``{"started": unix s, "wall_s", "rc", "stopped": True when the budget ended it}``; the
    whole process group is stopped (SIGTERM, then SIGKILL 5 s later). Output goes to ``log``.
    """
    real = [sys.executable if i == 0 and a == "python" else a for i, a in enumerate(argv)]
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **(env or {})}
    log.parent.mkdir(parents=True, exist_ok=True)
    started, t0 = time.time(), time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(real, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=full_env,
                                start_new_session=True)
        try:
            rc, stopped = proc.wait(timeout=budget_s), False
        except subprocess.TimeoutExpired:
            rc, stopped = _stop_group(proc), True
    return {"started": started, "wall_s": round(time.perf_counter() - t0, 1), "rc": rc, "stopped": stopped}


def _stop_group(proc: subprocess.Popen) -> int:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


# ----------------------------------------------------------------------------- reading curves

def ours_points(run_dir: Path) -> list[dict]:
    """``[{"time", "score"}]`` of the completed trials of a Keras Tuner project (its trial.json mtimes)."""
    points = []
    for path in Path(run_dir).glob("trial_*/trial.json"):
        try:
            trial = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a trial.json being written when the process was stopped
        score = trial.get("score")
        if trial.get("status") == "COMPLETED" and isinstance(score, (int, float)) and math.isfinite(score):
            points.append({"time": path.stat().st_mtime, "score": float(score)})
    return points


def progress_points(path: Path) -> list[dict]:
    """The ``{"time", "score"}`` lines of a peer's progress file (a cut-off last line is skipped)."""
    points = []
    if Path(path).is_file():
        for line in Path(path).read_text().splitlines():
            try:
                p = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(p.get("score"), (int, float)) and math.isfinite(p["score"]):
                points.append({"time": float(p["time"]), "score": float(p["score"])})
    return points


def best_so_far(points: list[dict], started: float, budget_s: float) -> list[list[float]]:
    """``[[seconds since start, best score so far], ...]``, one pair per improvement within the budget."""
    curve, best = [], -math.inf
    for p in sorted(points, key=lambda p: p["time"]):
        t = round(p["time"] - started, 1)
        if t > budget_s:
            break
        if p["score"] > best:
            best = p["score"]
            curve.append([t, round(best, 4)])
    return curve


# ----------------------------------------------------------------------------- figures

def time_to(curve: list[list[float]], target: float) -> float | None:
    """Seconds until the curve first reaches ``target``; None if it never does."""
    return next((t for t, best in curve if best >= target), None)


def value_at(curve: list[list[float]], t: float) -> float | None:
    """Best score reached by time ``t`` (None before the first completed trial)."""
    best = None
    for ti, b in curve:
        if ti > t:
            break
        best = b
    return best


def spread(values: list[float | None]) -> dict:
    """``{"median", "min", "max"}`` of the values; a missing value (None) counts as worse than all, so the
    median is None when half or more are missing; min/max over those present."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return {"median": None, "min": None, "max": None}
    ranked = present + [math.inf] * (len(values) - len(present))
    median = statistics.median(ranked)
    return {"median": None if math.isinf(median) else median, "min": present[0], "max": present[-1]}


def summarize(curves: dict[str, list[list[float]]], budget_s: float, target: float) -> dict:
    """Per-approach figures over seeds from ``curves`` (``{seed: curve}``): the final best validation
    accuracy, the time to reach ``target`` (a seed that never does counts as slowest) and the
    anytime band (median, min, max of the best so far on a grid of ``GRID_POINTS`` times)."""
    runs = list(curves.values())
    grid = [round(budget_s * (i + 1) / GRID_POINTS, 1) for i in range(GRID_POINTS)]
    finals = [c[-1][1] if c else None for c in runs]
    reach = [time_to(c, target) for c in runs]
    band = []
    for t in grid:
        at = [value_at(c, t) for c in runs]
        s = spread([v for v in at if v is not None])
        band.append({"t": t, "n": sum(v is not None for v in at), **s})
    return {"runs": len(runs), "reached": sum(r is not None for r in reach), "final_val_accuracy": spread(finals),
            "time_to_target_s": spread(reach), "band": band}


# ----------------------------------------------------------------------------- the plot

def plot(entry: dict, path: Path) -> Path:
    """The anytime plot of a ``peers_time`` entry: per approach the median best validation accuracy
    against wall time (minutes), with the min-max band over seeds and the target as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, s in (entry.get("summary") or {}).items():
        band = [b for b in s.get("band", []) if b.get("median") is not None]
        if not band:
            continue
        t = [b["t"] / 60 for b in band]
        line, = ax.step(t, [b["median"] for b in band], where="post", label=f"{label} ({s.get('runs')} seed(s))")
        ax.fill_between(t, [b["min"] for b in band], [b["max"] for b in band], step="post", alpha=0.2,
                        color=line.get_color())
    if entry.get("target") is not None:
        ax.axhline(entry["target"], linestyle="--", color="grey", linewidth=1, label=f"target {entry['target']}")
    ax.set_xlabel("wall time (minutes, each approach on its own)")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title(f"Equal wall time: {entry.get('budget_s', 0) / 60:.1f} min per approach and seed ({entry.get('suite')})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
