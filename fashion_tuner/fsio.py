"""Files a run depends on: written whole or not at all, and a full disk said in one line.

Every JSON file of a run (ours and Keras Tuner's, see :mod:`fashion_tuner.kt_compat`) is
written to a temporary file beside it, flushed to disk and renamed over the old one: a killed
process or a full disk leaves the previous version, never half a file.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from fashion_tuner.errors import UserError

# A search refuses to start a trial with less free space than this on the run's file system
# (megabytes; FASHION_TUNER_MIN_FREE_MB overrides): libhdf5 crashes the process (SIGSEGV) when a
# checkpoint write hits a full disk, so the check must come before the write.
MIN_FREE_MB = 100
MIN_FREE_ENV = "FASHION_TUNER_MIN_FREE_MB"


class DiskFull(UserError):
    """The run's disk is (nearly) full: the run stops, resumable once space is freed."""


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` by ``text`` atomically (temp file + fsync + rename in the same folder)."""
    _atomic_write(path, "w", lambda fh: fh.write(text))


def atomic_savez(path: str | os.PathLike, **arrays) -> None:
    """Replace ``path`` by a plain ``.npz`` of ``arrays`` (no pickled objects) atomically."""
    import numpy as np

    _atomic_write(path, "wb", lambda fh: np.savez(fh, **arrays))


def _atomic_write(path: str | os.PathLike, mode: str, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it and rename it over ``path``;
    on any error the temporary file is removed and ``path`` keeps its previous content."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)  # a stale one, or a planted symlink (the link goes, its target is untouched)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with open(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def is_disk_full(exc: BaseException) -> bool:
    """True for the errors a full disk (or quota) gives, from Python, h5py or TensorFlow."""
    for e in _chain(exc):
        if isinstance(e, DiskFull):
            return True
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(e) or "Disk quota exceeded" in str(e):
            return True
    return False


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def min_free_bytes() -> int:
    raw = os.environ.get(MIN_FREE_ENV, "").strip()
    try:
        return int(float(raw) * 1e6) if raw else MIN_FREE_MB * 1_000_000
    except ValueError:
        raise UserError(f"{MIN_FREE_ENV}={raw!r} is not a number of megabytes") from None


def check_free_space(path: str | os.PathLike) -> None:
    """UserError when the file system holding ``path`` has less than :func:`min_free_bytes` free."""
    probe = Path(path)
    while not probe.exists():
        probe = probe.parent
    free, need = shutil.disk_usage(probe).free, min_free_bytes()
    if free < need:
        raise disk_full_error(probe, free)


def disk_full_error(path: str | os.PathLike, free: int | None = None) -> DiskFull:
    if free is None:
        probe = Path(path)
        while not probe.exists():
            probe = probe.parent
        try:
            free = shutil.disk_usage(probe).free
        except OSError:
            free = None
    have = f" ({free / 1e6:.0f} MB free)" if free is not None else ""
    return DiskFull(f"no space left on the disk holding {path}{have}: free at least {min_free_bytes() / 1e6:.0f} MB "
                     "(or set " + MIN_FREE_ENV + "), then rerun the same command to resume; finished trials are kept")
