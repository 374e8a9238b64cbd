"""One writer per run: a lock held for the whole life of a search or a retrain-best.

The lock is ``fcntl.flock`` on ``<results root>/.locks/<run name>.lock`` (beside the run, not
inside it, so ``--overwrite`` can delete the run while holding it). The kernel releases a flock
when the holding process dies, however it dies, so a killed search never blocks its own resume:
there is no pid file to go stale. The file holds one line about the holder (pid, command, host,
start time) for the message a second writer gets.

A search run in fresh child processes (``--trials-per-process``) takes the lock in the parent
and hands the open file to each child (its descriptor number in ``FASHION_TUNER_LOCK_FD``): the
child shares the parent's lock instead of competing with it. Distributed workers take no lock:
they write only their own trial folders and ``tuner<ID>.json``, while the chief holds the run's
lock. The lock is advisory: it stops other fashion_tuner commands, not other programs.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import stat
from datetime import datetime, timezone
from pathlib import Path

from fashion_tuner import rundir
from fashion_tuner.errors import UserError

LOCKS_DIR = ".locks"
LOCK_FD_ENV = "FASHION_TUNER_LOCK_FD"

log = logging.getLogger(__name__)


def lock_path(run_dir: str | os.PathLike) -> Path:
    """Where the lock of ``run_dir`` lives (the same file for every path that reaches the run)."""
    run_dir = Path(run_dir).expanduser().resolve()
    return run_dir.parent / LOCKS_DIR / f"{run_dir.name}.lock"


class RunLock:
    """An exclusive, non-blocking lock on one run; use as a context manager.

    ``acquire`` raises UserError naming the holder when another process holds the lock.
    """

    def __init__(self, run_dir: str | os.PathLike, command: str):
        self.run_dir = Path(run_dir)
        self.path = lock_path(run_dir)
        self.command = command
        self.fd: int | None = None
        self.inherited = False
        self._made: list[Path] = []  # folders this lock created, removed again when empty

    def acquire(self) -> "RunLock":
        fd = _inherited_fd(self.path)
        if fd is not None:
            self.fd, self.inherited = fd, True
            return self
        self._made = [p for p in (self.path.parent.parent, self.path.parent) if not p.exists()]
        rundir.refuse_symlink(self.path.parent, f"the locks folder {self.path.parent}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:  # never through a symlink: a planted .locks/<run>.lock -> ~/file must not truncate that file
                fd = rundir.open_nofollow(self.path, os.O_RDWR | os.O_CREAT, 0o644, f"the lock file {self.path}")
            except FileNotFoundError:  # another command removed the empty .locks folder just now
                self.path.parent.mkdir(parents=True, exist_ok=True)
                continue
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise UserError(f"the lock file {self.path} is not a regular file; remove it and rerun")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                self._remove_made()
                raise UserError(f"run {self.run_dir} is in use by {holder or 'another process'}; wait for it to "
                                "finish or stop it, then rerun (one search or retrain-best per run at a time)") from None
            try:  # the holder before us may have removed the file as it let go: lock the file that is there
                if os.fstat(fd).st_ino == self.path.stat().st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        info = f"pid {os.getpid()} ({self.command}) on {socket.gethostname()} since {now}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, info, 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        if not self.inherited:  # a child leaves its parent's lock alone
            try:
                self.path.unlink()  # while still holding it (see acquire), so no lock file is left behind
            except OSError:
                pass
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self._remove_made()
        self.fd = None

    def _remove_made(self) -> None:
        for folder in (self.path.parent, *reversed(self._made)):
            if folder == self.path.parent or folder in self._made:
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    pass

    def child_env(self) -> dict[str, str]:
        """Environment for a child process that should share this lock (pass ``pass_fds=(lock.fd,)``)."""
        return {LOCK_FD_ENV: str(self.fd)}

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _inherited_fd(path: Path) -> int | None:
    """The descriptor a parent handed down for this very lock file, if any (else None)."""
    raw = os.environ.get(LOCK_FD_ENV, "")
    if not raw.isdigit() or not path.exists():
        return None
    fd = int(raw)
    try:
        mine, theirs = os.fstat(fd), path.stat()
    except OSError:
        return None
    if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
        return None  # another run's lock: this process must take its own
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # same open file as the parent's: succeeds if it holds it
    except OSError:
        return None
    return fd


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 500, 0).decode(errors="replace").strip()
    except OSError:
        return ""
