"""Devices, distribution strategy, mixed precision and determinism for fits.

On CPU nothing is changed (XLA and bfloat16 were measured no faster on the 2-core CPU);
on GPU memory growth is enabled, and ``--strategy``/``--mixed-precision`` apply.
"""

from __future__ import annotations

import os
import sys

STRATEGIES = ("none", "auto", "mirrored")


def gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def setup(strategy: str = "none", mixed_precision: bool = False, deterministic: bool = False,
          stream=None) -> dict:
    """Configure TensorFlow for this process and say what is used. Returns a dict for run.json."""
    stream = stream or sys.stdout
    import keras
    import tensorflow as tf

    found = gpus()
    for gpu in found:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process
            pass
    policy = "float32"
    if mixed_precision:
        if found:
            policy = "mixed_float16"
        else:
            print("note: --mixed-precision needs a GPU; training in float32 on CPU", file=stream)
    keras.mixed_precision.set_global_policy(policy)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    replicas = len(found) if (strategy == "mirrored" or (strategy == "auto" and len(found) > 1)) else 1
    if found:
        names = [g.name for g in found]
        print(f"devices: {len(found)} GPU(s) {', '.join(names)}; policy {policy}; "
              f"strategy {strategy_name(strategy, len(found))}", file=stream)
    else:
        print(f"devices: CPU only ({os.cpu_count()} cores); policy {policy}", file=stream)
    return {"gpus": [g.name for g in found], "cpu_count": os.cpu_count(), "policy": policy,
            "strategy": strategy_name(strategy, len(found)), "replicas": replicas,
            "deterministic": deterministic,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def strategy_name(strategy: str, n_gpus: int) -> str:
    if strategy == "mirrored" or (strategy == "auto" and n_gpus > 1):
        return "mirrored"
    return "none"


def strategy_for(strategy: str):
    """A ``tf.distribute.MirroredStrategy`` for "mirrored" (or "auto" with >1 GPU), else None."""
    if strategy_name(strategy, len(gpus())) != "mirrored":
        return None
    import tensorflow as tf

    return tf.distribute.MirroredStrategy()
