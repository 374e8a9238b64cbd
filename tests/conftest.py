"""Shared fixtures: real Fashion-MNIST when installed, else small IDX files written here."""

from __future__ import annotations

import contextlib
import gc
import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SYSTEM_DATA = Path("/usr/share/datasets/fashion-mnist")
sys.path.insert(0, str(REPO))

from fashion_tuner import data as data_mod  # noqa: E402
from fashion_tuner import logs  # noqa: E402

logs.configure()  # the library's messages reach stdout/stderr as they do under the CLI


def lose_a_sigint() -> None:
    """Deliver SIGINT while a gc callback runs, as JAX's does under Keras: Python prints the
    KeyboardInterrupt as "Exception ignored" and drops it (the CI failure fashion_tuner.interrupts fixes)."""
    def callback(phase, info):
        if phase == "start":
            gc.callbacks.remove(callback)
            signal.raise_signal(signal.SIGINT)  # the handler runs here, inside the callback
    gc.callbacks.append(callback)
    gc.collect()  # returns normally: the interrupt was lost


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8, 1-D labels or 3-D images) as a gzipped IDX file (the fastest compression
    level: the full training set takes ~1 s, not the ~15 s of gzip's default)."""
    magic = data_mod.IMAGE_MAGIC if array.ndim == 3 else data_mod.LABEL_MAGIC
    header = struct.pack(">i", magic) + struct.pack(">" + "i" * array.ndim, *array.shape)
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def synthetic_arrays(n_train: int = 3000, n_test: int = 1000, seed: int = 0):
    """Learnable fake images: each class is a bright bar at its own place, plus noise."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = np.arange(n) % 10
        rng.shuffle(y)
        x = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
        for cls in range(10):
            x[y == cls, 2 + 2 * cls: 5 + 2 * cls, 4:24] = 230
        return x, y.astype(np.uint8)

    return make(n_train), make(n_test)


def write_idx_set(directory: Path, n_train: int = 3000, n_test: int = 1000, seed: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (x_tr, y_tr), (x_te, y_te) = synthetic_arrays(n_train, n_test, seed)
    files = data_mod.FILES["fashion_mnist"]
    write_idx(directory / files["train_images"][0], x_tr)
    write_idx(directory / files["train_labels"][0], y_tr)
    write_idx(directory / files["test_images"][0], x_te)
    write_idx(directory / files["test_labels"][0], y_te)
    return directory


@pytest.fixture(scope="session")
def data_source(tmp_path_factory) -> dict:
    """Where tests read data: the real files when installed, else synthetic IDX (MD5 check off)."""
    if all((SYSTEM_DATA / f).is_file() for f, *_ in data_mod.FILES["fashion_mnist"].values()):
        return {"dir": SYSTEM_DATA, "skip_md5": False, "real": True}
    return {"dir": write_idx_set(tmp_path_factory.mktemp("idx")), "skip_md5": True, "real": False}


@pytest.fixture(scope="session")
def fashion(data_source) -> data_mod.Dataset:
    return data_mod.load_dataset("fashion_mnist", data_source["dir"], verify_md5=not data_source["skip_md5"],
                                 allow_download=False)


@pytest.fixture
def data_args(data_source) -> list[str]:
    """CLI arguments pointing at the test data."""
    return ["--data-dir", str(data_source["dir"])] + (["--skip-md5"] if data_source["skip_md5"] else [])


def run_cli(*args: str, cwd: Path = REPO, timeout: float = 300, env: dict | None = None,
            python: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python main.py ARGS`` in a subprocess (the way users run it); ``python``: the interpreter's
    command line (default this one)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([*(python or [sys.executable]), str(REPO / "main.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=full_env)


def tree_snapshot(root: Path) -> dict:
    """{relative path: (size, mtime_ns)} of every file under root, to prove nothing changed."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


def search_config(data_source: dict, results_dir: Path, **overrides):
    """A small SearchConfig on the test data: 600 images, 1 epoch, 2 random trials."""
    from fashion_tuner.search import SearchConfig

    cfg = dict(space="mlp", tuner="random", max_trials=2, max_epochs=1, subset=600, results_dir=str(results_dir),
               data_dir=str(data_source["dir"]), skip_md5=data_source["skip_md5"], seed=1, batch_size=64)
    cfg.update(overrides)
    return SearchConfig(**cfg)


@pytest.fixture(scope="session")
def tiny_run(data_source, tmp_path_factory) -> Path:
    """A finished 2-trial MLP search (600 training images, 1 epoch): a real run directory.

    Session-scoped and shared: tests must not modify it (copy it first).
    """
    from fashion_tuner.search import run_search

    return run_search(search_config(data_source, tmp_path_factory.mktemp("results"), name="tiny"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served(command: str, path: str, timeout: float = 150):
    """Start the server ``command`` (a printed command line, run from the repository root as a user would,
    plus ``--host 127.0.0.1 --port P``), wait until ``GET path`` answers 200, yield ``(base_url, JSON body)``;
    the server is stopped (by its pid) however the block ends."""
    import shlex
    import urllib.request

    import tempfile

    port = free_port()
    # the server's log goes to a file: a pipe nobody reads fills up and blocks a chatty server before it serves
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([*shlex.split(command), "--host", "127.0.0.1", "--port", str(port)], cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, body = time.monotonic() + timeout, None
        while body is None:
            if proc.poll() is not None:
                log.seek(0)
                raise AssertionError(f"{command} exited {proc.returncode}: {log.read()[-1500:]}")
            left = deadline - time.monotonic()
            if left <= 0:
                log.seek(0)
                raise AssertionError(f"{command}: {base}{path} did not answer in {timeout:.0f} s; "
                                     f"its log: {log.read()[-1500:]}")
            try:
                # one request at a time, waiting as long as the deadline allows: a single-threaded server
                # (wsgiref) that takes longer than a short client timeout per request would otherwise queue
                # abandoned requests and never catch up on a loaded machine
                with urllib.request.urlopen(base + path, timeout=max(left, 1)) as response:
                    body = json.loads(response.read())
            except OSError:
                time.sleep(0.25)
        yield base, body
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
