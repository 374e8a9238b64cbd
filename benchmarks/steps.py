"""The benchmark steps on our own CLI: searches, accuracy rows over seeds, overhead, scale, memory,
determinism. Each step runs commands in subprocesses (exactly what a user would type) and returns
one results-file entry (:meth:`Context.entry`); a failed command raises :class:`StepFailed`.
The peer comparisons are in :mod:`benchmarks.peer_steps`."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from benchmarks import common
from benchmarks.common import failure, last_json_line
from benchmarks.context import HERE, Context, StepFailed, now
from benchmarks.seeds import wilson
from benchmarks.suites import (ABLATION, ACCURACY_ROWS, DEFAULT_SEEDS, DETERMINISTIC, FIDELITY, MEMORY, OVERHEAD,
                               PAIRS_SETTING, ROOFLINE_SETTING, SAMPLER_SYNTHETIC, SCALE_SCRIPTS,
                               SEARCH_ARGS)
from fashion_tuner.stats import CI_METHOD

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- our searches

def search(ctx: Context, space: str, name: str, extra: list[str] | None = None) -> dict:
    """``main.py search`` into ``work/<name>`` (reused when an identical finished search of the same code,
    :func:`common.code_digest`, is there).

    Returns ``{"command", "wall_s", "epochs_trained", "epochs_nominal", "run": run.json, "run_dir", "reused"}``.
    """
    argv = ["python", "main.py", "search", "--space", space, "--name", name, "--results-dir", ctx.rel(ctx.work),
            "--overwrite", "--verbose", "2", *SEARCH_ARGS[ctx.suite], *(extra or []), *ctx.data_args()]
    command = common.shown(argv)
    if name in ctx.searches and ctx.searches[name]["command"] == command:
        return {**ctx.searches[name], "reused": True}
    done = _finished_search(ctx, name, command)
    if done is None:
        done = _run_search(ctx, argv, name, command)
    ctx.searches[name] = done
    return done


def _finished_search(ctx: Context, name: str, command: str) -> dict | None:
    """The search ``name`` a previous invocation finished with the same command, suite and code, else None."""
    run_dir, sidecar = ctx.work / name, ctx.work / f"{name}.bench.json"
    if not (sidecar.is_file() and (run_dir / "run.json").is_file()):
        return None
    saved = json.loads(sidecar.read_text())
    run = json.loads((run_dir / "run.json").read_text())
    if (saved.get("command") == command and run.get("status") == "finished" and run.get("finished") == saved.get(
            "finished") and saved.get("suite") == ctx.suite and saved.get("code_digest") == common.code_digest()):
        log.info("%s: reusing the finished search of %s (%s)", name, saved["date"], command)
        return {**saved, "run": run, "run_dir": str(run_dir), "reused": True}
    return None


def _run_search(ctx: Context, argv: list[str], name: str, command: str) -> dict:
    from benchmarks.peers import count_epoch_lines, nominal_epochs

    run_dir = ctx.work / name
    result = ctx.run(argv, f"search-{name}")
    if result["rc"] != 0:
        raise StepFailed(f"{command}: {failure(result)}", [command])
    run = json.loads((run_dir / "run.json").read_text())
    max_epochs = int(run.get("args", {}).get("max_epochs") or 0)
    trained = run.get("epochs_trained")
    if not isinstance(trained, int):
        trained = count_epoch_lines(result["stdout"])
    done = {"command": command, "wall_s": round(result["wall_s"], 1), "epochs_trained": trained,
            "epochs_nominal": nominal_epochs(run_dir, max_epochs), "date": now(), "suite": ctx.suite,
            "finished": run.get("finished"), "git_commit": common._git_commit(), "code_digest": common.code_digest()}
    (ctx.work / f"{name}.bench.json").write_text(json.dumps(done, indent=2) + "\n")
    return {**done, "run": run, "run_dir": str(run_dir), "reused": False}


def transfer_weights() -> str:
    """``imagenet`` when the Keras cache holds a MobileNetV2 file, else ``none`` (no downloads here)."""
    models = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    return "imagenet" if any(models.glob("mobilenet_v2*no_top*")) else "none"


def row_search(ctx: Context, row: str, seed: int) -> dict:
    """The search of accuracy row ``row`` at ``seed`` (run name ``bench-<row>-s<seed>``); the peers reuse it."""
    spec = ACCURACY_ROWS[row]
    extra = spec.search_extra(ctx.suite) + ["--seed", str(seed)]
    if spec.space == "transfer":
        extra += ["--weights", transfer_weights()]
    return search(ctx, spec.space, f"bench-{row}-s{seed}", extra)


# ----------------------------------------------------------------------------- accuracy rows

def bench_accuracy(ctx: Context, row: str) -> dict:
    """Accuracy row ``row`` at every seed of the context: search, retrain-best, held-out test accuracy.

    The entry holds ``seeds`` (one :func:`accuracy_seed` row each); :func:`benchmarks.seeds.merge`
    adds the summary (mean, sd) and any earlier seeds of the same row.
    """
    spec = ACCURACY_ROWS[row]
    rows = []
    for seed in ctx.seeds or DEFAULT_SEEDS:
        try:
            rows.append(accuracy_seed(ctx, row, seed))
        except StepFailed as exc:
            log.warning("%s seed %s: FAILED: %s", row, seed, exc)
            rows.append({"seed": seed, "status": "failed", "error": str(exc), "commands": exc.commands, "date": now()})
    definition = {"space": spec.space, "search_args": SEARCH_ARGS[ctx.suite] + spec.search_extra(ctx.suite),
                  "retrain_args": spec.retrain_extra(ctx.suite), "note": spec.note,
                  "total_s": spec.total_s if ctx.suite == "full" else None}
    return ctx.entry(row, [c for r in rows for c in r["commands"]], space=spec.space, definition=definition,
                     code_digest=common.code_digest(), seeds=rows)


def accuracy_seed(ctx: Context, row: str, seed: int) -> dict:
    """One seed of an accuracy row: ``search --seed S`` (the seed changes the split and the search), then
    ``retrain-best --seed S``; the row's figures (accuracy with its Wilson interval, walls in s, epochs)."""
    spec = ACCURACY_ROWS[row]
    s = row_search(ctx, row, seed)
    commands = [s["command"]]
    argv = ["python", "main.py", "retrain-best", ctx.rel(Path(s["run_dir"])), "--seed", str(seed),
            *spec.retrain_extra(ctx.suite), *spec.retrain_budget(ctx.suite, s["wall_s"]), *ctx.data_dir_args()]
    result = ctx.run(argv, f"retrain-bench-{row}-s{seed}")
    commands.append(result["command"])
    if result["rc"] != 0:
        raise StepFailed(f"{result['command']}: {failure(result)}", commands)
    metrics = json.loads((Path(s["run_dir"]) / "report" / "metrics.json").read_text())
    run = s["run"]
    acc, n = metrics["test_accuracy"], metrics.get("n_test")
    return {**work_done(metrics), "seed": seed, "status": "ok", "date": now(), "commands": commands, "test_accuracy": acc,
            "test_accuracy_ci95": wilson(acc, n), "ci_method": CI_METHOD, "n_test": n,
            "macro_f1": metrics.get("macro_f1"), "val_accuracy": (run.get("best") or {}).get("score"),
            "wall_s": round(s["wall_s"] + result["wall_s"], 1), "search_wall_s": s["wall_s"],
            "retrain_wall_s": round(result["wall_s"], 1), "retrain_fit_s": metrics.get("wall_s"),
            "search_epochs": s["epochs_trained"], "search_epochs_nominal": s["epochs_nominal"],
            "retrain_epochs": metrics.get("epochs_trained"), "trials": run.get("trials"), "tuner": run.get("tuner"),
            "max_epochs": run.get("args", {}).get("max_epochs"), "split": run.get("split"),
            "devices": run.get("devices"), "search_reused": s["reused"], "git_commit": s.get("git_commit"),
            "weights": run.get("args", {}).get("weights") if spec.space == "transfer" else None}


FULL_TRAIN_IMAGES = 60_000  # a full-data epoch: the official training set


def work_done(metrics: dict) -> dict:
    """What a time-budgeted row's retrain could fit on this machine: its seconds per epoch and per full-data epoch
    (60,000 images; scaled by the images it trained on when metrics.json says how many), so a slower machine can be
    told from a worse method (``retrain_epochs`` is stored beside)."""
    fit_s, epochs, images = metrics.get("wall_s"), metrics.get("epochs_trained"), metrics.get("train_images")
    if not fit_s or not epochs:
        return {}
    per_epoch = fit_s / epochs
    return {"retrain_epoch_s": round(per_epoch, 2),
            "full_epoch_s": round(per_epoch * FULL_TRAIN_IMAGES / images, 2) if images else None}


# ----------------------------------------------------------------------------- overhead, scale, memory, determinism

def bench_overhead(ctx: Context) -> dict:
    """Per-epoch time of our trial fit against a bare ``model.fit``; share of search time outside fit."""
    p = OVERHEAD[ctx.suite]
    data = (["--subset", str(p["subset"])] if p["subset"] else []) + \
        (["--val-size", str(p["val_size"])] if p["val_size"] else [])
    timing = ctx.work / "overhead-timing.json"
    timing.unlink(missing_ok=True)
    argv = ["python", "main.py", "search", "--space", "benchmarks/space_timed_mlp.py", "--tuner", "random",
            "--max-trials", str(p["trials"]), "--max-epochs", str(p["epochs"]), *data, "--name", "bench-overhead",
            "--results-dir", ctx.rel(ctx.work), "--overwrite", *ctx.data_args()]
    ours = ctx.run(argv, "overhead-search", env={"FASHION_TUNER_BENCH_TIMING": ctx.rel(timing)})
    commands = [ours["command"]]
    if ours["rc"] != 0 or not timing.is_file():
        raise StepFailed(f"{ours['command']}: {failure(ours)}", commands)
    bare = ctx.run(["python", "-m", "benchmarks.overhead", "--epochs", str(p["epochs"]), "--repeats",
                    str(p["repeats"]), *data, *ctx.data_args()], "overhead-bare")
    commands.append(bare["command"])
    bare_out = last_json_line(bare["stdout"])
    if bare["rc"] != 0 or bare_out is None:
        raise StepFailed(f"{bare['command']}: {failure(bare)}", commands)
    from benchmarks.overhead import summarize

    timings = json.loads(timing.read_text())
    return ctx.entry("overhead", commands, **summarize(timings, bare_out, ours["wall_s"]),
                     ours_fits=timings["fits"], bare_fits=bare_out["fits"], settings=p)


def bench_ablation(ctx: Context) -> dict:
    """``benchmarks/ablation.py`` once per seed; per-seed figures and the paired summary over seeds."""
    from benchmarks.ablation import summarize

    p = ABLATION[ctx.suite]
    settings = ["--epochs", str(p["epochs"]), "--subset", str(p["subset"])] + \
        (["--val-size", str(p["val_size"])] if p["val_size"] else []) + \
        (["--variants", *p["variants"]] if p["variants"] else [])
    commands, runs = [], []
    for seed in ctx.seeds or DEFAULT_SEEDS:
        result = ctx.run(["python", "-m", "benchmarks.ablation", "--seed", str(seed), *settings, *ctx.data_args()],
                         f"ablation-s{seed}")
        commands.append(result["command"])
        out = last_json_line(result["stdout"])
        if result["rc"] != 0 or out is None:
            raise StepFailed(f"{result['command']}: {failure(result)}", commands)
        runs.append(out)
    return ctx.entry("ablation", commands, settings=p, seeds=[r["seed"] for r in runs], n_train=runs[0]["n_train"],
                     n_val=runs[0]["n_val"], runs=runs, summary=summarize(runs))


def bench_scale(ctx: Context) -> dict:
    """The JSON lines of the scale scripts (``review_100.py``; ``scale_workers.py`` in the full suite)."""
    commands, scripts, errors = [], {}, []
    for script in SCALE_SCRIPTS[ctx.suite]:
        path = HERE / script
        if not path.is_file():
            scripts[path.stem] = {"status": "missing", "note": f"benchmarks/{script} does not exist yet"}
            continue
        argv = ["python", f"benchmarks/{script}"]
        if script == "review_100.py":
            argv.append(ctx.rel(ctx.work / "review_100"))  # the 100-trial project is built once and reused
        else:
            argv += ctx.data_dir_args()
        result = ctx.run(argv, f"scale-{path.stem}")
        commands.append(result["command"])
        out = last_json_line(result["stdout"])
        if result["rc"] != 0 or out is None:
            errors.append(f"{script}: {failure(result)}")
            scripts[path.stem] = {"status": "failed", "error": failure(result), "command": result["command"]}
        else:
            scripts[path.stem] = {"status": "ok", **out, "command": result["command"],
                                  "wall_s": round(result["wall_s"], 1)}
    entry = ctx.entry("scale", commands, scripts=scripts)
    if errors:
        entry.update(status="failed", error="; ".join(errors))
    return entry


def json_step(ctx: Context, name: str, argv: list[str]) -> dict:
    """A benchmark script that prints one JSON line (with its own inner ``commands``, if any)."""
    result = ctx.run(argv, name)
    out = last_json_line(result["stdout"])
    if result["rc"] != 0 or out is None or "error" in out:
        reason = out["error"] if out and "error" in out else failure(result)
        raise StepFailed(f"{result['command']}: {reason}", [result["command"]])
    inner = out.pop("commands", [])
    out.setdefault("wall_s", round(result["wall_s"], 1))
    return ctx.entry(name, [result["command"]] + inner, **out)


def bench_sampler_synthetic(ctx: Context) -> dict:
    """The search algorithms' picks on synthetic objectives (:mod:`benchmarks.sampler_synthetic`, no training)."""
    argv = ["python", "-m", "benchmarks.sampler_synthetic", "--seeds", str(SAMPLER_SYNTHETIC[ctx.suite])]
    return json_step(ctx, "sampler_synthetic", argv)


def bench_fidelity(ctx: Context) -> dict:
    """How well 2- and 6-epoch scores rank configurations against a reference fit (:mod:`benchmarks.fidelity`),
    one run per seed: ``runs`` {seed: figure}."""
    p, runs, commands = FIDELITY[ctx.suite], {}, []
    for seed in ctx.seeds or (42,):
        argv = ["python", "-m", "benchmarks.fidelity", "--seed", str(seed),
                *[a for k in ("configs", "subset", "low", "mid", "ref") for a in (f"--{k}", str(p[k]))],
                *(["--val-size", str(p["val_size"])] if p["val_size"] else []), *ctx.data_args()]
        result = ctx.run(argv, f"fidelity-s{seed}")
        commands.append(result["command"])
        out = last_json_line(result["stdout"])
        if result["rc"] != 0 or out is None:
            raise StepFailed(f"{result['command']}: {failure(result)}", commands)
        runs[str(seed)] = {**out, "wall_s": round(result["wall_s"], 1)}
    return ctx.entry("fidelity", commands, runs=runs)


def bench_memory(ctx: Context) -> dict:
    p = MEMORY[ctx.suite]
    argv = ["python", "-m", "benchmarks.memory", "--trials", str(p["trials"]), "--subset", str(p["subset"]),
            "--results-dir", ctx.rel(ctx.work), *(["--val-size", str(p["val_size"])] if p["val_size"] else []),
            *(["--trials-per-process", str(p["per_process"])] if p["per_process"] else []),
            *(["--compare-one-process"] if p["compare"] else []), *ctx.data_args()]
    return json_step(ctx, "memory", argv)


def bench_deterministic(ctx: Context) -> dict:
    p = DETERMINISTIC[ctx.suite]
    argv = ["python", "-m", "benchmarks.deterministic", "--space", p["space"], "--subset", str(p["subset"]),
            "--max-trials", str(p["max_trials"]), "--max-epochs", str(p["max_epochs"]), "--repeats",
            str(p["repeats"]), "--results-dir", ctx.rel(ctx.work),
            *(["--val-size", str(p["val_size"])] if p["val_size"] else []), *ctx.data_args()]
    return json_step(ctx, "deterministic", argv)


def bench_pairs(ctx: Context, name: str) -> dict:
    """One comparison of :mod:`benchmarks.epoch_pairs` (``name``: one of ``suites.PAIRS``)."""
    argv = ["python", "-m", "benchmarks.epoch_pairs", "--compare", name, "--setting", PAIRS_SETTING[ctx.suite],
            *ctx.data_dir_args()]
    return json_step(ctx, name, argv)


def bench_roofline(ctx: Context) -> dict:
    """The default CNN's training FLOPs, achieved FLOP/s and this CPU's peak (:mod:`benchmarks.roofline`)."""
    argv = ["python", "-m", "benchmarks.roofline", "--setting", ROOFLINE_SETTING[ctx.suite], *ctx.data_dir_args()]
    return json_step(ctx, "roofline", argv)
