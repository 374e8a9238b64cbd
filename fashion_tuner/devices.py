"""Devices, distribution strategy, precision, XLA, threads and the input pipeline for fits.

Works on every Keras backend (fashion_tuner.backend): TensorFlow-only pieces (tf.data, the
mirrored strategy, op determinism, thread pools) are used on TensorFlow only; JAX spreads a batch
over several devices with ``keras.distribution.DataParallel``; torch uses one device.

Defaults are chosen per device because they were measured to differ (benchmarks/):

- CPU: no strategy, float32, XLA off (``jit_compile`` was 2x slower on the 2-core CPU),
  plain in-memory arrays unless tf.data measured no slower. ``--mixed-precision auto`` trains in
  mixed_bfloat16 only where the CPU reports avx512_bf16 or AMX (:func:`auto_precision`; without
  them bfloat16 is emulated, ~14x slower per epoch on the AVX2 EPYC); ``python -m
  benchmarks.epoch_pairs --compare precision`` measures the pair.
- GPU: memory growth on; ``--strategy auto`` mirrors over the GPUs when there are several
  (global batch = per-replica batch x replicas); ``--mixed-precision`` trains in
  mixed_float16 (``--mixed-precision bfloat16``: mixed_bfloat16, also on a CPU) and every model
  must end in a float32 output layer (``auto``: float16 from compute capability 7.0; Keras wraps
  the optimizer in a LossScaleOptimizer under mixed_float16 only); ``--jit auto`` is Keras'
  own rule (XLA on one GPU, off under a distribution strategy).
- Input pipeline: ``--input-pipeline auto`` is plain arrays on both until tf.data is measured
  faster (benchmarks/tfdata_epoch.py: equal within noise on the CPU, not yet run on a GPU).

``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` (environment) cap TensorFlow's
thread pools, e.g. to run several search workers side by side on one machine.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from fashion_tuner import backend
from fashion_tuner.errors import UserError

log = logging.getLogger(__name__)

STRATEGIES = ("none", "auto", "mirrored")
INPUT_PIPELINES = ("auto", "tfdata", "arrays")
JIT_MODES = ("auto", "on", "off")
MIXED_PRECISION = ("auto", "float32", "float16", "bfloat16")  # float32: no mixed precision
# --mixed-precision when the flag is not given (search; retrain-best follows the run's). "auto" since
# `python -m benchmarks.run --suite full --only precision` measured mixed_bfloat16 x1.31 faster per
# full-data epoch at equal accuracy (+0.08 pp, 3 seeds) on a 2-core Xeon with AMX (issue 27).
DEFAULT_MIXED_PRECISION = "auto"
# "auto": bfloat16 where the CPU runs it natively (oneDNN: AVX-512 BF16 or AMX tiles; without them
# bfloat16 is emulated and slower) and the backend is one whose CPU bfloat16 was measured,
# float16 on CUDA GPUs with tensor cores (compute capability >= 7.0).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")
BF16_CPU_BACKENDS = ("tensorflow",)  # JAX's and torch's CPU bfloat16: not measured, float32 there
FP16_MIN_CAPABILITY = (7, 0)
CPUINFO = "/proc/cpuinfo"
THREAD_ENV = {"intra_op": "TF_NUM_INTRAOP_THREADS", "inter_op": "TF_NUM_INTEROP_THREADS"}
# "auto" input pipeline per device: tf.data only where benchmarks/tfdata_epoch.py measured it no
# slower. CPU (2 cores): 1.01x (MLP, 60k) and 1.02x (CNN, 10k) the arrays' s/epoch; GPU: not measured.
AUTO_PIPELINE = {"cpu": "arrays", "gpu": "arrays"}
# What setup() chose; apply_trial_settings() restores it after keras.backend.clear_session().
# "info" is the dict setup() returned (its policy and precision record are updated in place when auto
# falls back to float32: run.json then says what trials trained in).
_STATE: dict = {"policy": "float32", "distribution": None, "info": None}


def import_tensorflow_quietly() -> None:
    """Import the selected backend's framework (TensorFlow only on the tensorflow backend) and Keras,
    with the C++ start-up chatter silenced. Kept under its old name; see backend.import_quietly."""
    backend.import_quietly()


def gpus() -> list[str]:
    """Names of the GPUs the current Keras backend sees."""
    return backend.accelerators()


def mixed_policy(choice) -> str | None:
    """``--mixed-precision`` value -> "auto" | "float16" | "bfloat16" | None (float32; True, from runs
    before the flag took a value, means float16)."""
    if choice in (None, False, "", "none", "float32"):
        return None
    if choice is True:
        return "float16"
    if choice not in MIXED_PRECISION:
        raise UserError(f"--mixed-precision {choice!r}: choose one of {', '.join(MIXED_PRECISION)}")
    return choice


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags every processor of ``cpuinfo`` (the text of /proc/cpuinfo) reports: x86
    ``flags`` lines, ARM ``Features`` lines. Empty when there are none (not Linux)."""
    sets = [set(line.split(":", 1)[1].split()) for line in cpuinfo.splitlines()
            if ":" in line and line.split(":", 1)[0].strip().lower() in ("flags", "features")]
    return set.intersection(*sets) if sets else set()


def auto_precision(cpuinfo: str, gpu_capabilities: list | None = None,
                   backend_name: str = "tensorflow") -> tuple[str | None, str]:
    """What ``--mixed-precision auto`` trains in: ``(choice, reason)``, choice "float16" | "bfloat16" |
    None (float32), reason one line for run.json.

    ``cpuinfo``: the text of /proc/cpuinfo; ``gpu_capabilities``: the CUDA compute capability
    ``(major, minor)`` of each GPU that trains (None for one that does not say), empty or None on a
    CPU. GPUs decide when there are any (float16 if every one is >= FP16_MIN_CAPABILITY), else the
    CPU's flags (bfloat16 if it reports one of BF16_CPU_FLAGS and ``backend_name`` is one of
    BF16_CPU_BACKENDS).
    """
    floor = ".".join(map(str, FP16_MIN_CAPABILITY))
    if gpu_capabilities:
        known = [c for c in gpu_capabilities if c is not None]
        if len(known) < len(gpu_capabilities):
            return None, "a GPU without a CUDA compute capability: float32"
        low = min(tuple(c) for c in known)
        shown = ".".join(map(str, low))
        if low >= FP16_MIN_CAPABILITY:
            return "float16", f"CUDA GPU compute capability {shown} >= {floor} (float16 tensor cores)"
        return None, f"CUDA GPU compute capability {shown} < {floor} (no fast float16): float32"
    found = [f for f in BF16_CPU_FLAGS if f in cpu_flags(cpuinfo)]
    if found and backend_name not in BF16_CPU_BACKENDS:
        return None, (f"CPU reports {', '.join(found)}, but bfloat16 on a CPU was measured faster only under "
                      f"{', '.join(BF16_CPU_BACKENDS)} (the {backend_name} backend: not measured): float32")
    if found:
        return "bfloat16", f"CPU reports {', '.join(found)} (native bfloat16 matrix products)"
    return None, f"CPU reports none of {', '.join(BF16_CPU_FLAGS)} (bfloat16 would be emulated): float32"


def read_cpuinfo(path: str = CPUINFO) -> str:
    """The text of /proc/cpuinfo, or "" where there is none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def choose_precision(choice, on_gpu: bool, cpuinfo: str = "", gpu_capabilities: list | None = None,
                     backend_name: str = "tensorflow") -> dict:
    """``{"requested", "policy", "reason"}`` for ``--mixed-precision choice`` on this device; "auto" is
    decided by :func:`auto_precision` from ``cpuinfo``, ``gpu_capabilities`` and ``backend_name``.
    Recorded in run.json (``devices.precision``) and retrain-best's metrics.json."""
    mixed = mixed_policy(choice)
    requested = mixed or "float32"
    if mixed == "auto":
        picked, reason = auto_precision(cpuinfo, gpu_capabilities if on_gpu else None, backend_name)
        return {"requested": "auto", "policy": f"mixed_{picked}" if picked else "float32", "reason": reason}
    policy = policy_for(mixed, on_gpu)
    if mixed == "float16" and policy == "float32":
        reason = "float16 needs a GPU: float32 on a CPU"
    else:
        reason = "requested" if mixed or choice == "float32" else "the default (no --mixed-precision)"
    return {"requested": requested, "policy": policy, "reason": reason}


def policy_for(choice, on_gpu: bool) -> str:
    """The Keras dtype policy for ``--mixed-precision choice`` on this device: float16 needs a GPU
    (CPUs have no fast float16 matmul; it falls back to float32 with a note), bfloat16 runs anywhere."""
    mixed = mixed_policy(choice)
    if mixed == "auto":
        return choose_precision("auto", on_gpu, read_cpuinfo(), backend.gpu_capabilities() if on_gpu else None,
                                backend.current())["policy"]
    if mixed == "float16" and not on_gpu:
        log.info("note: --mixed-precision float16 needs a GPU; training in float32 on CPU "
                 "(--mixed-precision bfloat16 runs on a CPU)")
        return "float32"
    return f"mixed_{mixed}" if mixed else "float32"


def setup(strategy: str = "none", mixed_precision=None, deterministic: bool = False,
          jit: str = "auto", input_pipeline: str = "auto", announce: bool = True, cpuinfo: str | None = None) -> dict:
    """Configure the Keras backend for this process and say what is used. Returns a dict for run.json.

    ``mixed_precision``: None, "auto" (:func:`auto_precision`), "float16" (GPU only) or "bfloat16" (True
    means float16); what was chosen and why is the result's ``precision``.
    Raises UserError for ``strategy="mirrored"`` without a GPU (mirroring one CPU is only slower).
    Sets the Keras global dtype policy and, on JAX with several devices, the distribution; both are
    remembered, and :func:`apply_trial_settings` re-applies them after ``clear_session`` (Keras
    Tuner clears the session before every trial's build, which resets them). ``announce``: log the
    devices line at INFO (else DEBUG: the later child processes of one search). ``cpuinfo``: the text
    "auto" decides from (None: this machine's /proc/cpuinfo).
    """
    backend.import_quietly()
    name = backend.current()
    threads = _apply_thread_limits(name)
    found = gpus()
    if strategy == "mirrored" and not found:
        raise UserError(f"--strategy mirrored needs GPUs and the {name} backend sees none; use --strategy auto or "
                        "none (check CUDA_VISIBLE_DEVICES and that the CUDA build of the backend is installed)")
    if name == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:  # already initialised in this process
                pass
    precision = choose_precision(mixed_precision, bool(found), read_cpuinfo() if cpuinfo is None else cpuinfo,
                                 backend.gpu_capabilities() if found else None, name)
    policy = precision["policy"]
    if precision["requested"] == "auto":
        log.log(logging.INFO if announce else logging.DEBUG, "--mixed-precision auto: %s (%s)", policy,
                precision["reason"])
    if deterministic:
        _enable_determinism(name)
    if jit == "on" and not found:
        log.info("note: --jit on: XLA was measured about 2x slower than plain TensorFlow on this CPU")
    replicas = strategy_replicas(strategy, len(found), name)
    strat = strategy_name(strategy, len(found), name)
    _STATE.update(policy=policy, distribution=_make_distribution(strat, name))
    apply_trial_settings()
    if name == "torch" and len(found) > 1:
        log.info("note: the torch backend trains on one device (%s); Keras has no multi-GPU data parallelism "
                 "for torch: use --backend jax or tensorflow for several GPUs", found[0])
    pipeline = resolve_input_pipeline(input_pipeline, bool(found))
    jit_s = {"auto": "auto (Keras: on for one GPU, off on CPU and under a strategy)", "on": "on", "off": "off"}[jit]
    level = logging.INFO if announce else logging.DEBUG
    if found:
        log.log(level, f"devices: {len(found)} GPU(s) {', '.join(found)}; backend {name}; policy {policy}; "
                f"strategy {strat} ({replicas} replica(s)); jit {jit_s}; input {pipeline}")
    else:
        limits = "".join(f"; {k} threads {v}" for k, v in threads.items() if v)
        log.log(level, f"devices: CPU only ({os.cpu_count()} cores{limits}); backend {name}; policy {policy}; "
                f"jit {jit_s}; input {pipeline}")
    _STATE["info"] = {"backend": name, "backend_version": backend.version(name), "gpus": found,
                      "cpu_count": os.cpu_count(), "policy": policy, "precision": precision, "strategy": strat,
                      "replicas": replicas, "jit": jit,
                      "input_pipeline": pipeline, "threads": threads, "deterministic": deterministic,
                      "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    return _STATE["info"]


def apply_trial_settings() -> None:
    """Set the dtype policy and distribution chosen by :func:`setup` again.

    ``keras.backend.clear_session()`` (Keras Tuner runs it before every trial's build, retrain-best
    between models) resets both to float32 / no distribution; call this right before building a model.
    """
    import keras

    keras.config.set_dtype_policy(_STATE["policy"])
    if backend.current() == "jax":
        keras.distribution.set_distribution(_STATE["distribution"])


def _make_distribution(strategy: str, name: str):
    """A ``keras.distribution.DataParallel`` over every JAX device for a data-parallel strategy on JAX."""
    if name != "jax" or strategy != "data_parallel":
        return None
    import keras

    return keras.distribution.DataParallel(devices=backend.jax_devices())


def _enable_determinism(name: str) -> None:
    """Deterministic kernels: TensorFlow op determinism, torch deterministic algorithms; JAX on a GPU
    needs ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` before it starts (said, not set: too late here)."""
    if name == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif name == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)
    elif "xla_gpu_deterministic_ops" not in os.environ.get("XLA_FLAGS", "") and gpus():
        log.info("note: --deterministic on JAX GPUs needs XLA_FLAGS=--xla_gpu_deterministic_ops=true in the "
                 "environment before the search starts")


def _apply_thread_limits(name) -> dict:
    """Apply TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS (0 = the backend's default): through
    tf.config on TensorFlow, torch.set_num_threads on torch; JAX/XLA has no such setting at run time.

    ``name`` may also be the ``tensorflow`` module itself (older callers)."""
    out = {}
    for key, env in THREAD_ENV.items():
        raw = os.environ.get(env, "").strip()
        try:
            value = int(raw) if raw else 0
        except ValueError:
            raise UserError(f"{env}={raw!r} is not a whole number of threads") from None
        out[key] = value
        if value <= 0:
            continue
        if not isinstance(name, str) or name == "tensorflow":
            import tensorflow as tf

            setter = getattr(tf.config.threading, f"set_{key}_parallelism_threads")
        elif name == "torch":
            import torch

            setter = torch.set_num_threads if key == "intra_op" else torch.set_num_interop_threads
        else:
            continue
        try:
            setter(value)
        except RuntimeError:  # the framework already started its pools in this process
            pass
    return out


def strategy_name(strategy: str, n_gpus: int, name: str = "tensorflow") -> str:
    """"mirrored" (TensorFlow), "data_parallel" (JAX) or "none" for ``--strategy`` and the GPU count."""
    several = (strategy == "mirrored" and n_gpus) or (strategy == "auto" and n_gpus > 1)
    if not several or name == "torch":
        return "none"
    return "mirrored" if name == "tensorflow" else "data_parallel"


def strategy_replicas(strategy: str, n_gpus: int, name: str = "tensorflow") -> int:
    return n_gpus if strategy_name(strategy, n_gpus, name) != "none" else 1


def strategy_for(strategy: str):
    """A ``tf.distribute.MirroredStrategy`` over the visible GPUs for "mirrored" (or "auto" with
    more than one GPU) on TensorFlow, else None (JAX distributes through keras.distribution, see
    :func:`setup`). Raises UserError for "mirrored" without a GPU."""
    found = gpus()
    name = backend.current()
    if strategy == "mirrored" and not found:
        raise UserError(f"--strategy mirrored needs GPUs and the {name} backend sees none; "
                        "use --strategy auto or none")
    if strategy_name(strategy, len(found), name) != "mirrored":
        return None
    import tensorflow as tf

    return tf.distribute.MirroredStrategy([g.replace("physical_device:", "") for g in found])


def replicas_of(model) -> int:
    """How many replicas fit ``model`` in sync: a TensorFlow strategy's, the devices of a JAX
    DataParallel distribution, else 1."""
    strategy = getattr(model, "distribute_strategy", None)
    replicas = int(getattr(strategy, "num_replicas_in_sync", 1) or 1)
    distribution = _STATE["distribution"]
    if replicas == 1 and distribution is not None and backend.current() == "jax":
        replicas = int(np.size(distribution.device_mesh.devices))
    return replicas


def resolve_input_pipeline(choice: str = "auto", on_gpu: bool | None = None) -> str:
    """"tfdata" or "arrays": the choice itself, or for "auto" the measured default of the device."""
    if choice not in INPUT_PIPELINES:
        raise UserError(f"input pipeline {choice!r}: choose one of {', '.join(INPUT_PIPELINES)}")
    if choice == "tfdata" and backend.current() != "tensorflow":
        raise UserError(f"--input-pipeline tfdata needs the tensorflow backend (this is {backend.current()}); "
                        "use --input-pipeline arrays or auto")
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


def float32_copy(model):
    """The same model computing in float32: a model saved under a mixed policy keeps that policy per
    layer when loaded (a CPU without bfloat16 instructions then emulates it, several times slower).
    Rebuilt from its config with every layer's dtype policy float32 and given the same weights (the
    variables of a mixed policy are float32 already). Custom layers must be registered (load the space)."""
    import keras

    def to_float32(config):
        if isinstance(config, dict):
            if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
                return {**config, "config": {**config["config"], "name": "float32"}}
            return {k: to_float32(v) for k, v in config.items()}
        if isinstance(config, list):
            return [to_float32(v) for v in config]
        return config

    copy = model.__class__.from_config(to_float32(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


def _low_precision_outputs(model) -> list[str]:
    """The dtypes of ``model``'s outputs that are not float32 (empty under a float32 policy)."""
    import keras

    if keras.mixed_precision.global_policy().compute_dtype == "float32":
        return []
    return [str(t.dtype) for t in (getattr(model, "outputs", None) or []) if str(t.dtype) != "float32"]


def check_output_dtype(model) -> None:
    """Under a mixed policy every model output must be float32 (softmax and loss in full precision).

    Raises ``keras_tuner.errors.FailedTrialError`` (the trial fails with this reason) otherwise.
    """
    import keras_tuner

    bad = _low_precision_outputs(model)
    if bad:
        raise keras_tuner.errors.FailedTrialError(
            f"--mixed-precision: the model's output is {bad[0]}, not float32; give the last layer "
            "dtype=\"float32\" (e.g. keras.layers.Dense(10, activation=\"softmax\", dtype=\"float32\"))")


def build_model(build):
    """``build()`` (a model builder of no arguments) under the policy :func:`setup` chose -> the model.

    A mixed policy needs float32 outputs. Asked for explicitly (``--mixed-precision bfloat16``), a model
    without one fails its trial (:func:`check_output_dtype`). Under "auto", a space written without
    ``dtype="float32"`` on its last layer is not an error: this process falls back to float32 (said
    once, recorded in the policy and precision record of the dict :func:`setup` returned) and the
    model is built again.
    """
    apply_trial_settings()
    model = build()
    bad = _low_precision_outputs(model)
    info = _STATE["info"] or {}
    record = info.get("precision") or {}
    if not bad:
        return model
    if record.get("requested") != "auto":
        check_output_dtype(model)  # raises: an explicit mixed policy needs a float32 output
    log.warning("--mixed-precision auto: the space's model outputs %s, not float32; training in float32 "
                "(give its last layer dtype=\"float32\" to train in %s)", bad[0], _STATE["policy"])
    record.update(policy="float32", reason=f"{record.get('reason', '')}; the space's output was {bad[0]}, "
                                           "so float32 (give its last layer dtype=\"float32\")")
    info["policy"] = _STATE["policy"] = "float32"
    apply_trial_settings()
    return build()
