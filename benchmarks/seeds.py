"""Accuracy rows over several seeds: per-seed rows, their mean and standard deviation, merging runs.

An accuracy entry (``figures.accuracy.runs.<row>`` of the results file) holds ``seeds``, one row per
seed (``seed``, ``test_accuracy``, ``test_accuracy_ci95``, ``wall_s``, ...), and the summary
:func:`summarize` computes from them. Entries written before seeds existed hold one run's fields at
the top level; :func:`seed_rows` reads them as one seed. Pure functions, no I/O.
"""

from __future__ import annotations

import statistics

from fashion_tuner.stats import CI_METHOD, accuracy_interval

# What must match for seeds from two invocations to be one row (else the newer run replaces the row).
SAME_ROW = ("suite", "definition", "code_digest")


def wilson(accuracy: float | None, n: int | None) -> list[float] | None:
    """``[low, high]`` (4 decimals) of the Wilson 95 % interval of ``accuracy`` on ``n`` images; None without both."""
    if not isinstance(accuracy, (int, float)) or not isinstance(n, int) or n <= 0:
        return None
    return [round(v, 4) for v in accuracy_interval(float(accuracy), n)]


def seed_rows(entry: dict) -> list[dict]:
    """The per-seed rows of an accuracy entry; an entry from before seeds is one row (its split's seed)."""
    if isinstance(entry.get("seeds"), list):
        return entry["seeds"]
    seed = (entry.get("split") or {}).get("seed", 42)
    return [{**{k: v for k, v in entry.items() if k not in ("machine", "versions", "data_md5")}, "seed": seed,
             "status": entry.get("status", "ok")}]


def summarize(rows: list[dict]) -> dict:
    """Mean and sample SD (n - 1) of test accuracy over the ok rows, wall time mean and max (s).

    ``sd_test_accuracy`` is None for fewer than two ok seeds; every value None when none is ok.
    """
    ok = [r for r in rows if r.get("status", "ok") == "ok" and isinstance(r.get("test_accuracy"), (int, float))]
    accs = [float(r["test_accuracy"]) for r in ok]
    walls = [float(r["wall_s"]) for r in ok if isinstance(r.get("wall_s"), (int, float))]
    return {"n_seeds": len(ok), "seeds_failed": [r.get("seed") for r in rows if r not in ok],
            "mean_test_accuracy": statistics.fmean(accs) if accs else None,
            "sd_test_accuracy": statistics.stdev(accs) if len(accs) > 1 else None,
            "mean_wall_s": round(statistics.fmean(walls), 1) if walls else None,
            "max_wall_s": round(max(walls), 1) if walls else None, "ci_method": CI_METHOD}


def merge(old: dict | None, new: dict) -> dict:
    """``new`` with the seeds of ``old`` that it did not rerun, when both are the same row (:data:`SAME_ROW`:
    suite, row definition and searched code); otherwise ``new`` as it is. The summary, status, commands
    and rerun line are recomputed over the merged seeds."""
    rows = list(new["seeds"])
    if old and isinstance(old.get("seeds"), list) and all(old.get(k) == new.get(k) for k in SAME_ROW):
        rerun = {r.get("seed") for r in rows}
        rows = [r for r in old["seeds"] if r.get("seed") not in rerun] + rows
    merged = {**new, "seeds": rows, **summarize(rows)}
    merged["commands"] = [c for r in rows for c in r.get("commands", [])]
    if "rerun" in new:  # the command that reruns every seed of the merged row
        seeds = [r.get("seed") for r in rows]
        merged["rerun"] = new["rerun"].split(" --seeds")[0] + (
            f" --seeds {' '.join(map(str, seeds))}" if seeds != [42] else "")
    merged["status"] = "ok" if merged["n_seeds"] and not merged["seeds_failed"] else (
        "partial" if merged["n_seeds"] else "failed")
    if merged["status"] != "ok":
        merged["error"] = "; ".join(f"seed {r.get('seed')}: {r.get('error', 'failed')}" for r in rows
                                    if r.get("seed") in merged["seeds_failed"])
    return merged
