"""Benchmark runner: run the suites, record every figure in ``benchmarks/results.json``, render the table.

    python -m benchmarks.run --suite quick|full [--out FILE] [--only NAME ...] [--seeds S ...] [--update-readme]
    python -m benchmarks.run --render-only [--out FILE] [--update-readme]

Benchmarks (``--only`` takes these names, or ``accuracy`` for the accuracy rows):

- ``mlp``, ``cnn``, ``cnn_15m``, ``transfer``: accuracy under budget, once per ``--seeds`` seed
  (default 42): ``main.py search --space S --seed SEED`` then ``main.py retrain-best --seed SEED``;
  held-out test accuracy with its Wilson 95% CI, wall times, epochs. Stored under
  ``figures.accuracy.runs.<row>`` as a ``seeds`` list plus the mean and sample SD over seeds; seeds
  from earlier invocations of the same row (same suite, definition and searched code) are kept.
  ``cnn_15m`` is the 15-minute budget (see ``benchmarks/suites.py``).
- ``peers``: at the epoch budget our ``search --space cnn`` actually trained: a plain Keras Tuner
  Hyperband script (``plain_keras_tuner.py``), Optuna TPE + median pruner over the same CNN space
  (``optuna_cnn.py``) and ours, each best trial evaluated once on the same held-out test split.
- ``peers_mlp``: the same, MLP against MLP.
- ``peers_time``: ours, plain Keras Tuner RandomSearch and Optuna TPE over the CNN space, each given
  the same wall-clock minutes per seed; best validation accuracy against wall time, the time each
  needs to reach a target (``benchmarks/anytime.py``).
- ``ablation``: the cnn defaults with one training trick each (random erasing, label smoothing,
  weight EMA, residual blocks, batches of 128, narrower blocks, SGD; flip TTA scored on every model), per seed, on the
  validation split (``benchmarks/ablation.py``): paired gains against the defaults and fit-time ratios.
- ``search_value`` (and ``_bad``: poor defaults, ``_mlp``): does the search beat its space's defaults? Each arm
  (the defaults trained for the whole budget, priorband, Keras Tuner Hyperband, RandomSearch, Optuna TPE) alone
  for the same wall time, its pick retrained at a reference fidelity against the defaults
  (``benchmarks/search_value.py``): ``delta_ref`` per seed and anytime curves.
- ``overhead``, ``scale``, ``memory``, ``deterministic``: the reliability figures.
- ``precision``, ``layout``, ``threads``, ``onednn``, ``batchnorm``, ``batch``, ``pipeline``: the default CNN's seconds per epoch
  and validation accuracy under two or more settings, alternated in fresh processes, as ratios (``batch``: at equal
  wall time; ``benchmarks/epoch_pairs.py``).
- ``roofline``: the default CNN's training FLOPs per image, achieved FLOP/s and this CPU's peak
  (``benchmarks/roofline.py``).
- ``sampler_synthetic``: the search algorithms' picks on synthetic objectives over spaces none was written for,
  good and poor defaults (``benchmarks/sampler_synthetic.py``; no training, minutes).
- ``fidelity``: how well the cnn search's 2- and 6-epoch scores rank configurations (the defaults, local and
  uniform draws) against a 10-epoch reference fit, and what a pick at each would gain over the defaults, per seed
  (``benchmarks/fidelity.py``; full: over 2 hours a seed on 2 cores).

Each step runs in a subprocess (``python main.py ...``, exactly what a user would type) with the
wall time measured around it; every figure records its commands, date, machine, versions and data
MD5s. Figures are merged into ``--out`` (others are kept) and the markdown table is written next
to it (``RESULTS.md`` beside ``results.json``, else ``<out>.md``). ``smoke``/``quick`` take minutes
on small subsets and check the harness; ``full`` is the real thing and takes hours.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import time
from pathlib import Path

from benchmarks import common, fidelity, search_value
from benchmarks.budget_load import bench_budget_load
from benchmarks.common import REPO
from benchmarks.context import (DEFAULT_OUT, DEFAULT_WORK, HERE, SCHEMA, Context, StepFailed, load_results, now,
                                plot_path, store, stored, table_path, write_results)
from benchmarks.peer_steps import TIME_APPROACHES, bench_peers, bench_peers_mlp, bench_peers_time, merge_time
from benchmarks.render import MARK_END, MARK_START, README, render, update_readme
from benchmarks.seeds import merge
from benchmarks.steps import (bench_ablation, bench_accuracy, bench_deterministic, bench_fidelity, bench_memory,
                              bench_overhead, bench_pairs, bench_roofline, bench_sampler_synthetic, bench_scale)
from benchmarks.suites import ACCURACY, BENCHMARKS, MEMORY, PAIRS, SUITE_MEMBERS, SUITES, selected

__all__ = ["SCHEMA", "README", "MARK_START", "MARK_END", "MEMORY", "SUITE_MEMBERS", "main", "render", "selected",
           "store", "update_readme"]

MAX_SEED = 2 ** 31 - 1
RUNNERS = {"peers": bench_peers, "peers_mlp": bench_peers_mlp, "peers_time": bench_peers_time,
           "ablation": bench_ablation, "overhead": bench_overhead, "scale": bench_scale, "memory": bench_memory,
           "deterministic": bench_deterministic, "roofline": bench_roofline, "budget_load": bench_budget_load,
           "sampler_synthetic": bench_sampler_synthetic, "fidelity": bench_fidelity,
           **{name: (lambda ctx, name=name: bench_pairs(ctx, name)) for name in PAIRS},
           **{name: functools.partial(search_value.bench_search_value, name=name) for name in search_value.VARIANTS}}


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to {MAX_SEED}, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="names: " + ", ".join(BENCHMARKS) + f" (accuracy = {' '.join(ACCURACY)})")
    parser.add_argument("--suite", choices=SUITES, default="quick")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--seeds", nargs="+", type=_seed, metavar="SEED",
                        help="run the accuracy rows, peers_time and ablation once per seed (the split and the search change "
                             "with it; default 42); peers uses the first")
    parser.add_argument("--approaches", nargs="+", choices=sorted({*TIME_APPROACHES, *search_value.ARMS}),
                        metavar="APPROACH",
                        help="peers_time: run only these of " + ", ".join(TIME_APPROACHES) + "; search_value*: only these "
                             "arms of " + ", ".join(search_value.ARMS) + "; the others' earlier runs at the same "
                             "settings are kept")
    parser.add_argument("--out", default=None,
                        help="results file (default benchmarks/results.json for full, benchmarks/results-<suite>.json otherwise)")
    parser.add_argument("--work-dir", default=None, help=f"where runs and logs go (default {DEFAULT_WORK.relative_to(REPO)})")
    parser.add_argument("--data-dir", default=None, help="folder with the four Fashion-MNIST IDX files")
    parser.add_argument("--skip-md5", action="store_true", help="accept IDX files whose MD5 is not the published one")
    parser.add_argument("--render-only", action="store_true", help="only re-render the table from --out")
    parser.add_argument("--update-readme", action="store_true",
                        help=f"also splice the table into docs/benchmarks.md between {MARK_START} and {MARK_END}")
    return parser


def run_one(ctx: Context, name: str, results: dict) -> dict:
    """Run benchmark ``name`` and store its entry in ``results`` (an accuracy row or ``peers_time`` merged
    with its earlier seeds)."""
    t0 = time.perf_counter()
    try:
        entry = bench_accuracy(ctx, name) if name in ACCURACY else RUNNERS[name](ctx)
    except StepFailed as exc:
        entry = ctx.entry(name, exc.commands, status="failed", error=str(exc))
    if name in ACCURACY:
        entry = merge(stored(results, name), entry)
    elif name == "peers_time":
        entry = merge_time(results["figures"].get(name), entry)
    elif name == "fidelity" and entry.get("status") == "ok":
        entry = fidelity.merge(results["figures"].get(name), entry)
    elif name in search_value.VARIANTS and entry.get("status") == "ok":
        entry = search_value.merge(results["figures"].get(name), entry)
    entry["benchmark_s"] = round(time.perf_counter() - t0, 1)
    store(results, name, entry)
    return entry


def run_suite(args: argparse.Namespace, argv: list[str] | None, out: Path, results: dict) -> list[str]:
    """Run the selected benchmarks, writing ``out`` after each; the names that failed."""
    names = selected(args.suite, args.only)
    work = Path(args.work_dir).resolve() if args.work_dir else DEFAULT_WORK
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(args.suite, work, args.data_dir, args.skip_md5, out, seeds=args.seeds, approaches=args.approaches)
    invocation = ["python", "-m", "benchmarks.run", *(sys.argv[1:] if argv is None else argv)]
    started, failed = time.perf_counter(), []
    print(f"[bench] suite {args.suite}: {', '.join(names)}; results -> {out}; runs and logs -> {work}", flush=True)
    for name in names:
        entry = run_one(ctx, name, results)
        if entry["status"] != "ok":
            failed.append(name)
            print(f"[bench] {name}: FAILED: {entry.get('error')}", flush=True)
        else:
            print(f"[bench] {name}: done in {entry['benchmark_s']:.0f} s", flush=True)
        results.update(updated=now(), last_invocation={
            "suite": args.suite, "command": common.shown(invocation), "date": now(),
            "benchmarks": names, "elapsed_s": round(time.perf_counter() - started, 1), **ctx.stamp})
        write_results(out, results)  # after every benchmark: a long full run keeps what it finished
    print(f"[bench] suite {args.suite} finished in {time.perf_counter() - started:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[bench] %(message)s", stream=sys.stdout)
    out = Path(args.out) if args.out else (DEFAULT_OUT if args.suite == "full" else HERE / f"results-{args.suite}.json")
    results = load_results(out)
    failed = [] if args.render_only else run_suite(args, argv, out, results)
    table = render(results)
    table_file = table_path(out)
    table_file.write_text(table)
    print(table)
    print(f"[bench] results: {out}; table: {table_file}")
    if results["figures"].get("peers_time", {}).get("summary"):
        from benchmarks.anytime import plot

        print(f"[bench] anytime plot: {plot(results['figures']['peers_time'], plot_path(out))}")
    if args.update_readme:
        where = README.relative_to(REPO)
        if update_readme(table):
            print(f"[bench] {where} updated between {MARK_START} and {MARK_END}")
        else:
            print(f"[bench] {where} has no {MARK_START} ... {MARK_END} markers; not changed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
