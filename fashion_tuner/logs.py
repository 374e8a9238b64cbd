"""How the library speaks: every module logs through ``logging.getLogger(__name__)``; the CLI (and
the test suite) attach one console handler here. Information goes to stdout as the bare message,
warnings and errors to stderr prefixed with their level; ``--quiet`` keeps warnings and errors only,
``--debug`` adds debug messages (and tracebacks, see cli)."""

from __future__ import annotations

import logging
import sys

ROOT = "fashion_tuner"


class ConsoleHandler(logging.Handler):
    """INFO and below to ``sys.stdout``, WARNING and above to ``sys.stderr``, looked up at each record
    (so a redirected or captured stream, pytest's capsys included, receives it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.levelno >= logging.WARNING:
                sys.stderr.write(f"{record.levelname.lower()}: {self.format(record)}\n")
                sys.stderr.flush()
            else:
                sys.stdout.write(self.format(record) + "\n")
                sys.stdout.flush()
        except Exception:  # a closed stream must not turn a message into a crash
            self.handleError(record)


def configure(level: int = logging.INFO) -> None:
    """Print the library's messages at ``level`` and above (idempotent: one handler)."""
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if isinstance(h, ConsoleHandler)]:
        logger.removeHandler(handler)
    handler = ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
