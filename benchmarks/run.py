"""Benchmark runner: run the suites, record every figure in ``benchmarks/results.json``, render the table.

    python -m benchmarks.run --suite quick|full [--out FILE] [--only NAME ...] [--update-readme]
    python -m benchmarks.run --render-only [--out FILE] [--update-readme]

Benchmarks (``--only`` takes these names, or ``accuracy`` for the first three):

- ``mlp``, ``cnn``, ``transfer``: accuracy under budget: ``main.py search --space S`` then
  ``main.py retrain-best``; held-out test accuracy with its 95% CI (report/metrics.json), wall
  times, epochs spent. Stored under ``figures.accuracy.runs.<space>``.
- ``peers``: at the epoch budget our ``search --space cnn`` actually trained: a plain Keras Tuner
  Hyperband script (``plain_keras_tuner.py``), Optuna TPE + median pruner over the same CNN space
  (``optuna_cnn.py``) and ours, each best trial evaluated once on the same held-out test split.
- ``peers_mlp``: the same, MLP against MLP: our ``search --space mlp`` with the CNN default's budget
  shape (``--max-epochs 6 --factor 3 --subset 10000``) and the plain Keras Tuner script at the
  epochs it trained.
- ``overhead``: per-epoch time of our trial fit against a bare ``model.fit``, and the share of
  search wall time spent outside ``model.fit`` (``space_timed_mlp.py``, ``overhead.py``).
- ``scale``: the JSON lines of ``benchmarks/review_100.py`` and ``benchmarks/scale_workers.py``.
- ``memory``: RSS growth over MLP trials (``memory.py``). ``deterministic``: the slowdown of
  ``--deterministic`` (``deterministic.py``).

Each step runs in a subprocess (``python main.py ...`` for CLI figures, exactly what a user
would type) with the wall time measured around it. Every figure records its commands, date,
machine, versions and data MD5s. Figures are merged into ``--out`` (others are kept), and the
markdown table is written next to it (``RESULTS.md`` beside ``results.json``, else
``<out>.md``). ``quick`` takes minutes on small subsets and checks the harness; ``full`` is the
real thing on the full data and takes hours. Runs go to ``--work-dir`` (default
``results/benchmarks``), logs of every command to ``<work-dir>/logs/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks import common
from benchmarks.common import REPO, failure, last_json_line, run_command

SCHEMA = 1
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results.json"
DEFAULT_WORK = REPO / "results" / "benchmarks"
README = REPO / "docs" / "benchmarks.md"  # where --update-readme splices the table
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"

SUITES = ("smoke", "quick", "full")
ACCURACY = ("mlp", "cnn", "transfer")
BENCHMARKS = ACCURACY + ("peers", "peers_mlp", "overhead", "scale", "memory", "deterministic")
GROUPS = {"accuracy": ACCURACY}
SUITE_MEMBERS = {
    "smoke": ("mlp", "memory"),  # the test suite's harness check (about a minute)
    # transfer and scale take minutes even on subsets: `--suite quick --only transfer scale` runs them small.
    "quick": ("mlp", "cnn", "peers", "peers_mlp", "overhead", "memory", "deterministic"),
    "full": BENCHMARKS,
}
# Per-suite settings. quick/smoke shrink the data (--subset, a smaller validation share of the test
# set, so the held-out test keeps >= 9,000 images) and the budgets; full uses every default.
SEARCH_ARGS = {
    "smoke": ["--tuner", "random", "--max-trials", "1", "--max-epochs", "1", "--subset", "300", "--val-size", "0.05"],
    "quick": ["--max-epochs", "1", "--subset", "600", "--val-size", "0.05"],
    "full": [],
}
# peers_mlp: our MLP search at the cnn default's budget shape (36 epochs on 10,000 images)
PEERS_MLP_ARGS = {"smoke": [], "quick": [], "full": ["--max-epochs", "6", "--factor", "3", "--subset", "10000"]}
STEP_TIMEOUT = {"smoke": 240, "quick": 420, "full": None}
OVERHEAD = {"smoke": dict(trials=1, epochs=2, subset=300, repeats=1, val_size=0.05),
            "quick": dict(trials=2, epochs=3, subset=2000, repeats=1, val_size=0.1),
            "full": dict(trials=5, epochs=4, subset=None, repeats=3, val_size=None)}
MEMORY = {"smoke": dict(trials=4, subset=300, val_size=0.05, per_process=2, compare=False),
          "quick": dict(trials=10, subset=600, val_size=0.05, per_process=5, compare=False),
          "full": dict(trials=30, subset=2000, val_size=None, per_process=None, compare=True)}
DETERMINISTIC = {"smoke": dict(space="mlp", subset=300, max_trials=1, max_epochs=1, repeats=1, val_size=0.05),
                 "quick": dict(space="mlp", subset=1000, max_trials=2, max_epochs=1, repeats=1, val_size=0.05),
                 "full": dict(space="cnn", subset=5000, max_trials=3, max_epochs=2, repeats=3, val_size=None)}
SCALE_SCRIPTS = {"smoke": ("review_100.py",), "quick": ("review_100.py",),
                 "full": ("review_100.py", "scale_workers.py")}

# Published Fashion-MNIST test accuracies (project brief; the data set's benchmark table and the
# hand-written attempts). Not rerun here.
REFERENCES = [
    ("MLP 256-128-100", 0.883, "Fashion-MNIST benchmark table"),
    ("hand-written Keras Tuner MLP (Hyperband, 15 epochs)", 0.899, "hand-written attempt 1"),
    ("hand-written PyTorch CNN with tricks", 0.9139, "hand-written attempt 2"),
    ("2 Conv + pooling (TensorFlow tutorial)", 0.916, "Fashion-MNIST benchmark table"),
    ("2 Conv + 3 FC, augmentation + batch norm, ~500K params", 0.934, "Fashion-MNIST benchmark table"),
    ("Google AutoML, 24 compute hours", 0.939, "Fashion-MNIST benchmark table"),
    ("ResNet18 with augmentation", 0.949, "Fashion-MNIST benchmark table"),
]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def say(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


class Context:
    """What every benchmark needs: suite, folders, data arguments and the provenance stamp."""

    def __init__(self, suite: str, work_dir: Path, data_dir: str | None, skip_md5: bool, out: Path):
        self.suite, self.work, self.out = suite, work_dir, out
        self.data_dir, self.skip_md5 = data_dir, skip_md5
        self.timeout = STEP_TIMEOUT[suite]
        self.logs = work_dir / "logs"
        self.stamp = {"machine": common.machine(), "versions": common.versions(),
                      "data_md5": common.data_md5(data_dir), "data_dir": data_dir}
        self.searches: dict[str, dict] = {}  # searches done in this invocation, by run name

    def data_args(self) -> list[str]:
        return self.data_dir_args() + (["--skip-md5"] if self.skip_md5 else [])

    def data_dir_args(self) -> list[str]:
        return ["--data-dir", str(self.data_dir)] if self.data_dir else []

    def rel(self, path: Path) -> str:
        """A path as written in commands: relative to the repository when inside it."""
        try:
            return str(Path(path).resolve().relative_to(REPO))
        except ValueError:
            return str(path)

    def run(self, argv: list[str], label: str, env: dict | None = None) -> dict:
        say(f"{label}: {''.join(f'{k}={v} ' for k, v in (env or {}).items())}{common.shown(argv)}")
        result = run_command(argv, timeout=self.timeout, log=self.logs / f"{label}.log", env=env)
        say(f"{label}: exit {result['rc']} after {result['wall_s']:.1f} s")
        return result

    def entry(self, name: str, commands: list[str], **fields) -> dict:
        rerun = f"python -m benchmarks.run --suite {self.suite} --only {name}"
        return {"suite": self.suite, "date": now(), "status": "ok", "commands": commands, "rerun": rerun,
                **self.stamp, **fields}


class StepFailed(Exception):
    def __init__(self, message: str, commands: list[str]):
        super().__init__(message)
        self.commands = commands


# ----------------------------------------------------------------------------- our searches

def search(ctx: Context, space: str, name: str, extra: list[str] | None = None) -> dict:
    """``main.py search`` into ``work/<name>`` (reused when an identical finished search of the same code,
    :func:`common.code_digest`, is there).

    Returns ``{"command", "wall_s", "epochs_trained", "epochs_nominal", "run": run.json, "run_dir", "reused"}``.
    """
    run_dir = ctx.work / name
    argv = ["python", "main.py", "search", "--space", space, "--name", name, "--results-dir", ctx.rel(ctx.work),
            "--overwrite", "--verbose", "2", *SEARCH_ARGS[ctx.suite], *(extra or []), *ctx.data_args()]
    command = common.shown(argv)
    sidecar = ctx.work / f"{name}.bench.json"
    if name in ctx.searches and ctx.searches[name]["command"] == command:
        return {**ctx.searches[name], "reused": True}
    if sidecar.is_file() and (run_dir / "run.json").is_file():
        saved = json.loads(sidecar.read_text())
        run = json.loads((run_dir / "run.json").read_text())
        if saved.get("command") == command and run.get("status") == "finished" and run.get("finished") == saved.get(
                "finished") and saved.get("suite") == ctx.suite and saved.get("code_digest") == common.code_digest():
            say(f"{name}: reusing the finished search of {saved['date']} ({command})")
            done = {**saved, "run": run, "run_dir": str(run_dir)}
            ctx.searches[name] = done
            return {**done, "reused": True}
    result = ctx.run(argv, f"search-{name}")
    if result["rc"] != 0:
        raise StepFailed(f"{command}: {failure(result)}", [command])
    from benchmarks.peers import count_epoch_lines, nominal_epochs

    run = json.loads((run_dir / "run.json").read_text())
    max_epochs = int(run.get("args", {}).get("max_epochs") or 0)
    trained = run.get("epochs_trained")
    if not isinstance(trained, int):
        trained = count_epoch_lines(result["stdout"])
    done = {"command": command, "wall_s": round(result["wall_s"], 1), "epochs_trained": trained,
            "epochs_nominal": nominal_epochs(run_dir, max_epochs), "date": now(), "suite": ctx.suite,
            "finished": run.get("finished"), "git_commit": common._git_commit(), "code_digest": common.code_digest(),
            "run": run, "run_dir": str(run_dir)}
    sidecar.write_text(json.dumps({k: v for k, v in done.items() if k not in ("run", "run_dir")}, indent=2) + "\n")
    ctx.searches[name] = done
    return {**done, "reused": False}


def transfer_weights() -> str:
    """``imagenet`` when the Keras cache holds a MobileNetV2 file, else ``none`` (no downloads here)."""
    models = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    return "imagenet" if any(models.glob("mobilenet_v2*no_top*")) else "none"


def bench_accuracy(ctx: Context, space: str) -> dict:
    extra = ["--weights", transfer_weights()] if space == "transfer" else []
    s = search(ctx, space, f"bench-{space}", extra)
    commands = [s["command"]]
    argv = ["python", "main.py", "retrain-best", ctx.rel(Path(s["run_dir"])), *ctx.data_dir_args()]
    result = ctx.run(argv, f"retrain-bench-{space}")
    commands.append(result["command"])
    if result["rc"] != 0:
        raise StepFailed(f"{result['command']}: {failure(result)}", commands)
    metrics = json.loads((Path(s["run_dir"]) / "report" / "metrics.json").read_text())
    run = s["run"]
    return ctx.entry(space, commands, space=space, test_accuracy=metrics["test_accuracy"],
                     test_accuracy_ci95=metrics.get("test_accuracy_ci95"), macro_f1=metrics.get("macro_f1"),
                     n_test=metrics.get("n_test"), val_accuracy=(run.get("best") or {}).get("score"),
                     search_wall_s=s["wall_s"], retrain_wall_s=round(result["wall_s"], 1),
                     retrain_fit_s=metrics.get("wall_s"), wall_s=round(s["wall_s"] + result["wall_s"], 1),
                     search_epochs=s["epochs_trained"], search_epochs_nominal=s["epochs_nominal"],
                     retrain_epochs=metrics.get("epochs_trained"),
                     epochs=(s["epochs_trained"] or 0) + (metrics.get("epochs_trained") or 0),
                     trials=run.get("trials"), tuner=run.get("tuner"), max_epochs=run.get("args", {}).get("max_epochs"),
                     split=run.get("split"), devices=run.get("devices"), search_reused=s["reused"],
                     weights=extra[1] if extra else None)


# ----------------------------------------------------------------------------- peers

def bench_peers(ctx: Context) -> dict:
    return equal_budget(ctx, "peers", search(ctx, "cnn", "bench-cnn"), ("keras_tuner_mlp", "optuna_cnn"))


def bench_peers_mlp(ctx: Context) -> dict:
    """Like for like: our MLP search, at the CNN default's budget shape, against the plain MLP script."""
    return equal_budget(ctx, "peers_mlp", search(ctx, "mlp", "peer-ours-mlp", PEERS_MLP_ARGS[ctx.suite]),
                        ("keras_tuner_mlp",))


def equal_budget(ctx: Context, name: str, ours: dict, keys: tuple[str, ...]) -> dict:
    """Run the peers ``keys`` at the epoch budget our search ``ours`` trained, on its split; evaluate each
    best trial once on the held-out test split; the entry ``name`` with one row per approach."""
    commands = [ours["command"]]
    budget = int(ours["epochs_trained"] or ours["epochs_nominal"])
    ev = ctx.run(["python", "-m", "benchmarks.peers", "evaluate", ctx.rel(Path(ours["run_dir"])),
                  *ctx.data_dir_args()], f"{name}-evaluate-ours")
    commands.append(ev["command"])
    ours_eval = last_json_line(ev["stdout"])
    if ev["rc"] != 0 or ours_eval is None:
        raise StepFailed(f"{ev['command']}: {failure(ev)}", commands)
    split = ours["run"].get("split", {})
    data = ["--seed", str(ours["run"].get("args", {}).get("seed", 42))]
    if split.get("subset"):
        data += ["--subset", str(split["subset"])]
    if split.get("val_size"):
        data += ["--val-size", str(split["val_size"])]
    data += ctx.data_args()
    max_epochs = int(ours["run"].get("args", {}).get("max_epochs") or 12)
    space = ours["run"].get("space")
    rows = {"ours": {"approach": f"fashion_tuner search --space {space} (Hyperband, EarlyStopping)",
                     "wall_s": ours["wall_s"], "epochs_used": budget, **ours_eval,
                     "commands": [ours["command"], ev["command"]]}}
    peers = {
        "keras_tuner_mlp": ["python", "-m", "benchmarks.plain_keras_tuner", "--epoch-budget", str(budget),
                            "--work-dir", ctx.rel(ctx.work / f"{name}-keras-tuner"), *data],
        "optuna_cnn": ["python", "-m", "benchmarks.optuna_cnn", "--epoch-budget", str(budget), "--max-epochs",
                       str(max_epochs), "--work-dir", ctx.rel(ctx.work), *data],
    }
    labels = {"keras_tuner_mlp": "plain Keras Tuner Hyperband, MLP (hand-written style)",
              "optuna_cnn": "Optuna TPE + median pruner, same CNN space"}
    errors = []
    for key in keys:
        result = ctx.run(peers[key], f"{name}-{key}")
        commands.append(result["command"])
        out = last_json_line(result["stdout"])
        if result["rc"] != 0 or out is None:
            errors.append(f"{key}: {failure(result)}")
            rows[key] = {"approach": labels[key], "status": "failed", "error": failure(result),
                         "commands": [result["command"]]}
            continue
        rows[key] = {"approach": labels[key], **out, "wall_s": round(result["wall_s"], 1),
                     "commands": [result["command"]]}
    for key, row in rows.items():
        if key != "ours" and row.get("test_accuracy") is not None:
            row["accuracy_ratio_to_ours"] = round(row["test_accuracy"] / rows["ours"]["test_accuracy"], 4)
            row["wall_ratio_to_ours"] = round(row["wall_s"] / rows["ours"]["wall_s"], 3)
    entry = ctx.entry(name, commands, epoch_budget=budget, budget_from=f"epochs our {space} search trained",
                      ours_search_reused=ours["reused"], rows=rows)
    if errors:
        entry.update(status="failed", error="; ".join(errors))
    return entry


# ----------------------------------------------------------------------------- overhead, scale, memory, determinism

def bench_overhead(ctx: Context) -> dict:
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


def bench_scale(ctx: Context) -> dict:
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


def _json_step(ctx: Context, name: str, argv: list[str]) -> dict:
    """A benchmark script that prints one JSON line (with its own inner ``commands``, if any)."""
    result = ctx.run(argv, name)
    out = last_json_line(result["stdout"])
    if result["rc"] != 0 or out is None or "error" in out:
        reason = out["error"] if out and "error" in out else failure(result)
        raise StepFailed(f"{result['command']}: {reason}", [result["command"]])
    inner = out.pop("commands", [])
    out.setdefault("wall_s", round(result["wall_s"], 1))
    return ctx.entry(name, [result["command"]] + inner, **out)


def bench_memory(ctx: Context) -> dict:
    p = MEMORY[ctx.suite]
    argv = ["python", "-m", "benchmarks.memory", "--trials", str(p["trials"]), "--subset", str(p["subset"]),
            "--results-dir", ctx.rel(ctx.work), *(["--val-size", str(p["val_size"])] if p["val_size"] else []),
            *(["--trials-per-process", str(p["per_process"])] if p["per_process"] else []),
            *(["--compare-one-process"] if p["compare"] else []), *ctx.data_args()]
    return _json_step(ctx, "memory", argv)


def bench_deterministic(ctx: Context) -> dict:
    p = DETERMINISTIC[ctx.suite]
    argv = ["python", "-m", "benchmarks.deterministic", "--space", p["space"], "--subset", str(p["subset"]),
            "--max-trials", str(p["max_trials"]), "--max-epochs", str(p["max_epochs"]), "--repeats",
            str(p["repeats"]), "--results-dir", ctx.rel(ctx.work),
            *(["--val-size", str(p["val_size"])] if p["val_size"] else []), *ctx.data_args()]
    return _json_step(ctx, "deterministic", argv)


RUNNERS = {"peers": bench_peers, "peers_mlp": bench_peers_mlp, "overhead": bench_overhead, "scale": bench_scale,
           "memory": bench_memory, "deterministic": bench_deterministic}


# ----------------------------------------------------------------------------- results file

def load_results(path: Path) -> dict:
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and data.get("schema") == SCHEMA:
                data.setdefault("figures", {})
                return data
        except json.JSONDecodeError:
            say(f"{path} is not valid JSON; starting a new results file")
    return {"schema": SCHEMA, "figures": {}}


def store(results: dict, name: str, entry: dict) -> None:
    if name in ACCURACY:
        results["figures"].setdefault("accuracy", {"runs": {}})["runs"][name] = entry
    else:
        results["figures"][name] = entry


def write_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def table_path(out: Path) -> Path:
    return out.with_name("RESULTS.md") if out.name == "results.json" else out.with_suffix(".md")


# ----------------------------------------------------------------------------- rendering

def _acc(value, ci=None) -> str:
    if value is None:
        return "-"
    text = f"{value:.4f}"
    if ci and all(isinstance(c, (int, float)) for c in ci):
        text += f" ({ci[0]:.3f}-{ci[1]:.3f})"
    return text


def _dur(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _suite(entry: dict) -> str:
    return "full" if entry.get("suite") == "full" else f"{entry.get('suite')} (subset; harness check)"


def _code(text: str) -> str:
    return f"`{text}`"


def render(results: dict) -> str:
    """The markdown benchmark section: ours vs peers vs published references, then reliability figures."""
    figures = results.get("figures", {})
    lines = ["## Benchmarks", ""]
    stamps = [e for e in _entries(figures) if e.get("machine")]
    machines = {(e["machine"].get("device"), e["machine"].get("cpu")) for e in stamps}
    cpu_stamps = [e for e in stamps if e.get("suite") != "gpu"] or stamps  # the GPU check has its own row
    if stamps:
        latest = max(cpu_stamps, key=lambda e: e.get("date", ""))
        m, v = latest["machine"], latest["versions"]
        lines.append(f"Machine: {m.get('device')}, {m.get('cpu')}, {m.get('memory_gib')} GiB RAM; Python "
                     f"{v.get('python')}, TensorFlow {v.get('tensorflow') or v.get('tensorflow-cpu')}, Keras "
                     f"{v.get('keras')}, Keras Tuner {v.get('keras-tuner')}"
                     + (" (some figures come from other machines: see benchmarks/results.json)" if len(machines) > 1 else "")
                     + ".")
        md5 = latest.get("data_md5", {}).get("md5", {})
        if md5:
            lines.append(f"Data: Fashion-MNIST IDX files ({latest['data_md5'].get('dir')}), MD5 "
                         + ", ".join(f"{k.replace('-ubyte.gz', '')} {v}" for k, v in md5.items()) + ".")
        lines.append("")
    lines += ["Every figure, with the exact commands, date, machine and versions, is in `benchmarks/results.json`; "
              "rerun a row with its command (`--suite full` on the full data takes hours). Test accuracy is on the "
              "held-out test split the searches never see; 95% confidence intervals in brackets.", ""]
    lines += ["| approach | kind | test accuracy (95% CI) | wall time | epochs | suite | rerun |",
              "|---|---|---|---|---|---|---|"]
    for space, e in sorted(figures.get("accuracy", {}).get("runs", {}).items(), key=lambda kv: ACCURACY.index(kv[0])
                           if kv[0] in ACCURACY else 9):
        if e.get("status") != "ok":
            lines.append(f"| fashion_tuner `{space}` | ours | failed: {e.get('error', '')[:80]} | | | {_suite(e)} | "
                         f"{_code(e.get('rerun', ''))} |")
            continue
        wall = f"{_dur(e.get('search_wall_s'))} search + {_dur(e.get('retrain_wall_s'))} retrain"
        epochs = f"{e.get('search_epochs')} + {e.get('retrain_epochs')}"
        lines.append(f"| fashion_tuner `{space}` (search {e.get('tuner')}, max {e.get('max_epochs')} epoch(s), then "
                     f"retrain-best) | ours | {_acc(e.get('test_accuracy'), e.get('test_accuracy_ci95'))} | {wall} | "
                     f"{epochs} | {_suite(e)} | {_code(e.get('rerun', ''))} |")
    for peers in (figures.get("peers"), figures.get("peers_mlp")):
        if not peers:
            continue
        rows = peers.get("rows", {})
        for key in ("ours", "keras_tuner_mlp", "optuna_cnn"):
            row = rows.get(key)
            if not row:
                continue
            kind = "ours, equal budget" if key == "ours" else "peer, equal budget"
            if row.get("status") == "failed":
                lines.append(f"| {row['approach']} | {kind} | failed: {row.get('error', '')[:80]} | | | "
                             f"{_suite(peers)} | {_code(peers.get('rerun', ''))} |")
                continue
            ratio = ""
            if key != "ours" and row.get("accuracy_ratio_to_ours") is not None:
                ratio = f" (x{row['accuracy_ratio_to_ours']:.3f} of ours)"
            wall_ratio = f" (x{row['wall_ratio_to_ours']:.2f})" if row.get("wall_ratio_to_ours") is not None else ""
            lines.append(f"| {row['approach']} | {kind} | {_acc(row.get('test_accuracy'), row.get('test_accuracy_ci95'))}"
                         f"{ratio} | {_dur(row.get('wall_s'))}{wall_ratio} | {row.get('epochs_used')} of "
                         f"{peers.get('epoch_budget')} | {_suite(peers)} | {_code(peers.get('rerun', ''))} |")
    for approach, acc, source in REFERENCES:
        lines.append(f"| {approach} | published | {acc:.4f} | - | - | {source} | - |")
    lines += ["", "Peers at an equal budget: same data, split, validation set and cores; the budget is the number "
              "of epochs our search (`--space cnn`, or `--space mlp` for the MLP-against-MLP rows) actually "
              "trained (summed over trials), and each search's best trial is evaluated once on the held-out test "
              "split as the search left it (no retraining). Wall ratios are peer / ours, within each comparison.",
              ""]
    lines += ["| reliability figure | value | goal | suite | rerun |", "|---|---|---|---|---|"]
    lines += _reliability_rows(figures)
    return "\n".join(lines) + "\n"


def _entries(figures: dict) -> list[dict]:
    out = list(figures.get("accuracy", {}).get("runs", {}).values())
    out += [e for k, e in figures.items() if k != "accuracy" and isinstance(e, dict)]
    return out


def _failed_row(name: str, entry: dict) -> str:
    return f"| {name} | failed: {entry.get('error', '')[:80]} | | {_suite(entry)} | {_code(entry.get('rerun', ''))} |"


def _reliability_rows(figures: dict) -> list[str]:
    rows = []
    o = figures.get("overhead")
    if o:
        if o.get("status") == "ok":
            rows.append(f"| trial fit vs bare `model.fit`, time per epoch (median) | x{o['epoch_ratio']:.3f} "
                        f"({o['epoch_s_ours']:.3f} s vs {o['epoch_s_bare']:.3f} s) | ~x1.0 | {_suite(o)} | "
                        f"{_code(o['rerun'])} |")
            share = o.get("outside_fit_share")
            rows.append(f"| share of search wall time outside `model.fit` | "
                        f"{'-' if share is None else f'{share:.1%}'} of {_dur(o.get('search_s'))} "
                        f"({o.get('outside_fit_share_process', 0):.1%} counting process start-up) | <= 5% | "
                        f"{_suite(o)} | {_code(o['rerun'])} |")
        else:
            rows.append(_failed_row("overhead", o))
    s = figures.get("scale")
    if s:
        for stem, r in s.get("scripts", {}).items():
            if r.get("status") == "ok":
                value = ", ".join(f"{k} {v}" for k, v in r.items()
                                  if k not in ("status", "command", "runs_s", "wall_s") and not isinstance(v, (dict, list)))
                rows.append(f"| `benchmarks/{stem}.py` | {value} | | {_suite(s)} | {_code(r['command'])} |")
            else:
                rows.append(f"| `benchmarks/{stem}.py` | {r.get('status')}: {(r.get('error') or r.get('note', ''))[:80]} "
                            f"| | {_suite(s)} | {_code(s.get('rerun', ''))} |")
    m = figures.get("memory")
    if m:
        if m.get("status") == "ok":
            how = (f"a fresh process every {m['trials_per_process']} trials ({m['processes']} processes)"
                   if m.get("trials_per_process") else "one process")
            rows.append(f"| RSS growth, MLP trial {m['growth_from_trial']} to {m['trials']} (subset {m['subset']}, "
                        f"{m['epochs']} epoch(s) per trial; {how}; largest rise after trial {m['growth_from_trial']}) "
                        f"| {m['growth_mb']:+.1f} MB | < {m['goal_mb']:.0f} MB over 30 trials | "
                        f"{_suite(m)} | {_code(m['rerun'])} |")
            one = m.get("one_process")
            if one:
                rows.append(f"| the same search in one process (`--trials-per-process 0`) | {one['growth_mb']:+.1f} MB "
                            f"| (for comparison) | {_suite(m)} | {_code(m['rerun'])} |")
        else:
            rows.append(_failed_row("memory", m))
    d = figures.get("deterministic")
    if d:
        if d.get("status") == "ok":
            repro = {True: "; scores reproduced", False: "; scores NOT reproduced", None: ""}[d.get("deterministic_reproducible")]
            rows.append(f"| `--deterministic` slowdown ({d['space']}, {d['max_trials']} trial(s) x {d['max_epochs']} "
                        f"epoch(s), median of {d['repeats']}) | x{d['slowdown']:.2f}{repro} | | {_suite(d)} | "
                        f"{_code(d['rerun'])} |")
        else:
            rows.append(_failed_row("deterministic", d))
    rows += _backend_rows(figures)
    return rows or ["| (no figures yet) | | | | |"]


def _backend_rows(figures: dict) -> list[str]:
    """Seconds per epoch per Keras backend (benchmarks/backend_epoch.py) and the GPU check's steps."""
    rows = []
    b = figures.get("backends")
    if b:
        ok = [m for m in b.get("measurements", []) if m.get("status") == "ok"]
        value = ", ".join(f"{m['backend']} {m['epoch_s']:.1f} s ({m['policy']})" for m in ok) or "none measured"
        rows.append(f"| seconds per epoch, default CNN, {ok[0]['images'] if ok else '?'} images, by Keras backend "
                    f"(one run; {b['machine'].get('device')}) | {value} | TensorFlow the CPU default | {_suite(b)} | "
                    f"{_code(b.get('rerun', ''))} |")
    g = figures.get("gpu")
    if g:
        steps = g.get("steps", {})
        epochs = ", ".join(f"{m['policy']} {m['epoch_s']:.2f} s" for m in steps.get("cnn_epoch", {}).get("measurements", [])
                           if m.get("status") == "ok")
        value = ", ".join(f"{k} {v}" for k, v in (g.get("step_status") or {}).items())
        rows.append(f"| GPU check on JAX ({g['machine'].get('device')}): {value} | CNN s/epoch: {epochs or '-'} | "
                    f"every step ok | {g.get('suite')} | {_code(g.get('rerun', ''))} |")
    return rows


def update_readme(table: str, readme: Path = README) -> bool:
    """Replace the text between the bench markers of docs/benchmarks.md (or ``readme``); False when the markers are missing."""
    if not readme.is_file():
        return False
    text = readme.read_text()
    start, end = text.find(MARK_START), text.find(MARK_END)
    if start < 0 or end < start:
        return False
    readme.write_text(text[:start + len(MARK_START)] + "\n" + table + text[end:])
    return True


# ----------------------------------------------------------------------------- main

def selected(suite: str, only: list[str] | None) -> list[str]:
    if not only:
        return list(SUITE_MEMBERS[suite])
    names: list[str] = []
    for name in only:
        for n in GROUPS.get(name, (name,)):
            if n not in BENCHMARKS:
                raise SystemExit(f"error: unknown benchmark {name!r}; choose from "
                                 f"{', '.join(BENCHMARKS + tuple(GROUPS))}")
            if n not in names:
                names.append(n)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="names: " + ", ".join(BENCHMARKS) + " (accuracy = mlp cnn transfer)")
    parser.add_argument("--suite", choices=SUITES, default="quick")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--out", default=None,
                        help="results file (default benchmarks/results.json for full, benchmarks/results-<suite>.json otherwise)")
    parser.add_argument("--work-dir", default=None, help=f"where runs and logs go (default {DEFAULT_WORK.relative_to(REPO)})")
    parser.add_argument("--data-dir", default=None, help="folder with the four Fashion-MNIST IDX files")
    parser.add_argument("--skip-md5", action="store_true", help="accept IDX files whose MD5 is not the published one")
    parser.add_argument("--render-only", action="store_true", help="only re-render the table from --out")
    parser.add_argument("--update-readme", action="store_true",
                        help=f"also splice the table into docs/benchmarks.md between {MARK_START} and {MARK_END}")
    args = parser.parse_args(argv)

    out = Path(args.out) if args.out else (DEFAULT_OUT if args.suite == "full" else HERE / f"results-{args.suite}.json")
    results = load_results(out)
    failed = []
    if not args.render_only:
        names = selected(args.suite, args.only)
        work = Path(args.work_dir).resolve() if args.work_dir else DEFAULT_WORK
        work.mkdir(parents=True, exist_ok=True)
        ctx = Context(args.suite, work, args.data_dir, args.skip_md5, out)
        invocation = ["python", "-m", "benchmarks.run", *(sys.argv[1:] if argv is None else argv)]
        started = time.perf_counter()
        say(f"suite {args.suite}: {', '.join(names)}; results -> {out}; runs and logs -> {work}")
        for name in names:
            t0 = time.perf_counter()
            try:
                entry = bench_accuracy(ctx, name) if name in ACCURACY else RUNNERS[name](ctx)
            except StepFailed as exc:
                entry = ctx.entry(name, exc.commands, status="failed", error=str(exc))
            entry["benchmark_s"] = round(time.perf_counter() - t0, 1)
            if entry["status"] != "ok":
                failed.append(name)
                say(f"{name}: FAILED: {entry.get('error')}")
            else:
                say(f"{name}: done in {entry['benchmark_s']:.0f} s")
            store(results, name, entry)
            results.update(updated=now(), last_invocation={
                "suite": args.suite, "command": common.shown(invocation), "date": now(),
                "benchmarks": names, "elapsed_s": round(time.perf_counter() - started, 1), **ctx.stamp})
            write_results(out, results)  # after every benchmark: a long full run keeps what it finished
        say(f"suite {args.suite} finished in {_dur(time.perf_counter() - started)}"
            + (f"; failed: {', '.join(failed)}" if failed else ""))
    table = render(results)
    table_file = table_path(out)
    table_file.write_text(table)
    print(table)
    say(f"results: {out}; table: {table_file}")
    if args.update_readme:
        if update_readme(table):
            say(f"{README.relative_to(REPO)} updated between {MARK_START} and {MARK_END}")
        else:
            say(f"{README.relative_to(REPO)} has no {MARK_START} ... {MARK_END} markers; not changed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
