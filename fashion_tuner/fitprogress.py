"""Signs of life inside one fit (a search trial, a retraining): where it is and how long it has left.

On a terminal, one tqdm line that updates in place: ``trial 0003 epoch 2/6 |####  | 180/2814
[00:04<00:31], loss 0.45  accuracy 0.83`` (batches of the whole fit), the time left being the fit's, not the
epoch's; it is erased when the fit ends, so the search's one line per trial stays the record. Elsewhere
(a log file, a pipe): one line per epoch with its metrics and the fit's time left, and a line inside an
epoch whenever :data:`QUIET_S` seconds have passed without one, so nothing is silent for longer.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time

from fashion_tuner.budget import describe as duration
from fashion_tuner.tables import terminal_width

log = logging.getLogger(__name__)
QUIET_S = 15.0  # seconds: the longest silence inside an epoch when not on a terminal
SHOWN = ("loss", "accuracy")  # running batch metrics shown beside the bar; epoch lines show every metric


def fit_progress(label: str, tty: bool | None = None, stream=None, planned=None):
    """A ``keras.callbacks.Callback`` reporting the fit's progress as ``label`` (e.g. ``trial 0003``).

    ``tty``: draw the updating line (default: when ``stream``, else stderr, is a terminal); ``stream``:
    where the line goes (default stderr; the per-epoch lines go through logging either way); ``planned``: a
    function giving the epochs the fit now plans to train, when fewer than its ``epochs`` (a time budget's plan),
    or None.
    """
    import keras

    out = stream or sys.stderr
    tty = out.isatty() if tty is None else tty

    class FitProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.started, self.last_said, self.batches, self.bar = time.monotonic(), time.monotonic(), 0, None
            self.first_epoch, self.epoch = None, 0

        def _total(self) -> tuple[int, int | None]:
            plan = planned() if planned is not None else None
            return int(plan or self.params.get("epochs") or 0), self.params.get("steps")

        def _left(self, batch: int) -> float | None:
            """Seconds until the fit's last epoch ends, at its pace so far (None before the first batch)."""
            epochs, steps = self._total()
            if not steps or not self.batches:
                return None
            left = (epochs - self.epoch - 1) * steps + (steps - batch - 1)
            return (time.monotonic() - self.started) / self.batches * max(left, 0)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = int(epoch)
            if self.first_epoch is None:
                self.first_epoch = self.epoch  # a Hyperband continuation or a resumed fit starts later
            epochs, steps = self._total()
            if not tty:
                return
            if self.bar is None:
                from tqdm import tqdm

                total = (epochs - self.first_epoch) * steps if steps else None
                # the size once, never 0 (a terminal that reports none): tqdm would hide the line
                self.bar = tqdm(total=total, file=out, leave=False, ncols=terminal_width(),
                                nrows=max(shutil.get_terminal_size().lines, 2), mininterval=0.5,
                                desc=f"{label} epoch {self.epoch + 1}/{epochs}", unit="batch",
                                bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]{postfix}")
            self.bar.set_description_str(f"{label} epoch {self.epoch + 1}/{epochs}")  # shown at once

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            shown = "  ".join(f"{k} {float(v):.4g}" for k, v in (logs or {}).items() if k in SHOWN)
            if self.bar is not None:
                self.bar.set_postfix_str(shown, refresh=False)
                self.bar.update(1)
                return
            if time.monotonic() - self.last_said >= QUIET_S:
                epochs, steps = self._total()
                left = self._left(int(batch))
                log.info("%s epoch %d/%d: batch %d/%s  %s%s", label, self.epoch + 1, epochs, int(batch) + 1,
                         steps or "?", shown, f"  ({duration(left)} left)" if left is not None else "")
                self.last_said = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            if self.bar is not None:
                return
            epochs, steps = self._total()
            left = self._left((steps or 1) - 1)
            shown = "  ".join(f"{k} {float(v):.4f}" for k, v in (logs or {}).items()
                              if isinstance(v, (int, float)) or hasattr(v, "__float__"))
            log.info("%s epoch %d/%d: %s%s", label, int(epoch) + 1, epochs, shown,
                     f"  ({duration(left)} left at most)" if left else "")
            self.last_said = time.monotonic()

        def on_train_end(self, logs=None):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return FitProgress()
