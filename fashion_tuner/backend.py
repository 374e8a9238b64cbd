"""Which Keras backend runs the fits: TensorFlow, JAX or PyTorch (``--backend``).

Keras 3 reads ``KERAS_BACKEND`` once, when ``keras`` is first imported, so :func:`select` must
run before anything imports Keras (the CLI calls it right after parsing its arguments, before
any command module loads Keras). Nothing here imports Keras or a framework except
:func:`import_quietly` and :func:`accelerators`.

- ``tensorflow`` (default): everything, including ``tf.data`` input, ``MirroredStrategy`` over
  several GPUs and TensorFlow op determinism. The fastest on a CPU (benchmarks/backends.py).
- ``jax``: plain arrays; several GPUs through ``keras.distribution.DataParallel``; GPU memory is
  taken as needed (``XLA_PYTHON_CLIENT_PREALLOCATE=false``, set here unless already set).
- ``torch``: plain arrays, one device (the first GPU, else the CPU).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import sys

from fashion_tuner import hints
from fashion_tuner.errors import UserError

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"
ENV = "KERAS_BACKEND"
# The distribution(s) that carry each backend's version (the first one installed is reported).
DISTRIBUTIONS = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly"),
                 "jax": ("jax",), "torch": ("torch",)}
MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
IN_REQUIREMENTS = ("tensorflow", "jax")  # requirements.txt installs these into .venv (scripts/setup.sh)
HOW_TO_INSTALL = {
    "tensorflow": "pip install tensorflow-cpu==2.21.0 (GPU: pip install 'tensorflow[and-cuda]==2.21.0')",
    "jax": "pip install jax (GPU: pip install 'jax[cuda12]')",
    "torch": "pip install torch --index-url https://download.pytorch.org/whl/cpu "
             "(GPU: pip install torch, the CUDA build)",
}


def requested(name: str | None = None) -> str:
    """``name``, else ``$KERAS_BACKEND``, else tensorflow; UserError for anything else."""
    choice = (name or os.environ.get(ENV) or DEFAULT_BACKEND).strip().lower()
    if choice not in BACKENDS:
        source = "--backend" if name else f"{ENV}"
        raise UserError(f"{source} {choice!r}: choose one of {', '.join(BACKENDS)}")
    return choice


def select(name: str | None = None, require: bool = True) -> str:
    """Make ``name`` (or ``$KERAS_BACKEND``, or tensorflow) the Keras backend of this process and
    of the processes it starts; returns it.

    Raises UserError when the backend's framework is not installed (``require``: commands that
    never load Keras pass False), or when Keras is already loaded on another backend (it cannot
    switch once imported).
    """
    choice = requested(name)
    if require and importlib.util.find_spec(MODULES[choice]) is None:
        if choice in IN_REQUIREMENTS and not hints.in_project_venv():  # not set up: pip here is the wrong Python
            raise UserError(hints.set_up_first(f"does not have {MODULES[choice]} (--backend {choice})"))
        raise UserError(f"--backend {choice}: {MODULES[choice]} is not installed; {HOW_TO_INSTALL[choice]}")
    loaded = loaded_backend()
    if loaded is not None and loaded != choice:
        raise UserError(f"--backend {choice}: Keras is already loaded in this process on {loaded}; "
                        "start a new process (the backend is chosen before Keras is imported)")
    os.environ[ENV] = choice
    if choice == "jax":
        # JAX takes 75% of every GPU's memory at start by default; several searches, a chief and its
        # workers, or TensorFlow beside it could then not share a GPU.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return choice


def loaded_backend() -> str | None:
    """The backend Keras runs on when it is already imported in this process, else None."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return keras.backend.backend()
    except AttributeError:  # keras is being imported right now
        return os.environ.get(ENV, DEFAULT_BACKEND)


def current() -> str:
    """The backend this process uses (the loaded one, else the one selected)."""
    return loaded_backend() or requested()


def version(name: str | None = None) -> str | None:
    """The installed version of the backend's framework (from package metadata: nothing is imported)."""
    for dist in DISTRIBUTIONS[name or current()]:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


@contextlib.contextmanager
def stderr_silenced():
    """File descriptor 2 points at /dev/null inside the block: C++ libraries (TensorFlow's start-up lines)
    write there directly, before Python's logging is set up, so ``sys.stderr`` alone cannot hide them."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def import_quietly() -> None:
    """Import the backend's framework with its C++ start-up chatter (printed before logging is set
    up) silenced, then Keras. TensorFlow is imported on the tensorflow backend only."""
    module = MODULES[current()]
    if module not in sys.modules:
        with stderr_silenced():
            importlib.import_module(module)
    import keras  # noqa: F401


def accelerators() -> list[str]:
    """Names of the GPUs the current backend sees (empty on a CPU-only machine)."""
    name = current()
    if name == "tensorflow":
        import tensorflow as tf

        return [g.name for g in tf.config.list_physical_devices("GPU")]
    if name == "jax":
        import jax

        try:
            return [f"{d.platform}:{d.id}" for d in jax.devices() if d.platform in ("gpu", "cuda", "rocm")]
        except RuntimeError:  # no usable platform at all
            return []
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def gpu_capabilities() -> list[tuple[int, int] | None]:
    """CUDA compute capability ``(major, minor)`` of each GPU the current backend sees (None where the
    backend does not say, e.g. a ROCm device); empty on a CPU-only machine."""
    name = current()
    if name == "tensorflow":
        import tensorflow as tf

        out = []
        for gpu in tf.config.list_physical_devices("GPU"):
            cap = tf.config.experimental.get_device_details(gpu).get("compute_capability")
            out.append(tuple(int(v) for v in cap) if cap else None)
        return out
    if name == "jax":
        import jax

        try:
            found = [d for d in jax.devices() if d.platform in ("gpu", "cuda", "rocm")]
        except RuntimeError:  # no usable platform at all
            return []
        out = []
        for device in found:
            cap = getattr(device, "compute_capability", None)  # "8.0" on CUDA
            out.append(tuple(int(v) for v in str(cap).split(".")[:2]) if cap else None)
        return out
    import torch

    if not torch.cuda.is_available() or torch.version.cuda is None:
        return [None] * torch.cuda.device_count() if torch.cuda.is_available() else []
    return [tuple(torch.cuda.get_device_capability(i)) for i in range(torch.cuda.device_count())]


def jax_devices() -> list:
    """The JAX devices a data-parallel distribution would use (GPUs when present, else CPUs)."""
    import jax

    return jax.devices()
