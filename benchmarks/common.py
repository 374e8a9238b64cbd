"""Helpers shared by the benchmark scripts: data + split, machine facts, RSS, JSON output.

Nothing here imports TensorFlow, so the runner stays light; the scripts that train import it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SEED = 42
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")  # recorded per machine
RSS_LOG: list[dict] = []  # filled by benchmarks/space_rss_mlp.py during the memory benchmark
PACKAGES = ("tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch", "keras", "keras-tuner", "numpy", "optuna",
            "scikit-learn")


def emit(result: dict) -> None:
    """Print the one JSON line the runner reads (the last line of stdout)."""
    print(json.dumps(result, default=float), flush=True)


def last_json_line(text: str) -> dict | None:
    """The last line of ``text`` that parses as a JSON object, or None."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def rss_mb() -> float:
    """Resident memory of this process in MiB, from /proc/self/status (VmRSS)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    import resource  # not Linux: peak, not current, RSS (kB on Linux, bytes on macOS)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def load_split_data(subset: int | None, seed: int = SEED, data_dir: str | None = None, skip_md5: bool = False,
                    val_source: str = "test", val_size: float | None = None):
    """Fashion-MNIST with fashion_tuner's stratified split, exactly as ``main.py search`` makes it.

    Returns ``(dataset, (x_tr, y_tr), (x_val, y_val), (x_te, y_te))``: images uint8 ``(N, 28, 28)``,
    labels int64 ``(N,)``. With the defaults: 60,000 train, 6,000 validation and 4,000 held-out
    test images carved from the official test set (``val_size``: the validation fraction of it).
    """
    from fashion_tuner import data as data_mod
    from fashion_tuner import splits

    dataset = data_mod.load_dataset("fashion_mnist", data_dir, verify_md5=not skip_md5)
    split = splits.make_split(dataset.y_train, dataset.y_test, val_source=val_source, val_size=val_size,
                              subset=subset, seed=seed)
    tr, val, te = splits.apply_split(dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test, split)
    return dataset, tr, val, te


def data_md5(data_dir: str | None = None) -> dict:
    """``{"dir": ..., "md5": {file: md5}}`` of the Fashion-MNIST files the CLI would read."""
    from fashion_tuner import data as data_mod

    files = [f for f, *_ in data_mod.FILES["fashion_mnist"].values()]
    for directory in data_mod.candidate_dirs("fashion_mnist", data_dir):
        if all((directory / f).is_file() for f in files):
            return {"dir": str(directory), "md5": {f: data_mod.md5sum(directory / f) for f in files}}
    return {"dir": None, "md5": {}}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags(cpuinfo: str | None = None) -> str:
    """The CPU flags that set a CNN's pace here (``SPEED_FLAGS`` present in /proc/cpuinfo, or in ``cpuinfo``): the
    same "AMD EPYC" model name has come with AVX2 only and with avx512_bf16, at ~6x the bfloat16 pace."""
    from fashion_tuner import devices

    present = devices.cpu_flags(devices.read_cpuinfo() if cpuinfo is None else cpuinfo)
    return " ".join(f for f in SPEED_FLAGS if f in present)


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    return None


def gpu_names() -> list[str]:
    """GPU names from ``nvidia-smi -L`` (no TensorFlow import); empty without NVIDIA GPUs."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.split(":", 1)[1].split("(UUID")[0].strip() for line in out.splitlines() if line.startswith("GPU")]


def machine() -> dict:
    """Cores, CPU model and its speed-setting flags, memory, GPUs and OS of this machine."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    gpus = gpu_names()
    return {"cores": usable, "cpu_count": os.cpu_count(), "cpu": _cpu_model(), "cpu_flags": cpu_flags(),
            "memory_gib": _memory_gib(),
            "gpus": gpus, "device": ", ".join(gpus) if gpus else f"CPU only ({usable} cores)",
            "platform": platform.platform()}


def versions() -> dict:
    """Python and package versions from the installed metadata (nothing is imported)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        from fashion_tuner import __version__

        out["fashion_tuner"] = __version__
    except ImportError:
        pass
    out["git_commit"] = _git_commit()
    return out


def _git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (head + ("+dirty" if dirty else "")) or None


# What a search runs: a finished benchmark search is reused only while these are byte-identical.
CODE_PATHS = ("main.py", "requirements.txt", "fashion_tuner", "search_spaces")


def code_digest() -> str:
    """SHA-1 (16 hex digits) of every file a search runs (``CODE_PATHS``, ``*.py`` under folders).

    Commits that only touch the README, the benchmarks or their results keep it, so the harness
    does not redo an hour of search after committing a figure.
    """
    h = hashlib.sha1()
    for top in CODE_PATHS:
        path = REPO / top
        files = sorted(f for f in path.rglob("*.py") if "__pycache__" not in f.parts) if path.is_dir() else [path]
        for f in files:
            h.update(f.relative_to(REPO).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def shown(argv: list[str]) -> str:
    """How a command is recorded: ``python`` for this interpreter, paths inside the repo made relative."""
    import shlex

    parts = []
    for i, a in enumerate(argv):
        if i == 0 and a == sys.executable:
            a = "python"
        elif a.startswith(str(REPO) + os.sep):
            a = os.path.relpath(a, REPO)
        parts.append(a)
    return shlex.join(parts)


def run_command(argv: list[str], *, timeout: float | None = None, log: Path | None = None,
                env: dict | None = None) -> dict:
    """Run ``argv`` in the repository root; ``{"rc", "wall_s", "stdout", "stderr", "command"}``.

    ``argv[0] == "python"`` runs this interpreter. stdout/stderr also go to ``log`` when given.
    """
    import time

    real = [sys.executable if i == 0 and a == "python" else a for i, a in enumerate(argv)]
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **(env or {})}
    started = time.perf_counter()
    try:
        proc = subprocess.run(real, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=full_env)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = 124
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = (exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")) + \
            f"\ntimed out after {timeout:g} s"
    wall = time.perf_counter() - started
    prefix = "".join(f"{k}={v} " for k, v in (env or {}).items())
    command = prefix + shown(real)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {command}\n# rc {rc}, {wall:.1f} s\n--- stdout\n{out}\n--- stderr\n{err}\n")
    return {"rc": rc, "wall_s": wall, "stdout": out, "stderr": err, "command": command}


def failure(result: dict) -> str:
    """One line saying why a command failed: its last 'error:' line, else the last stderr line."""
    lines = [ln.strip() for ln in (result["stderr"] or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:") or "Error" in ln]
    reason = (errors or lines or ["no output"])[-1]
    return f"exit {result['rc']}: {reason[:300]}"
