"""A search as a chain of fresh processes: the parent starts ``main.py search`` children, each runs
``--trials-per-process`` trials and the next resumes the run; Ctrl-C, SIGTERM and a killed child.

TensorFlow keeps ~10 MB per trained model for the life of a process; a fresh process every few
trials bounds that (README: memory) for a few seconds of start-up each. Nothing here loads TensorFlow.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from fashion_tuner import hints, interrupts

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130
EXIT_MORE_TRIALS = 75  # a search process ran its --trials-per-process trials; the budget is not spent
WAIT_POLL_S = 0.5  # how often the parent checks for a lost Ctrl-C
MAIN_PY = Path(__file__).resolve().parent.parent.parent / "main.py"
SEARCH_PARENT_ENV = "FASHION_TUNER_SEARCH_PARENT"  # set in a search's child processes: the parent's pid


def run_in_fresh_processes(argv: list[str], lock, run_dir: Path, started: float) -> int:
    """Run ``main.py search ARGV`` as a chain of child processes, each stopping after
    --trials-per-process trials (exit EXIT_MORE_TRIALS) and the next resuming the run.

    The children print straight to this terminal; their exit status is returned. Each child runs
    in its own session, so Ctrl-C or SIGTERM (sent to this process alone) reaches it exactly once,
    forwarded from here: it marks the run interrupted, prints how to resume and exits 128 + the signal.
    A child killed by a signal (the OOM killer's SIGKILL) is reported by name; the run stays resumable.
    The run's lock (``lock``) is held here and shared with each child. ``started`` (Unix time, s) is
    when the command started: every child's --time-budget counts from it.
    """
    from fashion_tuner import runs
    from fashion_tuner.search.progress import SEARCH_BATCH_ENV, SEARCH_DONE_ENV, SEARCH_STARTED_ENV

    done = runs.finished_trials(run_dir)
    env = {**os.environ, SEARCH_PARENT_ENV: str(os.getpid()), **lock.child_env(),
           SEARCH_STARTED_ENV: os.environ.get(SEARCH_STARTED_ENV) or repr(started),
           SEARCH_DONE_ENV: str(done)}  # one clock for every child
    for batch in itertools.count():
        env[SEARCH_BATCH_ENV] = str(batch)
        proc = subprocess.Popen([sys.executable, str(MAIN_PY), *argv], env=env, start_new_session=True,
                                pass_fds=(lock.fd,))
        try:
            rc = wait(proc)
        except KeyboardInterrupt:
            proc.send_signal(interrupts.stop_signal())  # the child marks the run interrupted and prints the resume line
            rc = proc.wait()
            return rc if rc > 0 else 128 + interrupts.stop_signal()
        if rc < 0:
            return child_killed(-rc, proc.pid, argv, run_dir)
        if rc != EXIT_MORE_TRIALS:
            return rc
        argv = resuming(argv)


def wait(proc) -> int:
    """``proc.wait()``, polled, so that a signal whose KeyboardInterrupt was lost still stops the wait."""
    while True:
        interrupts.raise_if_received()
        try:
            return proc.wait(timeout=WAIT_POLL_S)
        except subprocess.TimeoutExpired:
            pass


def child_killed(signum: int, pid: int, argv: list[str], run_dir: Path) -> int:
    """Report a search process killed by a signal, mark the run and its unfinished trial, return 128 + signum."""
    from fashion_tuner import kt_compat, runs

    name = signal.Signals(signum).name
    why = f"search process {pid} was killed by {name}" + (" (out of memory?)" if signum == signal.SIGKILL else "")
    runs.mark_stopped(run_dir, "interrupted", why)
    kt_compat.note_running_trials(run_dir, why)
    print(f"error: {why}; completed trials are kept. Resume with: {hints.command(*resuming(argv))}",
          file=sys.stderr)
    return 128 + signum


def resuming(argv: list[str]) -> list[str]:
    """The same search command without ``--overwrite``, so that it resumes instead of starting over."""
    return [a for a in argv if a != "--overwrite"]


def exit_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this child when the parent dies (SIGKILL of a search leaves no orphan)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux/glibc: an orphan finishes its batch and exits
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(EXIT_INTERRUPTED)
