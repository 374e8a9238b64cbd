"""Ctrl-C and SIGTERM that always stop a command.

Python turns SIGINT into ``KeyboardInterrupt`` at the next bytecode the main thread runs. When that
bytecode belongs to a garbage-collector callback (JAX registers one, and Keras imports JAX whenever
it is installed) or to a ``__del__`` method, the exception is printed as "Exception ignored in ..."
and lost: the command runs on as if never interrupted (seen in CI: a search's child finished its
trials after Ctrl-C, and no resume line was printed). So the handlers installed here also *record*
the signal; :func:`raise_if_received` raises it again where it may have been lost (the trial guard
in :mod:`fashion_tuner.fitting` calls it after every training batch, waiting loops poll it), and a
lost ``KeyboardInterrupt`` is not printed as a traceback. TensorFlow can also turn a
``KeyboardInterrupt`` raised in Python code it calls into another error (seen: ``SystemError: bad
argument to internal function`` out of ``model.fit``, which Keras Tuner then recorded as a failed
trial and went on): within :func:`converted`, any error raised after a signal is that signal's
``KeyboardInterrupt``. Once a signal has interrupted a command, errors Python can only print ("Exception ignored
in ...": seen, TensorFlow's tracing context cut short by the signal failing its cleanup when the interpreter exits,
``TypeError: 'NoneType' object is not iterable``) are its consequences: logged at debug level, not printed as a
traceback, for the rest of the process.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: int | None = None  # the signal that interrupted this command, once one has
_interrupted = False  # a signal interrupted a command in this process (it is ending): unraisable errors stay quiet


def received() -> int | None:
    """The signal number (SIGINT or SIGTERM) that interrupted this command, or None."""
    return _received


def stop_signal() -> int:
    """The signal to report and forward: the one received, else SIGINT (a plain KeyboardInterrupt)."""
    return _received or signal.SIGINT


def raise_if_received() -> None:
    """Raise ``KeyboardInterrupt`` if a signal arrived (its first ``KeyboardInterrupt`` may have been lost)."""
    if _received is not None:
        raise KeyboardInterrupt


@contextlib.contextmanager
def converted():
    """Within the block, an ``Exception`` raised after a signal arrived becomes ``KeyboardInterrupt``."""
    try:
        yield
    except Exception as exc:
        if _received is None:
            raise
        raise KeyboardInterrupt from exc


def _on_signal(signum, frame):
    global _received
    _received = signum
    raise KeyboardInterrupt


def _quiet_unraisable(previous):
    def hook(unraisable):
        # after a signal: its own lost KeyboardInterrupt (recorded: raise_if_received raises it again where it
        # cannot be lost), or what it cut short failing its cleanup
        if _received is not None or _interrupted:
            log.debug("after the interrupt, ignored in %r: %r", unraisable.object, unraisable.exc_value)
            return
        previous(unraisable)
    return hook


@contextlib.contextmanager
def handled():
    """Within the block, SIGINT (unless ignored, as in a background job) and SIGTERM (unless someone
    installed a handler) raise ``KeyboardInterrupt`` and are recorded. Restores the previous handlers and
    forgets the signal on the way out (the command has handled it; a later fit in this process must not
    raise it again); after a signal, unraisable errors stay quiet for the rest of the process."""
    global _received, _interrupted
    _received, _interrupted = None, False  # a new command: nothing interrupted it yet
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    ours = [s for s in SIGNALS if previous[s] in (signal.default_int_handler, signal.SIG_DFL)]
    hook = sys.unraisablehook
    try:
        for s in ours:
            signal.signal(s, _on_signal)
        sys.unraisablehook = _quiet_unraisable(hook)
        yield
    finally:
        _interrupted = _interrupted or _received is not None
        _received = None
        sys.unraisablehook = _quiet_unraisable(hook) if _interrupted else hook
        for s in ours:
            signal.signal(s, previous[s])
