"""Paired arms of the default CNN's training: seconds per epoch and validation accuracy, as ratios.

Each comparison fits the default CNN of ``search_spaces/cnn.py`` (TensorFlow, batch 64) once per arm,
per seed, per round, every fit in a fresh process (``benchmarks/backend_epoch.py --one``), the arms
alternated A B A B ... so a change in the machine's load falls on every arm alike. Seconds per epoch
is the median of the epochs after the first (the first traces the graph); validation accuracy is
the last epoch's, after the same fixed schedule (cosine decay over ``--epochs``) in every arm.

Comparisons (the first arm is the baseline every ratio is taken against):

- ``precision``: float32 against mixed_bfloat16 (``--mixed-precision bfloat16``);
- ``layout``: channels-last (Keras' default) against channels-first images, both under oneDNN
  (TensorFlow's own CPU kernels refuse to train channels-first: "Conv2DCustomBackpropInputOp only
  supports NHWC");
- ``threads``: TensorFlow's own thread pools against TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS
  settings (intra x inter: 1x1, 2x1, 1x2);
- ``onednn``: TensorFlow's default kernels against TF_ENABLE_ONEDNN_OPTS=1, in float32 and mixed_bfloat16
  (TensorFlow enables oneDNN by itself only on CPUs with AVX-512 VNNI/BF16 or AMX);
- ``batchnorm``: float32 (before issue 27) against mixed_bfloat16 with Keras' own batch norm and mixed_bfloat16
  with ``fashion_tuner.layers.BatchNorm`` (TensorFlow's fused kernel for 16-bit inputs; what the space runs).
  ``precision`` is float32 against the space as it runs, so it measured Keras' batch norm until 2026-12-07;
- ``batch``: batches of 64 (the space's default) against 128 and 256 **at equal wall time** (each fit runs
  ``seconds`` of the setting, its cosine laid out for the epochs that fit: ``backend_epoch --seconds``), in the
  precision ``--mixed-precision auto`` picks on this machine; the larger batches' Adam rate is scaled by the
  square root of the batch ratio (1.41e-3, 2e-3), the usual rule for Adam. Validation accuracy is then compared
  at equal minutes, not equal epochs (a batch of 128 was -0.79 pp at 10 epochs but x0.71 the time);
- ``pipeline``: NumPy arrays to ``model.fit`` (what the cnn space's own ``fit`` receives: ``--input-pipeline`` does
  not reach it) against a cached, prefetched ``tf.data`` pipeline, in the auto precision;
- ``family``: the default CNN against networks built to be cheap on a CPU (``benchmarks/spaces/cnn_cpu.py``:
  half the width; depthwise-separable blocks at twice the width; a stride-2 stem) **at equal wall time** on the
  default search's 10,000 training images (``SETTING_OVERRIDES``), in the auto precision: issue 27's rule is that
  a family replaces the defaults only if it wins at equal minutes over 3 seeds.

    python -m benchmarks.epoch_pairs --compare precision --images 10000 --epochs 2 --rounds 2
    python -m benchmarks.epoch_pairs --compare precision --setting full     # 3 seeds, all 60,000 images

Prints one JSON line (the runner, ``python -m benchmarks.run --only precision``, stores it):
``speedup`` per arm = the baseline's median s/epoch over the arm's (above 1: the arm is faster),
the per-pair ratios, and the accuracy difference arm - baseline per seed and on average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import backend_epoch  # noqa: E402
from benchmarks.common import emit  # noqa: E402

BACKEND = "tensorflow"
CPU_SPACE = "benchmarks/spaces/cnn_cpu.py"  # the CNN families of the ``family`` comparison
# arm name -> how it runs: policy, Keras image data format, thread limits (environment; 0: TF's default)
ARMS = {
    "float32": {},
    "mixed_bfloat16": {"policy": "mixed_bfloat16"},
    "channels_first": {"data_format": "channels_first"},
    "threads_1x1": {"env": {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}},
    "threads_2x1": {"env": {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"}},
    "threads_1x2": {"env": {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "2"}},
    # TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX (not on the AVX2 EPYC)
    "onednn": {"env": {"TF_ENABLE_ONEDNN_OPTS": "1"}},
    "mixed_bfloat16_onednn": {"policy": "mixed_bfloat16", "env": {"TF_ENABLE_ONEDNN_OPTS": "1"}},
    "channels_first_onednn": {"data_format": "channels_first", "env": {"TF_ENABLE_ONEDNN_OPTS": "1"}},
    "mixed_bfloat16_keras_bn": {"policy": "mixed_bfloat16", "keras_batch_norm": True},
    # "auto": what --mixed-precision auto picks on this machine (mixed_bfloat16 with AMX, else float32); the arm
    # "auto" is the product's default (batch 64, arrays)
    "auto": {"policy": "auto"},
    "tfdata": {"policy": "auto", "input_pipeline": "tfdata"},
    "batch128": {"policy": "auto", "batch_size": 128, "learning_rate": 1e-3 * 2 ** 0.5},
    "batch256": {"policy": "auto", "batch_size": 256, "learning_rate": 2e-3},
    # CNN families cheap on a CPU (issue 27, item 4): benchmarks/spaces/cnn_cpu.py, the same head and training
    "family_narrow": {"policy": "auto", "space": CPU_SPACE, "hp": {"family": "narrow"}},
    "family_separable": {"policy": "auto", "space": CPU_SPACE, "hp": {"family": "separable"}},
    "family_stem": {"policy": "auto", "space": CPU_SPACE, "hp": {"family": "stem"}},
}
# layout: TensorFlow's own CPU kernels train channels-first not at all ("Conv2DCustomBackpropInputOp only
# supports NHWC", measured on TensorFlow 2.21): both arms run with oneDNN, which takes either layout.
COMPARISONS = {"precision": ("float32", "mixed_bfloat16"), "layout": ("onednn", "channels_first_onednn"),
               "threads": ("float32", "threads_1x1", "threads_2x1", "threads_1x2"),
               "onednn": ("float32", "onednn", "mixed_bfloat16_onednn"),
               "batchnorm": ("float32", "mixed_bfloat16_keras_bn", "mixed_bfloat16"),
               "batch": ("auto", "batch128", "batch256"), "pipeline": ("auto", "tfdata"),
               "family": ("auto", "family_narrow", "family_separable", "family_stem")}
TIMED = ("batch", "family")  # comparisons at equal wall time: each fit runs the setting's seconds, not its epochs
# images None: all 60,000 training images; val_images None: all 6,000 validation images; seconds: per fit of a
# TIMED comparison (full: what a 15-minute budget gives the retrain, about 17 epochs of the default CNN here), and
# first_plan the epochs its cosine is first laid out for (about what fits at batch 64 on the 2-core Intel Xeon in
# bfloat16: 5 s per 10,000-image epoch, 33 s per full one; the plan may grow in its first half, then only shrink)
SETTINGS = {
    "smoke": dict(images=64, epochs=1, rounds=1, seeds=(42,), val_images=64, seconds=10, first_plan=2),  # harness only
    "small": dict(images=10000, epochs=2, rounds=2, seeds=(42,), val_images=1000, seconds=60, first_plan=10),
    "full": dict(images=None, epochs=5, rounds=1, seeds=(42, 43, 44), val_images=None, seconds=600, first_plan=16),
}
# per comparison, what differs from SETTINGS: ``family`` compares networks whose epochs differ ~3x in cost on the
# default search's 10,000 training images (the budget of a search trial; a full-data epoch of the default CNN took
# ~200 s on the slowest 2-core machine of this kind, too slow for 12 fits), scored on all 6,000 validation images
SETTING_OVERRIDES = {"family": {"small": dict(val_images=None),
                                "full": dict(images=10000, seconds=240, first_plan=6)}}


def run_arm(arm: str, *, images, epochs: int, seed: int, val_images, data_dir: str | None,
            seconds: float | None = None, auto: str | None = None, first_plan: int | None = None) -> dict:
    """One fit of the default CNN under ``arm`` in a fresh process; the measurement plus its command.
    ``seconds``: fit that long (equal wall time) instead of ``epochs``, the schedule first laid out for
    ``first_plan`` epochs; ``auto``: what --mixed-precision auto picks here (``devices.auto_precision``: "bfloat16"
    or None), for the arms whose policy is "auto"."""
    spec = ARMS[arm]
    policy, data_format, env = spec.get("policy", "float32"), spec.get("data_format", "channels_last"), spec.get("env")
    if policy == "auto":
        from fashion_tuner import devices

        policy = devices.policy_for(auto, on_gpu=False)  # these fits run on the CPU
    options = backend_epoch.FitOptions(
        seed=seed, val_images=val_images, data_format=data_format, keras_batch_norm=spec.get("keras_batch_norm", False),
        batch_size=spec.get("batch_size", backend_epoch.BATCH), learning_rate=spec.get("learning_rate"),
        seconds=seconds, first_plan=first_plan, input_pipeline=spec.get("input_pipeline", "arrays"),
        space=spec.get("space", "cnn"), hp_values=spec.get("hp") or {})
    out = backend_epoch.run_one(BACKEND, policy, images, epochs, data_dir, env=env, options=options)
    prefix = "".join(f"{k}={v} " for k, v in (env or {}).items())
    out.update(arm=arm, command=prefix + " ".join(backend_epoch.one_argv(BACKEND, policy, images, epochs, data_dir,
                                                                        options)))
    return out


def other_spaces(arms) -> list[str]:
    """The space files other than the cnn space whose models some of ``arms`` fit."""
    return sorted({ARMS[arm]["space"] for arm in arms if ARMS[arm].get("space", "cnn") != "cnn"})


def summarise(arms: tuple[str, ...], fits: list[dict]) -> dict:
    """Per arm: median s/epoch, ``speedup`` against the first arm, the ratios of each (seed, round) pair,
    and the final validation accuracy per seed with the mean difference against the first arm."""
    base = arms[0]
    by = {a: [f for f in fits if f["arm"] == a and f.get("status") == "ok"] for a in arms}
    out = {}
    for arm in arms:
        ok = by[arm]
        if not ok:
            out[arm] = {"status": "failed"}
            continue
        row = {"epoch_s": [f["epoch_s"] for f in ok], "epochs_run": [f.get("epochs") for f in ok],
               "fit_s": [f.get("fit_s") for f in ok],
               "median_epoch_s": round(statistics.median(f["epoch_s"] for f in ok), 3),
               "parameters": ok[0].get("parameters"),
               "val_accuracy": {str(f["seed"]): f["val_accuracy"][-1] for f in ok}}
        if arm != base and by[base]:
            baseline = {f["pair"]: f for f in by[base]}
            pairs = [(baseline[f["pair"]], f) for f in ok if f["pair"] in baseline]  # same seed and round
            ratios = [round(b["epoch_s"] / f["epoch_s"], 3) for b, f in pairs]
            diffs = [f["val_accuracy"][-1] - b["val_accuracy"][-1] for b, f in pairs]
            row.update(speedup=round(statistics.median(b["epoch_s"] for b in by[base]) / row["median_epoch_s"], 3),
                       pair_speedups=ratios, accuracy_diff_mean=round(statistics.mean(diffs), 4),
                       accuracy_diffs=[round(d, 4) for d in diffs])
        out[arm] = row
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", choices=tuple(COMPARISONS), default="precision")
    parser.add_argument("--setting", choices=tuple(SETTINGS), default="small",
                        help="images, epochs, rounds, seeds (the flags below override)")
    parser.add_argument("--images", type=int, default=None, help="training images (0: all 60,000)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None, help="alternations A B per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--seconds", type=float, default=None, help="per fit, in the comparisons at equal wall time")
    parser.add_argument("--first-plan", type=int, default=None,
                        help="with --seconds: the epochs each fit's cosine is first laid out for")
    parser.add_argument("--arms", nargs="+", default=None,
                        help="only these arms of the comparison (its baseline is always run, first)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--timeout", type=float, default=backend_epoch.ONE_TIMEOUT_S, help="seconds per fit at most")
    args = parser.parse_args(argv)

    s = {**SETTINGS[args.setting], **SETTING_OVERRIDES.get(args.compare, {}).get(args.setting, {})}
    for key in ("images", "epochs", "rounds", "seeds", "seconds", "first_plan"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    images = s["images"] or None
    arms = COMPARISONS[args.compare]
    if args.arms:
        unknown = sorted(set(args.arms) - set(arms))
        if unknown:
            parser.error(f"--arms {' '.join(unknown)}: not in {args.compare} ({', '.join(arms)})")
        arms = tuple(a for a in arms if a == arms[0] or a in args.arms)
    seconds = s["seconds"] if args.compare in TIMED else None
    from fashion_tuner import devices

    picked, reason = devices.auto_precision(devices.read_cpuinfo())
    load_before, started, fits = os.getloadavg(), time.monotonic(), []
    for seed in s["seeds"]:
        for round_ in range(s["rounds"]):
            for arm in arms:
                fit = run_arm(arm, images=images, epochs=s["epochs"], seed=seed, val_images=s["val_images"],
                              data_dir=args.data_dir, seconds=seconds, auto=picked,
                              first_plan=s["first_plan"] if seconds else None)
                fit.update(seed=seed, pair=f"{seed}/{round_}")
                fits.append(fit)
                shown = (f"{fit['epoch_s']:.2f} s/epoch, {fit['epochs']} epochs, val {fit['val_accuracy'][-1]:.4f}"
                         if fit["status"] == "ok"
                         else f"failed: {fit['error']}")
                print(f"[pairs] seed {seed} {arm:<15} {shown}", file=sys.stderr, flush=True)
    summary = summarise(arms, fits)
    result = {"compare": args.compare, "setting": args.setting, "arms": list(arms), "baseline": arms[0],
              "images": images or 60000, "epochs": None if seconds else s["epochs"], "seconds": seconds,
              "rounds": s["rounds"], "seeds": list(s["seeds"]), "val_images": s["val_images"] or 6000,
              "batch_size": backend_epoch.BATCH,
              "workload": ("default CNN of search_spaces/cnn.py" + "".join(f" against the default models of {space}"
                                                                           for space in other_spaces(arms))
                           + " on TensorFlow; epoch_s = median of the epochs "
                          "after the first; val_accuracy after the last epoch"
                          + (f"; every fit {seconds:g} s (equal wall time), its cosine laid out for the epochs that fit"
                             if seconds else "")),
              "summary": summary, "fits": [{k: v for k, v in f.items() if k != "command"} for f in fits],
              "commands": [f["command"] for f in fits], "auto_precision": {"choice": picked, "reason": reason},
              "load_average_1m": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
              "wall_s": round(time.monotonic() - started, 1)}
    failed = [f for f in fits if f["status"] != "ok"]
    if failed:
        result["error"] = "; ".join(f"{f['arm']} seed {f['seed']}: {f['error']}" for f in failed)
    emit(result)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
