"""Wall-clock budgets: ``--time-budget DURATION`` on ``search`` and ``retrain-best``.

A budget counts from the start of the command (across a search's child processes). The search
starts no trial it does not expect to finish (the median duration of this run's finished trials),
and a fit that would run past the deadline stops at an epoch boundary, or inside an epoch when the next
batch and the validation pass would overrun (:func:`budget_guard`), so a command's wall time stays within its
budget plus about one batch and the process's own start and finish. ``retrain-best`` sizes its epochs
to the budget from the search's own epoch timings (``trial_*/epochs.jsonl``), so learning-rate
schedules are laid out for the epochs it will actually run; when its own epochs show fewer fit (after the
first, and after each later one at their recent pace: :func:`budget_guard` with ``replan``), the schedule is
shortened to them and the fit ends there. A search with the default algorithm stops after its first trial (the
space's defaults, as every search's here) when the budget fits too few trials to search (:func:`small_budget_fits`):
the minutes left do more as retrain epochs, and it says so.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashion_tuner import epochlog

log = logging.getLogger(__name__)

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
BUDGET_STOP_FILE = "budget_stop.json"  # in a trial folder: the time budget stopped this trial's fit early
SAFETY = 0.95  # plan epochs for this share of a retrain budget (the rest absorbs timing noise)
WORTH_EPOCHS = 3  # a retrain of fewer epochs (when more were asked for) is said to be too short to be worth it
UNUSED_SHARE = 0.5  # a retrain plan using less than this share of its budget says which flags would use it
PACE_EPOCHS = 2  # a retrain re-plans at the mean pace of its last this many epochs (its first left out)
STEADY_BATCHES = 3  # batches timed (after the fit's first) before a guard trusts its measured pace
FORWARD_SHARE = 0.5  # scoring an image costs at most about this share of its training step (forward + backward)
# A time-budgeted search with the default algorithm stops after its first trial (the defaults) when its budget fits
# fewer than this many trials like that one, counting it (the search's `--small-budget defaults`): measured on the cnn
# space on 2 CPU cores (issue 26, docs/benchmarks.md#search-against-the-defaults), a 3-minute search fits about 8 and
# its retrain scored 0.0-0.7 pp below giving those minutes to the retrain at 4 of 4 seeds; a 15-minute one fits 26-41
# and its pick beat the defaults by +0.82 pp (median of 6 seeds) at the 10-epoch reference fidelity
SMALL_BUDGET_TRIALS = 16
FINISH_S = 20.0  # seconds a retrain spends after a fit, besides scoring the test images, at the search's pace:
# saving the model, its inference timing, the plots, report and review pages. An estimate, not a measurement: a
# 3-minute cnn retrain beside one busy loop per core spent ~40 s after its fit (budget_load at 5f8e2c4, file times),
# about half of that expected idle; under a load it grows with the measured slowdown (Deadline.fits_end)


def parse_duration(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"1.5h"`` or plain seconds -> seconds (> 0). ValueError otherwise."""
    match = DURATION_RE.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"expected a duration like 90s, 15m or 1h, got {text!r}")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def small_budget_fits(seconds_left: float, first_trial_s: float) -> int | None:
    """How many trials like the search's first (``first_trial_s`` wall seconds, the defaults) its budget fits in all,
    that one included, with ``seconds_left`` of it after that trial, when fewer than :data:`SMALL_BUDGET_TRIALS`;
    None when the budget is large enough to search."""
    fits = 1 + int(max(seconds_left, 0.0) // max(first_trial_s, 1e-3))
    return fits if fits < SMALL_BUDGET_TRIALS else None


def describe(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@dataclass(frozen=True)
class Deadline:
    """When a command's budget ends (``at``, Unix seconds) and the work that must still fit after a fit:
    ``after_images`` images to score (the held-out test, twice under flip TTA) and ``after_s`` seconds of other
    work (saving, report) at the expected pace of ``image_s`` training seconds per image (None: unknown)."""

    at: float
    after_images: int = 0
    after_s: float = 0.0
    image_s: float | None = None

    def fits_end(self, image_s: float | None = None) -> float:
        """Unix seconds by which a fit must end, given the measured training seconds per image (None: not yet
        measured, the expected pace): scoring at ``FORWARD_SHARE`` of that pace, and ``after_s`` stretched by
        how much slower than expected the machine is now (a loaded machine writes its report slower too)."""
        pace = image_s or self.image_s
        slower = max(1.0, pace / self.image_s) if pace and self.image_s else 1.0
        scoring = FORWARD_SHARE * pace * self.after_images if pace else 0.0
        return self.at - scoring - self.after_s * slower


def budget_guard(deadline: float | Deadline, marker_dir: str | Path | None = None, replan: bool = False,
                 batch_size: int | None = None, validation_images: int = 0, planned: int | None = None):
    """A Keras callback that stops a fit at an epoch boundary when the next epoch would end after
    ``deadline`` (Unix seconds, or a :class:`Deadline` that leaves time for the work after the fit), and inside
    an epoch when the next batch plus the validation pass would (``stopped_inside_epoch``; the cut epoch is
    validated and logged like any other); with ``marker_dir`` it records the stop in ``BUDGET_STOP_FILE`` there.
    ``batch_size`` and ``validation_images`` (the fit's) let it estimate, from the measured batch time, the
    first validation pass (before one was timed) and a :class:`Deadline`'s scoring and report time.

    ``replan`` (retrain-best): after the first epoch, when fewer of the fit's epochs fit before the
    deadline at that epoch's pace (times ``SAFETY``; the pace of its batches after the first, which traces the
    train step, plus its validation pass), the learning-rate schedule is shortened to them
    (:func:`resize_schedule`) and the fit stops after them; ``replanned_epochs`` says how many (else None).
    After each later epoch the same, at the pace of the last ``PACE_EPOCHS`` epochs (the first, which traces,
    left out), so a machine that slows down mid-fit still ends the schedule at its floor rather than being cut
    part-way down it; past the first half of its plan it is only ever shortened (a longer one would raise the
    rate again).
    ``planned`` (with ``replan``): the epochs the schedule was laid out for, fewer than the fit's ``epochs``
    (the most it may train): the fit stops after them, and a re-plan in the first half of the plan, when more
    fit at the measured pace, lengthens the schedule to them (``fits_more``; the rate rises a little: a
    17-epoch cosine is at 99 % of its peak after one epoch, 69 % after 6 of 16 against 79 % of 20). A plan
    from the search's epochs left a 15-minute cnn retrain 174 s unused (they expected 38.6 s per epoch, 33-34 s
    ran), and one slow stretch (28 s epochs, then 43 s, then ~30 s) shortened another for good: 190 s unused
    (2026-12-07).
    """
    import keras

    limit = deadline if isinstance(deadline, Deadline) else Deadline(float(deadline))
    may_grow, first_plan = bool(replan and planned), planned or 0  # lengthen in the first half of the first plan

    class BudgetGuard(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch_started = None
            self.last_epoch_s = 0.0
            self.replanned_epochs = planned if replan else None  # the fit stops after these (None: its own epochs)
            self.fits_more = False  # a re-plan lengthened the schedule
            self.cut = False  # the deadline stopped the fit (not its schedule's end, nor EarlyStopping)
            self.epoch = 0
            self.batch_started = self.batch_s = self.test_started = None
            self.validation_s = 0.0  # the last validation pass (none measured yet: 0)
            self.stopped_inside_epoch = False
            self.steady_s, self.steady_batches = 0.0, 0  # the fit's batches after its first (which traces the step)
            self.epoch_times = []  # seconds of each epoch after the fit's first
            self.first_epoch = None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            if self.first_epoch is None:  # 0, or where a resumed fit continues
                self.first_epoch = epoch
            self.epoch_started = time.time()
            if self.epoch_started >= self._end():  # nothing left: stop after the first batch
                self._stop(epoch)

        def on_train_batch_begin(self, batch, logs=None):
            self.batch_started = time.time()

        def on_train_batch_end(self, batch, logs=None):
            """Stop inside the epoch when the next batch and the validation pass would end after the deadline
            (Keras checks ``stop_training`` after each batch, then still validates); a batch's cost is the
            larger of the last one and their running mean, so a machine that slows down is caught at once."""
            now = time.time()
            if self.batch_started is None or self.model.stop_training:
                return
            last = now - self.batch_started
            if self.batch_s is not None:  # not the fit's first batch, whose time is mostly tracing
                self.steady_s, self.steady_batches = self.steady_s + last, self.steady_batches + 1
            self.batch_s = last if self.batch_s is None else max(last, 0.8 * self.batch_s + 0.2 * last)
            if now + self.batch_s + self._validation_s() > self._end():
                self.stopped_inside_epoch = True
                self._stop(self.epoch + 1, partial=True)  # the cut epoch still logs a row: it counts as run

        def on_test_begin(self, logs=None):
            self.test_started = time.time()

        def on_test_end(self, logs=None):
            if self.test_started is not None:
                self.validation_s = time.time() - self.test_started

        def on_epoch_end(self, epoch, logs=None):
            self.last_epoch_s = time.time() - self.epoch_started
            if epoch != self.first_epoch:
                self.epoch_times.append(self.last_epoch_s)
            if replan:
                self._replan(epoch)
            if self.replanned_epochs is not None and epoch + 1 >= self.replanned_epochs:
                self.model.stop_training = True  # the shortened schedule has ended
            elif time.time() + self.last_epoch_s > self._end() and not self.model.stop_training:
                self._stop(epoch + 1)

        def _image_s(self) -> float | None:
            """Measured training seconds per image: the mean of the fit's batches after its first (which traces
            the train step: seconds, not the pace), once ``STEADY_BATCHES`` were timed; None before that or
            without ``batch_size``."""
            if not batch_size or self.steady_batches < STEADY_BATCHES:
                return None
            return self.steady_s / self.steady_batches / batch_size

        def _end(self) -> float:
            return limit.fits_end(self._image_s())

        def _validation_s(self) -> float:
            """The last validation pass; before the first, its estimate from the batch time."""
            image_s = self._image_s()
            if self.validation_s or image_s is None:
                return self.validation_s
            return FORWARD_SHARE * image_s * validation_images

        def _replan(self, epoch: int):
            """Shorten the schedule to the epochs that fit at the measured pace (see ``replan`` above)."""
            most = int(self.params.get("epochs") or 0)
            plan = self.replanned_epochs or most
            pace = self._pace()
            fits = epoch + 1 + int(max(0.0, self._end() - time.time()) * SAFETY // max(pace, 1e-6))
            steps_per_epoch = int(self.model.optimizer.iterations.numpy()) // (epoch + 1)
            seen = f"{'the first epoch took' if epoch == self.first_epoch else 'epochs now take'} {describe(pace)}"
            if epoch + 1 < fits < plan and resize_schedule(self.model, fits * steps_per_epoch):
                self.replanned_epochs = fits
                log.info("time budget: %s; learning-rate schedule shortened to %d of %d epochs", seen, fits, most)
            elif may_grow and 2 * (epoch + 1) <= first_plan and plan < min(fits, most):
                self.replanned_epochs, self.fits_more = min(fits, most), True
                resize_schedule(self.model, self.replanned_epochs * steps_per_epoch, longer=True)
                log.info("time budget: %s; learning-rate schedule lengthened to %d epochs (at most %d)", seen,
                         self.replanned_epochs, most)

        def _pace(self) -> float:
            """Seconds an epoch takes now: the mean of the last ``PACE_EPOCHS`` after the fit's first; after the first
            alone, its steady batches (the first traces the train step: a cost paid once) times the epoch's batches
            plus its validation pass, when enough were timed; else that epoch's wall time."""
            if self.epoch_times:
                return float(np.mean(self.epoch_times[-PACE_EPOCHS:]))
            steps = int(self.params.get("steps") or 0)
            if steps and self.steady_batches >= STEADY_BATCHES:
                return min(self.steady_s / self.steady_batches * steps + self.validation_s, self.last_epoch_s)
            return self.last_epoch_s

        def record(self) -> dict:
            """What the budget did to the fit, for a retrain's metrics: ``replanned_epochs``, the epochs its
            schedule ended at after the re-plans (None: the fit's own), and ``stopped_by_budget``, whether the
            deadline cut the fit before that schedule ended (one that ran a shortened schedule out was not cut,
            a lengthened one cut short was)."""
            return {"replanned_epochs": self.replanned_epochs, "stopped_by_budget": self.cut}

        def _stop(self, epochs_done: int, partial: bool = False):
            self.model.stop_training = True
            self.cut = True
            if marker_dir is not None:
                Path(marker_dir).mkdir(parents=True, exist_ok=True)
                (Path(marker_dir) / BUDGET_STOP_FILE).write_text(json.dumps(
                    {"epochs_done": int(epochs_done), "last_epoch_partial": partial, "time": time.time(),
                     "deadline": limit.at}) + "\n")

    return BudgetGuard()


def resize_schedule(model, total_steps: int, longer: bool = False) -> bool:
    """Make ``model``'s learning-rate schedule (a Keras ``LearningRateSchedule`` with ``decay_steps``, such
    as the spaces' ``CosineDecay``) end after ``total_steps`` updates when it would end later (shorten it; with
    ``longer``, lengthen it: when it would end earlier), and retrace the train step so the next batch uses it.
    False, nothing changed, when the optimizer has no such schedule (a constant rate, a plateau callback) or it
    already ends then."""
    import keras

    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # mixed precision wraps it
    schedule = getattr(optimizer, "_learning_rate", None)
    if (not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)
            or not hasattr(schedule, "decay_steps")
            or (schedule.decay_steps >= total_steps if longer else schedule.decay_steps <= total_steps)):
        return False
    schedule.decay_steps = max(1, int(total_steps))
    if hasattr(model, "make_train_function"):
        model.make_train_function(force=True)
    return True


def epoch_seconds(run_dir: str | Path, trial_ids: list[str] | None = None) -> list[tuple[float, int]]:
    """``(seconds, epoch number)`` of every epoch the run's trials logged (``trial_*/epochs.jsonl``); only
    those of ``trial_ids`` when given."""
    out = []
    dirs = sorted(Path(run_dir).glob("trial_*"))
    if trial_ids is not None:
        dirs = [d for d in dirs if d.name.removeprefix("trial_") in set(trial_ids)]
    for trial_dir in dirs:
        begin, rows = epochlog.read_epochs(trial_dir)
        previous = begin
        for row in rows:
            if previous is not None and row.get("time") is not None:
                out.append((float(row["time"]) - float(previous), int(row["epoch"])))
            previous = row.get("time")
    return out


def seconds_per_epoch(run_dir: str | Path, search_images: int, fit_images: int,
                      trial_ids: list[str] | None = None) -> float | None:
    """Expected seconds of one epoch over ``fit_images`` images, from the search's epochs over
    ``search_images`` (median). Count the images an epoch passes through, training and validation alike:
    per-epoch costs that do not grow with the training images (the validation pass, callbacks, the
    checkpoint) make that the better fit. Measured on three 15-minute cnn runs (10,000 + 6,000 images
    searched, 60,000 + 6,000 retrained): training images alone predicted 28-40 % too much or too little,
    both together within 10 %. The epochs of ``trial_ids`` (the configurations to be retrained) when they
    logged any, else every trial's. None when the run logged no epochs."""
    seconds = [s for s, _ in epoch_seconds(run_dir, trial_ids) if s > 0] if trial_ids else []
    seconds = seconds or [s for s, _ in epoch_seconds(run_dir) if s > 0]
    if not seconds or search_images <= 0:
        return None
    return float(np.median(seconds)) * fit_images / search_images


def plan_advice(budget_s: float, per_epoch_s: float | None, planned: int, max_epochs: int, models: int = 1,
                subset: bool = False, spent_s: float = 0.0) -> list[str]:
    """What to tell the user about a retrain plan of ``planned`` epochs per model (``models`` models, about
    ``per_epoch_s`` s an epoch) for the ``budget_s`` seconds left: that too few epochs fit to be worth it
    (fewer than ``WORTH_EPOCHS`` and fewer than ``max_epochs``) and which --time-budget would fit them
    (``spent_s``: already spent by the command, loading data), or that the plan uses under ``UNUSED_SHARE``
    of the budget and which flags would use it (``subset``: the run's training images are a subset, so
    ``--train-on full`` would train on more)."""
    if not per_epoch_s:
        return []
    used = planned * per_epoch_s * models
    if planned < min(WORTH_EPOCHS, max_epochs):
        want = min(WORTH_EPOCHS, max_epochs)
        return [f"{planned} epoch(s) per model is too few to be worth it; a budget of about "
                f"{describe(spent_s + want * per_epoch_s * models / SAFETY)} would allow {want}"]
    if planned == max_epochs and used < UNUSED_SHARE * budget_s:
        fits = int(budget_s * SAFETY // (per_epoch_s * models))
        flags = [f"--epochs {fits}"] + (["--train-on full"] if subset else [])
        return [f"this plan uses about {describe(used)} of the {describe(budget_s)} left of the time budget; "
                f"{' or '.join(flags)} would use more of it"]
    return []


def plan_epochs(budget_s: float, per_epoch_s: float | None, max_epochs: int) -> int:
    """Epochs that fit ``budget_s`` at ``per_epoch_s`` each (at most ``max_epochs``, at least 1)."""
    if not per_epoch_s:
        return max_epochs
    return int(max(1, min(max_epochs, (budget_s * SAFETY) // per_epoch_s)))
