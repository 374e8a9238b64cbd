"""Roofline of the default CNN: training FLOPs per image, achieved FLOP/s per epoch, and this CPU's peak.

- **FLOPs**, counted from the layers' shapes (:func:`layer_flops`; one multiply-add = 2 FLOPs):
  Conv2D ``2 * H_out * W_out * C_out * K_h * K_w * C_in / groups`` (+ ``H_out * W_out * C_out`` with a
  bias), Dense ``2 * inputs * units`` per position (+ ``units`` with a bias), plus the element-wise
  layers per output element: BatchNormalization 7 (training: mean, variance, normalise, scale, shift),
  Normalization and Rescaling 2, activations, Add, Multiply and Dropout 1, pooling ``k*k - 1`` (max:
  comparisons; average: additions, + 1 division). Augmentation layers (image resampling, no
  arithmetic worth a roofline) and reshapes count 0. One training step ~ 3x the forward pass
  (backward: the gradients with respect to the inputs and to the weights, each ~ the forward's cost).
- **Achieved**: the default CNN fitted for ``--epochs`` epochs on ``--images`` images (benchmarks/
  backend_epoch.py's measurement, in this process); FLOP/s = (training FLOPs x images + forward FLOPs x
  validation images) / median seconds per epoch after the first.
- **Peak**: cores x clock (``cpu MHz`` of /proc/cpuinfo; a virtual machine reports its base clock, and
  boost can run ~1.4x higher) x FLOPs per cycle per core, from the vector width the flags report
  (AVX-512: 16 float32 lanes, 8 on AMD, whose Zen 4 splits them over 256-bit pipes; AVX2 + FMA: 8;
  else SSE: 4) x 2 (a fused multiply-add) x ``FMA_UNITS`` per core; bfloat16: 2x that with
  avx512_bf16, ``AMX_BF16_PER_CYCLE`` with AMX, none (emulated) otherwise. Beside it, what
  ``tf.matmul`` reaches on ``--matmul-n``-sized square matrices in float32 and bfloat16, in the same
  process: the attainable ceiling of a large, well-shaped product on these cores.
- **bfloat16**: on a CPU that multiplies it natively (avx512_bf16 or AMX, where ``--mixed-precision auto`` picks
  it), the same fit again under mixed_bfloat16, against the bfloat16 peak and ``tf.matmul`` in bfloat16.

    python -m benchmarks.roofline --images 10000 --epochs 3             # ~2 min of 2 CPU cores
    python -m benchmarks.roofline --setting smoke                       # harness check (seconds)

Prints the per-layer table and the summary (markdown) on stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.common import emit  # noqa: E402
from fashion_tuner.modelsize import layer_flops, one_layer_flops  # noqa: E402,F401  (the FLOP rules live there)

TRAIN_FACTOR = 3  # a training step ~ forward + backward (2x forward)
FMA_UNITS = 2  # vector FMA pipes per core: Zen 2/3/4 and most Xeon Gold/Platinum have 2 (Xeon Silver/Bronze: 1)
AMX_BF16_PER_CYCLE = 1024  # bfloat16 FLOPs per cycle per core of one AMX unit (Intel's figure for TMUL)
MATMUL_SECONDS = 1.0  # each microbenchmark repeats its product for about this long (at least 3 times)
SETTINGS = {"smoke": dict(images=128, epochs=2, matmul_n=128, val_images=128, matmul_s=0.2),
            "full": dict(images=10000, epochs=3, matmul_n=1024, val_images=1000, matmul_s=MATMUL_SECONDS)}


def peak(cpuinfo: str, cores: int) -> dict:
    """Theoretical peak FLOP/s of ``cores`` cores from the text of /proc/cpuinfo (module docstring)."""
    from fashion_tuner.devices import cpu_flags

    flags = cpu_flags(cpuinfo)
    mhz = [float(line.split(":", 1)[1]) for line in cpuinfo.splitlines() if line.lower().startswith("cpu mhz")]
    ghz = (max(mhz) / 1000.0) if mhz else None
    amd = "AuthenticAMD" in cpuinfo
    lanes = 16 if "avx512f" in flags else 8 if {"avx2", "fma"} <= flags else 4
    # AMD Zen 4 runs an AVX-512 FMA as two halves on its 256-bit pipes: no more FLOPs per cycle than AVX2
    per_cycle = min(lanes, 8 if amd else lanes) * 2 * FMA_UNITS
    bf16_cycle = AMX_BF16_PER_CYCLE if "amx_bf16" in flags else 2 * per_cycle if "avx512_bf16" in flags else None
    vector = "AVX-512" if lanes == 16 else "AVX2+FMA" if lanes == 8 else "SSE"
    return {"cores": cores, "ghz": ghz, "vector": vector, "float32_flops_per_cycle_core": per_cycle,
            "fma_units_assumed": FMA_UNITS,
            "float32_gflops": round(cores * ghz * per_cycle, 1) if ghz else None,
            "bfloat16_gflops": round(cores * ghz * bf16_cycle, 1) if ghz and bf16_cycle else None}


def matmul_gflops(n: int, dtype: str, seconds: float = MATMUL_SECONDS) -> float:
    """GFLOP/s of ``tf.matmul`` on two ``n x n`` matrices of ``dtype`` (2 n^3 FLOPs each), repeated for
    about ``seconds`` (at least 3 times) after one warm-up."""
    import tensorflow as tf

    a = tf.random.uniform((n, n), dtype=tf.float32, seed=1)
    b = tf.random.uniform((n, n), dtype=tf.float32, seed=2)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    product = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[0, 0], tf.float32)))
    product(a, b).numpy()
    count, started = 0, time.perf_counter()
    while count < 3 or time.perf_counter() - started < seconds:
        product(a, b).numpy()
        count += 1
    return round(2.0 * n ** 3 * count / (time.perf_counter() - started) / 1e9, 2)


def default_cnn_flops() -> list[dict]:
    """Per-layer forward FLOPs of the default CNN (search_spaces/cnn.py) under the data context that
    benchmarks/backend_epoch.py's measurement left (the counts depend only on the shapes)."""
    import keras_tuner as kt

    from fashion_tuner import spaces

    return layer_flops(spaces.load_space("cnn").build_model(kt.HyperParameters()))


def bfloat16_summary(fit16: dict, work: float, fit: dict, top: dict, mm: dict) -> dict:
    """The mixed_bfloat16 fit's seconds per epoch and achieved FLOP/s against the bfloat16 peak and tf.matmul."""
    achieved = work / fit16["epoch_s"] / 1e9
    return {"epoch_s": fit16["epoch_s"], "epoch_times_s": fit16["epoch_times_s"], "achieved_gflops": round(achieved, 3),
            "speedup_over_float32": round(fit["epoch_s"] / fit16["epoch_s"], 3),
            "achieved_of_peak": round(achieved / top["bfloat16_gflops"], 4),
            "achieved_of_matmul": round(achieved / mm["bfloat16"], 4)}


def table(rows: list[dict], summary: dict) -> str:
    """The markdown roofline: per layer (forward MFLOPs per image, share) then achieved against peak."""
    total = sum(r["forward_flops"] for r in rows) or 1
    lines = ["| layer | kind | output | forward MFLOP / image | share |", "|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["forward_flops"]):
        if r["forward_flops"]:
            lines.append(f"| {r['layer']} | {r['kind']} | {'x'.join(map(str, r['output']))} | "
                         f"{r['forward_flops'] / 1e6:.3f} | {r['forward_flops'] / total:.1%} |")
    s = summary
    lines += ["", "| figure | value |", "|---|---|",
              f"| training FLOPs per image ({TRAIN_FACTOR}x forward) | {s['train_mflop_per_image']:.1f} MFLOP |",
              f"| seconds per epoch (median after the first; {s['images']} images + {s['val_images']} validation) "
              f"| {s['epoch_s']:.2f} s |",
              f"| achieved | {s['achieved_gflops']:.2f} GFLOP/s |",
              f"| peak float32 ({s['peak']['cores']} cores x {s['peak']['ghz']} GHz x "
              f"{s['peak']['float32_flops_per_cycle_core']} FLOP/cycle, {s['peak']['vector']}) | "
              f"{s['peak']['float32_gflops']} GFLOP/s |",
              f"| tf.matmul {s['matmul_n']}x{s['matmul_n']} float32 / bfloat16 | {s['matmul_gflops']['float32']} / "
              f"{s['matmul_gflops']['bfloat16']} GFLOP/s |",
              f"| achieved / peak float32 | {s['achieved_of_peak']:.1%} |",
              f"| achieved / tf.matmul float32 | {s['achieved_of_matmul']:.1%} |"]
    b = s.get("bfloat16")
    if b:
        lines += [f"| mixed_bfloat16: seconds per epoch, achieved | {b['epoch_s']:.2f} s (x{b['speedup_over_float32']:.2f}), "
                  f"{b['achieved_gflops']:.2f} GFLOP/s |",
                  f"| peak bfloat16 | {s['peak']['bfloat16_gflops']} GFLOP/s |",
                  f"| achieved / peak bfloat16, / tf.matmul bfloat16 | {b['achieved_of_peak']:.1%}, "
                  f"{b['achieved_of_matmul']:.1%} |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setting", choices=tuple(SETTINGS), default="full")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--matmul-n", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    s = dict(SETTINGS[args.setting])
    for key in ("images", "epochs", "matmul_n"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if s["epochs"] < 2:
        parser.error("--epochs must be at least 2 (the first epoch traces the graph and is not timed)")

    from benchmarks import backend_epoch
    from fashion_tuner import devices

    load_before = os.getloadavg()[0]
    options = backend_epoch.FitOptions(val_images=s["val_images"])
    fit = backend_epoch.measure("tensorflow", "float32", s["images"], s["epochs"], args.data_dir, options)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    top = peak(devices.read_cpuinfo(), cores)
    # where the CPU multiplies bfloat16 natively (what --mixed-precision auto picks there), the same fit in it
    fit16 = (backend_epoch.measure("tensorflow", "mixed_bfloat16", s["images"], s["epochs"], args.data_dir, options)
             if top["bfloat16_gflops"] else None)
    rows = default_cnn_flops()
    forward = sum(r["forward_flops"] for r in rows)
    train = TRAIN_FACTOR * forward
    work = train * fit["images"] + forward * fit["val_images"]
    achieved = work / fit["epoch_s"] / 1e9
    mm = {dtype: matmul_gflops(s["matmul_n"], dtype, s["matmul_s"]) for dtype in ("float32", "bfloat16")}
    summary = {"images": fit["images"], "val_images": fit["val_images"], "epochs": s["epochs"],
               "epoch_s": fit["epoch_s"], "epoch_times_s": fit["epoch_times_s"], "forward_mflop_per_image":
               round(forward / 1e6, 3), "train_mflop_per_image": round(train / 1e6, 3),
               "achieved_gflops": round(achieved, 3), "matmul_n": s["matmul_n"], "matmul_gflops": mm, "peak": top,
               "achieved_of_peak": round(achieved / top["float32_gflops"], 4) if top["float32_gflops"] else None,
               "achieved_of_matmul": round(achieved / mm["float32"], 4),
               "bfloat16": bfloat16_summary(fit16, work, fit, top, mm) if fit16 else None,
               "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}}
    print(table(rows, summary), file=sys.stderr, flush=True)
    emit({"setting": args.setting, **summary, "layers": rows,
          "workload": "default CNN of search_spaces/cnn.py, TensorFlow float32, batch 64"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
