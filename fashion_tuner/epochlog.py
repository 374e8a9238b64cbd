"""Per-epoch history of each trial, for the review's learning curves and timeline.

Keras Tuner keeps only each trial's best epoch in ``trial.json``. :func:`epoch_logger` returns a Keras
callback that writes ``trial_<id>/epochs.jsonl``: a ``{"event": "begin", "time": T}`` line when the fit
starts, then one line per finished epoch ``{"epoch": E, "time": T, <metric>: value, ...}`` with ``E``
1-based and counted from the start of training (a Hyperband continuation starts after its parent's
epochs) and ``T`` in Unix seconds. Each fit starts the file afresh, so with ``--executions-per-trial``
above 1 the file holds the last execution; a fit resumed from its backup (:mod:`fashion_tuner.backup`)
keeps the rows of the epochs before its first one and adds ``{"event": "resume", "time": T, "after_epoch": E}``
(E: the epochs already done). Reading it needs no Keras: :func:`read_epochs`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

log = logging.getLogger(__name__)
EPOCHS_FILE = "epochs.jsonl"


def epoch_logger(trial_dir: str | Path):
    """A ``keras.callbacks.Callback`` appending this fit's epochs to ``trial_dir/epochs.jsonl``."""
    import keras

    path = Path(trial_dir) / EPOCHS_FILE

    class EpochLogger(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.began, self.started = time.time(), False

        def on_epoch_begin(self, epoch, logs=None):
            # the first epoch of this fit tells whether it resumes: rows of earlier epochs are kept
            if not self.started:
                self.started = True
                _start_file(path, int(epoch), self.began)

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": int(epoch) + 1, "time": time.time()}
            for key, value in (logs or {}).items():
                try:
                    row[key] = float(value)
                except (TypeError, ValueError):
                    continue
            with path.open("a") as fh:
                fh.write(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                     for k, v in row.items()}) + "\n")

    return EpochLogger()


def _start_file(path: Path, first_epoch: int, began: float) -> None:
    """Start the file for a fit whose first epoch is ``first_epoch`` (0-based): afresh, or, when the file
    holds rows of epochs up to it (a resumed fit), keep those rows and note the resume."""
    path.parent.mkdir(parents=True, exist_ok=True)
    begin, rows = read_epochs(path.parent) if first_epoch > 0 else (None, [])
    rows = [r for r in rows if r["epoch"] <= first_epoch]
    if not rows:
        path.write_text(json.dumps({"event": "begin", "time": began}) + "\n")
        return
    lines = [{"event": "begin", "time": begin if begin is not None else rows[0]["time"]}, *rows,
             {"event": "resume", "time": began, "after_epoch": first_epoch}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def read_epochs(trial_dir: str | Path) -> tuple[float | None, list[dict]]:
    """``(fit start time or None, [epoch rows])`` from ``trial_dir/epochs.jsonl``; ``(None, [])`` when absent.
    Lines that do not parse (a process killed mid-write) are skipped."""
    path = Path(trial_dir) / EPOCHS_FILE
    begin, rows = None, []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None, []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            log.debug("%s: skipped a line that does not parse (a process killed mid-write?)", path)
            continue
        if not isinstance(row, dict):
            continue
        if row.get("event") == "begin":
            begin = row.get("time")
        elif "event" not in row and isinstance(row.get("epoch"), int):
            rows.append(row)
    return begin, rows
