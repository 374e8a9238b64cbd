"""Devices, distribution strategy, precision, XLA, threads and the input pipeline for fits.

Defaults are chosen per device because they were measured to differ (benchmarks/):

- CPU: no strategy, float32, XLA off (``jit_compile`` was 2x slower on the 2-core CPU,
  mixed bfloat16 gave nothing), plain in-memory arrays unless tf.data measured no slower.
- GPU: memory growth on; ``--strategy auto`` mirrors over the GPUs when there are several
  (global batch = per-replica batch x replicas); ``--mixed-precision`` trains in
  mixed_float16 and every model must end in a float32 output layer; ``--jit auto`` is Keras'
  own rule (XLA on one GPU, off under a distribution strategy).
- Input pipeline: ``--input-pipeline auto`` is plain arrays on both until tf.data is measured
  faster (benchmarks/tfdata_epoch.py: equal within noise on the CPU, not yet run on a GPU).

``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` (environment) cap TensorFlow's
thread pools, e.g. to run several search workers side by side on one machine.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from fashion_tuner.errors import UserError

STRATEGIES = ("none", "auto", "mirrored")
INPUT_PIPELINES = ("auto", "tfdata", "arrays")
JIT_MODES = ("auto", "on", "off")
THREAD_ENV = {"intra_op": "TF_NUM_INTRAOP_THREADS", "inter_op": "TF_NUM_INTEROP_THREADS"}
# "auto" input pipeline per device: tf.data only where benchmarks/tfdata_epoch.py measured it no
# slower. CPU (2 cores): 1.01x (MLP, 60k) and 1.02x (CNN, 10k) the arrays' s/epoch; GPU: not measured.
AUTO_PIPELINE = {"cpu": "arrays", "gpu": "arrays"}


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up chatter (printed before logging is set up) silenced."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def setup(strategy: str = "none", mixed_precision: bool = False, deterministic: bool = False,
          stream=None, jit: str = "auto", input_pipeline: str = "auto") -> dict:
    """Configure TensorFlow for this process and say what is used. Returns a dict for run.json.

    Raises UserError for ``strategy="mirrored"`` without a GPU (mirroring one CPU is only slower).
    Sets the Keras global dtype policy (float32 or mixed_float16): callers restore it if needed.
    """
    stream = stream or sys.stdout
    import_tensorflow_quietly()
    import keras
    import tensorflow as tf

    threads = _apply_thread_limits(tf)
    found = gpus()
    if strategy == "mirrored" and not found:
        raise UserError("--strategy mirrored needs GPUs and TensorFlow sees none; use --strategy auto or none "
                        "(check CUDA_VISIBLE_DEVICES and that the CUDA build of TensorFlow is installed)")
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
    if jit == "on" and not found:
        print("note: --jit on: XLA was measured about 2x slower than plain TensorFlow on this CPU", file=stream)
    name = strategy_name(strategy, len(found))
    replicas = len(found) if name == "mirrored" else 1
    pipeline = resolve_input_pipeline(input_pipeline, bool(found))
    jit_s = {"auto": "auto (Keras: on for one GPU, off on CPU and under a strategy)", "on": "on", "off": "off"}[jit]
    if found:
        print(f"devices: {len(found)} GPU(s) {', '.join(g.name for g in found)}; policy {policy}; "
              f"strategy {name} ({replicas} replica(s)); jit {jit_s}; input {pipeline}", file=stream)
    else:
        limits = "".join(f"; {k} threads {v}" for k, v in threads.items() if v)
        print(f"devices: CPU only ({os.cpu_count()} cores{limits}); policy {policy}; jit {jit_s}; "
              f"input {pipeline}", file=stream)
    return {"gpus": [g.name for g in found], "cpu_count": os.cpu_count(), "policy": policy,
            "strategy": name, "replicas": replicas, "jit": jit, "input_pipeline": pipeline,
            "threads": threads, "deterministic": deterministic,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def _apply_thread_limits(tf) -> dict:
    """Apply TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS through tf.config (0 = TensorFlow's default)."""
    out = {}
    for key, env in THREAD_ENV.items():
        raw = os.environ.get(env, "").strip()
        try:
            value = int(raw) if raw else 0
        except ValueError:
            raise UserError(f"{env}={raw!r} is not a whole number of threads") from None
        out[key] = value
        if value > 0:
            setter = getattr(tf.config.threading, f"set_{key}_parallelism_threads")
            try:
                setter(value)
            except RuntimeError:  # TensorFlow already started in this process: its pools are fixed
                pass
    return out


def strategy_name(strategy: str, n_gpus: int) -> str:
    if (strategy == "mirrored" and n_gpus) or (strategy == "auto" and n_gpus > 1):
        return "mirrored"
    return "none"


def strategy_for(strategy: str):
    """A ``tf.distribute.MirroredStrategy`` over the visible GPUs for "mirrored" (or "auto" with
    more than one GPU), else None. Raises UserError for "mirrored" without a GPU."""
    found = gpus()
    if strategy == "mirrored" and not found:
        raise UserError("--strategy mirrored needs GPUs and TensorFlow sees none; use --strategy auto or none")
    if strategy_name(strategy, len(found)) != "mirrored":
        return None
    import tensorflow as tf

    return tf.distribute.MirroredStrategy([g.name.replace("physical_device:", "") for g in found])


def replicas_of(model) -> int:
    """How many replicas fit ``model`` in sync (1 without a distribution strategy)."""
    strategy = getattr(model, "distribute_strategy", None)
    return int(getattr(strategy, "num_replicas_in_sync", 1) or 1)


def resolve_input_pipeline(choice: str = "auto", on_gpu: bool | None = None) -> str:
    """"tfdata" or "arrays": the choice itself, or for "auto" the measured default of the device."""
    if choice not in INPUT_PIPELINES:
        raise UserError(f"input pipeline {choice!r}: choose one of {', '.join(INPUT_PIPELINES)}")
    if choice != "auto":
        return choice
    if on_gpu is None:
        on_gpu = bool(gpus())
    return AUTO_PIPELINE["gpu" if on_gpu else "cpu"]


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0):
    """A ``tf.data.Dataset`` of ``(images, labels)`` batches from in-memory arrays.

    ``x``: (N, 28, 28, 1) float32 pixels 0-255; ``y``: (N,) integer labels. Cached, shuffled
    over the whole set each epoch with ``seed`` (when ``shuffle``), batched, prefetched.
    Augmentation stays inside the models, so it runs on the accelerator.
    """
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle:
        data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def apply_jit(model, jit: str = "auto") -> None:
    """``jit`` "on"/"off" overrides the model's ``jit_compile``; "auto" keeps what compile() chose."""
    if jit in ("on", "off") and getattr(model, "compiled", False):
        model.jit_compile = jit == "on"


def check_output_dtype(model) -> None:
    """Under a mixed policy every model output must be float32 (softmax and loss in full precision).

    Raises ``keras_tuner.errors.FailedTrialError`` (the trial fails with this reason) otherwise.
    """
    import keras
    import keras_tuner

    if keras.mixed_precision.global_policy().compute_dtype == "float32":
        return
    bad = [str(t.dtype) for t in (getattr(model, "outputs", None) or []) if str(t.dtype) != "float32"]
    if bad:
        raise keras_tuner.errors.FailedTrialError(
            f"--mixed-precision: the model's output is {bad[0]}, not float32; give the last layer "
            "dtype=\"float32\" (e.g. keras.layers.Dense(10, activation=\"softmax\", dtype=\"float32\"))")
