"""What a running search says: one line per finished trial on one clock for the whole command
(across its child processes), trial timings, and the reason a trial failed."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashion_tuner import kt_compat, tables
from fashion_tuner.budget import describe as duration
from fashion_tuner.fitting import OBJECTIVE
from fashion_tuner.search.config import SearchConfig, trial_budget

# Set by a search's parent process for each of its children (fashion_tuner.search.processes).
SEARCH_STARTED_ENV = "FASHION_TUNER_SEARCH_STARTED"
SEARCH_DONE_ENV = "FASHION_TUNER_SEARCH_DONE_AT_START"
SEARCH_BATCH_ENV = "FASHION_TUNER_SEARCH_BATCH"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchClock:
    """When the user's search command started, across the child processes it runs (read from the
    environment the CLI's parent process sets, see :func:`search_clock`)."""

    started: float  # wall-clock seconds (time.time()) when the command started
    done_at_start: int  # trials the run had finished when the command started
    batch: int = 0  # which child process of the command this is (0: the first, or no children)


def search_clock(finished_now: int) -> SearchClock:
    """This process's clock: the parent's (``FASHION_TUNER_SEARCH_*`` variables) or a new one."""
    try:
        started = float(os.environ.get(SEARCH_STARTED_ENV) or time.time())
        return SearchClock(started, int(os.environ.get(SEARCH_DONE_ENV) or finished_now),
                           int(os.environ.get(SEARCH_BATCH_ENV) or 0))
    except ValueError:
        return SearchClock(time.time(), finished_now, 0)


class Progress:
    """One line per finished trial: id, key hyperparameters, score, best so far, elapsed, ETA (or,
    with no trial count to run to, what is left of ``time_budget``, seconds).

    Elapsed time and the ETA run on the command's clock, so they continue across the child
    processes of one search instead of restarting in each.
    """

    def __init__(self, total: int | None, done_before: int = 0, clock: SearchClock | None = None,
                 time_budget: float | None = None):
        self.total = total
        self.time_budget = time_budget
        self.clock = clock or SearchClock(time.time(), done_before)
        self.started = self.clock.started
        self.done_before = self.clock.done_at_start  # trials finished before this command: not in the ETA
        self.done = done_before
        self.trial_started = {}

    def begin(self, trial):
        self.trial_started[trial.trial_id] = time.monotonic()

    def end(self, trial, oracle):
        self.done += 1
        elapsed = time.time() - self.started
        score = trial.score
        best = oracle.get_best_trials(1)
        best_score = best[0].score if best else None
        status = trial.status if trial.status != "COMPLETED" else ""
        eta = ""
        if self.total:
            left = max(self.total - self.done, 0)
            ran = max(self.done - self.done_before, 1)
            eta = f"  eta {duration(elapsed / ran * left)}" if left else ""
        elif self.time_budget:
            eta = f"  budget left {duration(max(self.time_budget - elapsed, 0.0))}"
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        score_s = f"{score:.4f}" if score is not None else "-"
        best_s = f"{best_score:.4f}" if best_score is not None else "-"
        reason = f"  FAILED: {failure_reason(trial.message)}" if status else ""
        line = (f"[{count}] trial {trial.trial_id}  {OBJECTIVE}={score_s}  best={best_s}  "
                f"elapsed {duration(elapsed)}{eta}  ")
        shown = trial_changes(trial.hyperparameters, tables.terminal_width() - len(line) - len(reason))
        log.info("%s%s%s", line, shown, reason)


def trial_changes(hps, width: int) -> str:
    """What sets a trial apart, in ``width`` characters: "continues trial P (epochs a->b)" for a Hyperband
    continuation, else the values that differ from the space's defaults (``hps``: HyperParameters)."""
    values = hps.values
    parent = values.get(tables.PARENT_KEY)
    if parent:
        return f"continues trial {parent} (epochs {values.get('tuner/initial_epoch')}->{values.get('tuner/epochs')})"
    defaults = {hp.name: hp.default for hp in hps.space}
    return tables.short_summary(tables.changed_from_defaults(values, defaults), max(width, 30))


def failure_reason(message: str | None) -> str:
    """The meaningful line of a trial's stored traceback: the last one, unless it is TensorFlow's
    graph-node trailer (``[[{{node ...}}]]``); a label outside the model's outputs is said briefly."""
    if not message:
        return "unknown reason"
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("[[") and "{{node" not in ln] or lines or ["unknown reason"]
    label = "Received a label value"  # TensorFlow's text for a model with fewer outputs than classes
    if label in useful[-1]:
        return useful[-1][useful[-1].index(label):].split(".  ")[0]
    return useful[-1]


def trial_seconds(run_dir: Path) -> list[float]:
    """Wall seconds of each finished trial of a run, from the start copy and the final trial.json."""
    out = []
    for start in sorted(Path(run_dir).glob(f"trial_*/{kt_compat.TRIAL_START_FILE}")):
        end = start.with_name(kt_compat.TRIAL_FILE)
        try:
            if json.loads(end.read_text()).get("status") == "COMPLETED":
                out.append(end.stat().st_mtime - start.stat().st_mtime)
        except (OSError, ValueError):
            continue
    return out


def budget_left(cfg: SearchConfig, run_dir: Path, finished: int) -> str:
    """"; N trials left, about T at S per trial so far" once trials of this run have been timed."""
    seconds = trial_seconds(run_dir)
    total = trial_budget(cfg)
    if not seconds or not total:
        return ""
    per = float(np.median(seconds))
    left = max(total - finished, 0)
    return f"; {left} trial(s) left, about {duration(per * left)} at {per:.0f} s per trial so far"
