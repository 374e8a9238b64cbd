"""Peer comparisons: our search against a plain Keras Tuner script and Optuna TPE.

- ``peers`` / ``peers_mlp``: at the epoch budget our search actually trained (:func:`equal_budget`);
- ``peers_time``: at equal wall-clock time, over seeds (:func:`bench_peers_time`, see
  :mod:`benchmarks.anytime`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from benchmarks import common
from benchmarks.common import failure, last_json_line
from benchmarks.context import Context, StepFailed
from benchmarks.steps import row_search, search
from benchmarks.suites import DEFAULT_SEEDS, PEERS_MLP_ARGS, PEERS_TIME

log = logging.getLogger(__name__)

LABELS = {"keras_tuner_mlp": "plain Keras Tuner Hyperband, MLP (hand-written style)",
          "optuna_cnn": "Optuna TPE + median pruner, same CNN space"}


def bench_peers(ctx: Context) -> dict:
    """Our default CNN search (the ``cnn`` row's search at the first seed) against both peers."""
    seed = (ctx.seeds or DEFAULT_SEEDS)[0]
    return equal_budget(ctx, "peers", row_search(ctx, "cnn", seed), ("keras_tuner_mlp", "optuna_cnn"))


def bench_peers_mlp(ctx: Context) -> dict:
    """Like for like: our MLP search, at the CNN default's budget shape, against the plain MLP script."""
    return equal_budget(ctx, "peers_mlp", search(ctx, "mlp", "peer-ours-mlp", PEERS_MLP_ARGS[ctx.suite]),
                        ("keras_tuner_mlp",))


def split_args(ctx: Context, run: dict) -> list[str]:
    """The data flags that give a peer the split of our run ``run`` (run.json): seed, subset, validation size."""
    split = run.get("split", {})
    data = ["--seed", str(run.get("args", {}).get("seed", 42))]
    if split.get("subset"):
        data += ["--subset", str(split["subset"])]
    if split.get("val_size"):
        data += ["--val-size", str(split["val_size"])]
    return data + ctx.data_args()


def evaluate_ours(ctx: Context, name: str, ours: dict, commands: list[str]) -> dict:
    """Our search's best trial checkpoint on the held-out test split (``benchmarks.peers evaluate``)."""
    ev = ctx.run(["python", "-m", "benchmarks.peers", "evaluate", ctx.rel(Path(ours["run_dir"])),
                  *ctx.data_dir_args()], f"{name}-evaluate-ours")
    commands.append(ev["command"])
    out = last_json_line(ev["stdout"])
    if ev["rc"] != 0 or out is None:
        raise StepFailed(f"{ev['command']}: {failure(ev)}", commands)
    return {**out, "commands": [ours["command"], ev["command"]]}


def equal_budget(ctx: Context, name: str, ours: dict, keys: tuple[str, ...]) -> dict:
    """Run the peers ``keys`` at the epoch budget our search ``ours`` trained, on its split; evaluate each
    best trial once on the held-out test split; the entry ``name`` with one row per approach."""
    commands = [ours["command"]]
    budget = int(ours["epochs_trained"] or ours["epochs_nominal"])
    space = ours["run"].get("space")
    rows = {"ours": {"approach": f"fashion_tuner search --space {space} (Hyperband, EarlyStopping)",
                     "wall_s": ours["wall_s"], "epochs_used": budget, **evaluate_ours(ctx, name, ours, commands)}}
    data = split_args(ctx, ours["run"])
    max_epochs = int(ours["run"].get("args", {}).get("max_epochs") or 12)
    peers = {
        "keras_tuner_mlp": ["python", "-m", "benchmarks.plain_keras_tuner", "--epoch-budget", str(budget),
                            "--work-dir", ctx.rel(ctx.work / f"{name}-keras-tuner"), *data],
        "optuna_cnn": ["python", "-m", "benchmarks.optuna_cnn", "--epoch-budget", str(budget), "--max-epochs",
                       str(max_epochs), "--work-dir", ctx.rel(ctx.work), *data],
    }
    errors = []
    for key in keys:
        result = ctx.run(peers[key], f"{name}-{key}")
        commands.append(result["command"])
        out = last_json_line(result["stdout"])
        if result["rc"] != 0 or out is None:
            errors.append(f"{key}: {failure(result)}")
            rows[key] = {"approach": LABELS[key], "status": "failed", "error": failure(result),
                         "commands": [result["command"]]}
            continue
        rows[key] = {"approach": LABELS[key], **out, "wall_s": round(result["wall_s"], 1),
                     "commands": [result["command"]]}
    add_ratios(rows)
    entry = ctx.entry(name, commands, epoch_budget=budget, budget_from=f"epochs our {space} search trained",
                      ours_search_reused=ours["reused"], rows=rows)
    if errors:
        entry.update(status="failed", error="; ".join(errors))
    return entry


def add_ratios(rows: dict) -> None:
    """Each peer row's test accuracy and wall time as a ratio of ours (in place)."""
    for key, row in rows.items():
        if key != "ours" and row.get("test_accuracy") is not None:
            row["accuracy_ratio_to_ours"] = round(row["test_accuracy"] / rows["ours"]["test_accuracy"], 4)
            row["wall_ratio_to_ours"] = round(row["wall_s"] / rows["ours"]["wall_s"], 3)


# ----------------------------------------------------------------------------- equal wall time

TIME_APPROACHES = {"ours": "fashion_tuner search --space cnn (Hyperband, EarlyStopping)",
                   "random": "plain Keras Tuner RandomSearch, same CNN space",
                   "optuna": "Optuna TPE + median pruner, same CNN space"}


def time_commands(ctx: Context, seed: int, progress: dict[str, Path]) -> dict[str, list[str]]:
    """The three approaches' commands at ``seed``, on the same data, split and validation set."""
    p = PEERS_TIME[ctx.suite]
    data = ["--subset", str(p["subset"]), "--seed", str(seed), *(["--val-size", str(p["val_size"])] if p["val_size"]
                                                                 else []), *ctx.data_args()]
    epochs = ["--max-epochs", str(p["max_epochs"])]
    return {
        # --tuner hyperband: the sampler every stored peers_time run used (priorband is measured by search_value)
        "ours": ["python", "main.py", "search", "--space", "cnn", "--tuner", "hyperband", "--name", f"time-ours-s{seed}",
                 "--results-dir", ctx.rel(ctx.work), "--overwrite", "--time-budget", f"{p['budget_s']}s", *epochs, *data],
        "random": ["python", "-m", "benchmarks.random_cnn", "--progress", ctx.rel(progress["random"]),
                   "--work-dir", ctx.rel(ctx.work), *epochs, *data],
        "optuna": ["python", "-m", "benchmarks.optuna_cnn", "--epoch-budget", "1000000", "--progress",
                   ctx.rel(progress["optuna"]), "--work-dir", ctx.rel(ctx.work), *epochs, *data],
    }


def time_run(ctx: Context, approach: str, argv: list[str], seed: int, progress: Path) -> tuple[dict, list]:
    """One approach at one seed for the suite's wall budget: its run record and anytime curve."""
    from benchmarks.anytime import best_so_far, ours_points, progress_points, run_for

    budget = PEERS_TIME[ctx.suite]["budget_s"]
    progress.unlink(missing_ok=True)
    log_file = ctx.logs / f"peers_time-{approach}-s{seed}.log"
    log.info("peers_time %s seed %s: %s s of %s", approach, seed, budget, common.shown(argv))
    result = run_for(argv, budget, log_file)
    points = ours_points(ctx.work / f"time-ours-s{seed}") if approach == "ours" else progress_points(progress)
    record = {"command": common.shown(argv), **result, "status": "ok", "trials_completed": len(points),
              "git_commit": common._git_commit()}
    if not result["stopped"] and result["rc"] != 0:
        tail = [ln for ln in log_file.read_text().splitlines() if ln.strip()][-1:] or ["no output"]
        record.update(status="failed", error=f"exit {result['rc']}: {tail[0][:300]}")
    return record, best_so_far(points, result["started"], budget)


def bench_peers_time(ctx: Context) -> dict:
    """Ours, Keras Tuner RandomSearch and Optuna TPE over the CNN space, each given the same wall-clock
    seconds per seed: anytime curves, final best validation accuracy and time to the target, over seeds.
    ``ctx.approaches`` (``--approaches``): run only those; :func:`merge_time` keeps the others' earlier runs."""
    p = PEERS_TIME[ctx.suite]
    seeds = list(ctx.seeds or DEFAULT_SEEDS)
    chosen = [a for a in TIME_APPROACHES if not ctx.approaches or a in ctx.approaches]
    runs: dict[str, dict] = {a: {} for a in chosen}
    curves: dict[str, dict] = {a: {} for a in chosen}
    for seed in seeds:
        progress = {a: ctx.work / f"time-{a}-s{seed}.progress.jsonl" for a in TIME_APPROACHES}
        for approach, argv in time_commands(ctx, seed, progress).items():
            if approach in chosen:
                runs[approach][str(seed)], curves[approach][str(seed)] = time_run(ctx, approach, argv, seed,
                                                                                   progress[approach])
    entry = ctx.entry("peers_time", [], budget_s=p["budget_s"], target=p["target"], seeds=seeds,
                      max_epochs=p["max_epochs"], subset=p["subset"], runs=runs, curves=curves)
    return with_time_summary(entry)


def with_time_summary(entry: dict) -> dict:
    """``entry`` (a ``peers_time`` figure) with its commands, summary, speed-up and status computed from
    its ``runs`` and ``curves`` (``{approach: {seed: ...}}``)."""
    from benchmarks.anytime import summarize as anytime_summary

    runs, curves = entry["runs"], entry["curves"]
    summary = {TIME_APPROACHES[a]: {"key": a, **anytime_summary(curves[a], entry["budget_s"], entry["target"])}
               for a in TIME_APPROACHES if a in curves}
    errors = [f"{a} seed {s}: {r['error']}" for a, by_seed in runs.items() for s, r in by_seed.items()
              if r["status"] != "ok"]
    entry = {**entry, "commands": [r["command"] for by_seed in runs.values() for r in by_seed.values()],
             "summary": summary, "speedup_vs_random": speedup(summary), "status": "failed" if errors else "ok"}
    entry.pop("error", None)
    if errors:
        entry["error"] = "; ".join(errors)
    return entry


# What must match for seeds from two invocations to be one peers_time figure (else the newer replaces it).
SAME_TIME_FIGURE = ("suite", "budget_s", "target", "max_epochs", "subset")


def merge_time(old: dict | None, new: dict) -> dict:
    """``new`` with the runs of ``old`` (an approach at a seed) that it did not rerun, when both measured
    the same thing (:data:`SAME_TIME_FIGURE`); otherwise ``new`` as it is. A run without its own
    ``git_commit`` gets the one its figure was measured at. Summary, speed-up, commands and the rerun line
    cover every run."""
    if not old or not isinstance(old.get("runs"), dict) or any(old.get(k) != new.get(k) for k in SAME_TIME_FIGURE):
        return new
    kept = {a: [s for s in old["runs"].get(a, {}) if s not in new["runs"].get(a, {})] for a in TIME_APPROACHES}
    if not any(kept.values()):
        return new
    old_commit, new_commit = ((e.get("versions") or {}).get("git_commit") for e in (old, new))
    runs, curves = {}, {}
    for a in TIME_APPROACHES:
        runs[a] = {s: {"git_commit": old_commit, **old["runs"][a][s]} for s in kept[a]} | {
            s: {"git_commit": new_commit, **r} for s, r in new["runs"].get(a, {}).items()}
        curves[a] = {s: old["curves"][a][s] for s in kept[a] if s in old.get("curves", {}).get(a, {})} | (
            new["curves"].get(a, {}))
    seeds = [s for s in old.get("seeds", []) if s not in new["seeds"]] + list(new["seeds"])
    rerun = new["rerun"].split(" --seeds")[0] + f" --seeds {' '.join(map(str, seeds))}"
    return with_time_summary({**new, "seeds": seeds, "runs": runs, "curves": curves, "rerun": rerun})


def speedup(summary: dict) -> float | None:
    """Median time to the target of random search over ours (> 1: ours is faster); None if either never gets there."""
    by_key = {s["key"]: s for s in summary.values()}
    if not {"ours", "random"} <= by_key.keys():
        return None
    ours, random = (by_key[k]["time_to_target_s"]["median"] for k in ("ours", "random"))
    return round(random / ours, 2) if ours and random else None
