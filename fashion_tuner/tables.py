"""Tables of trials that fit a terminal: show the hyperparameters that tell the rows apart.

A CNN trial has ~30 hyperparameters; printed side by side they make a 330-character row. The
helpers here pick the columns worth showing (those whose values differ between the rows shown, or
from the space's defaults for a single trial), collapse Hyperband continuations into one row per
configuration, and drop columns from the right until the table fits the terminal, saying which
were left out. No TensorFlow, Keras or Keras Tuner import: inputs are plain dicts as stored in
``trial.json`` (``hyperparameters.values`` / ``hyperparameters.space``).
"""

from __future__ import annotations

import logging
import math
import shutil

log = logging.getLogger(__name__)
DEFAULT_WIDTH = 100  # columns when the output is not a terminal (a pipe, a log file, a test)
MIN_WIDTH = 60
PARENT_KEY = "tuner/trial_id"  # Keras Tuner Hyperband: the trial whose checkpoint this one continues
EPOCHS_KEY = "tuner/epochs"  # Hyperband: the epoch a trial trains to (counted from its lineage's start)
INITIAL_EPOCH_KEY = "tuner/initial_epoch"  # Hyperband: the epoch a continuation starts from
MISSING = "-"  # a conditional hyperparameter the trial did not use


def terminal_width(default: int = DEFAULT_WIDTH) -> int:
    """Columns of the terminal (``$COLUMNS`` or the tty), else ``default``; never below MIN_WIDTH."""
    return max(MIN_WIDTH, shutil.get_terminal_size((default, 24)).columns)


def fmt(value) -> str:
    """A hyperparameter value as a user would write it: ints as ints, floats to 4 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) >= 1 else f"{value:.4g}"
    return str(value)


def hp_values(values: dict) -> dict:
    """A trial's hyperparameter values without Keras Tuner's ``tuner/*`` bookkeeping."""
    return {k: v for k, v in (values or {}).items() if not str(k).startswith("tuner/")}


def space_defaults(space: list[dict]) -> dict:
    """``{name: default}`` from a stored ``hyperparameters.space`` (list of ``{"class_name", "config"}``)."""
    out = {}
    for item in space or []:
        cfg = item.get("config", {})
        name = cfg.get("name")
        if not name or str(name).startswith("tuner/"):
            continue
        if item.get("class_name") == "Fixed":
            out[name] = cfg.get("value")
        elif cfg.get("default") is not None:
            out[name] = cfg["default"]
        elif item.get("class_name") in ("Int", "Float"):
            out[name] = cfg.get("min_value")
        elif item.get("class_name") == "Boolean":
            out[name] = False
        else:
            out[name] = (cfg.get("values") or [None])[0]
    return out


def differing(rows: list[dict], names: list[str]) -> list[str]:
    """The names whose values (a missing one counts as its own value) are not the same in every row."""
    return [n for n in names if len({fmt(r.get(n)) for r in rows}) > 1]


def best_epoch(best_step, values: dict) -> int | None:
    """The 1-based epoch, counted from the start of training, whose weights Keras Tuner kept.

    Keras Tuner's ``best_step`` is a 0-based index into the trial's own fit; a Hyperband continuation's
    fit starts after ``tuner/initial_epoch`` epochs of its parent, so those are added."""
    if best_step is None or (isinstance(best_step, float) and math.isnan(best_step)):
        return None
    initial = (values or {}).get("tuner/initial_epoch") or 0
    return int(initial) + int(best_step) + 1


def changed_from_defaults(values: dict, defaults: dict) -> dict:
    """The active values that differ from the space's defaults, in the trial's order."""
    return {k: v for k, v in hp_values(values).items() if k not in defaults or fmt(defaults[k]) != fmt(v)}


def root_trial(trial_id: str, parents: dict) -> str:
    """The first trial of a Hyperband lineage (``parents``: trial id -> the trial it continues)."""
    seen = set()
    while parents.get(trial_id) and trial_id not in seen:
        seen.add(trial_id)
        trial_id = parents[trial_id]
    return trial_id


def one_per_configuration(rows: list[dict], key=lambda r: r["trial_id"],
                          parent=lambda r: r.get("parent")) -> list[dict]:
    """Rows (best first) with only the best of each Hyperband lineage kept: a continuation trains the
    same configuration as its parent for more epochs, so showing both would repeat one model."""
    parents = {key(r): parent(r) for r in rows}
    seen, out = set(), []
    for r in rows:
        root = root_trial(key(r), parents)
        if root not in seen:
            seen.add(root)
            out.append(r)
    return out


def short_summary(changes: dict, width: int) -> str:
    """``name=value, ...`` cut to ``width`` characters with ``(+N more)``; "the space's defaults" when empty."""
    if not changes:
        return "the space's defaults"
    parts = [f"{k}={fmt(v)}" for k, v in changes.items()]
    text = ""
    for i, part in enumerate(parts):
        more = f" (+{len(parts) - i - 1} more)" if i < len(parts) - 1 else ""
        candidate = (text + ", " if text else "") + part
        if text and len(candidate) + len(more) > width:
            return f"{text} (+{len(parts) - i} more)"
        text = candidate
    return text


def fit_table(rows: list[dict], fixed: list[str], optional: list[str], width: int) -> tuple[str, list[str]]:
    """Render ``rows`` as aligned text: one line per row when the ``fixed`` and ``optional`` columns fit in
    ``width`` characters; else turned sideways (one line per column, one text column per row, headed by
    the first fixed column), which fits any number of hyperparameters; a sideways table still wider than
    ``width`` keeps the rows that fit. Returns ``(text, optional columns left out)``, the latter always
    empty (kept for callers that print a note)."""
    cols = fixed + optional

    def cell_width(col):
        return max([len(col)] + [len(fmt(r.get(col))) for r in rows])

    widths = {c: cell_width(c) for c in cols}
    if sum(widths.values()) + 2 * (len(cols) - 1) <= width:
        lines = ["  ".join(c.rjust(widths[c]) for c in cols)]
        lines += ["  ".join(fmt(r.get(c)).rjust(widths[c]) for c in cols) for r in rows]
        return "\n".join(lines), []
    label = max(len(c) for c in cols)
    head, body = fixed[0], cols[1:]
    kept, used = [], label
    for r in rows:
        w = max(len(fmt(r.get(c))) for c in cols) + 2
        if kept and used + w > width:
            break
        kept.append((r, w))
        used += w
    lines = [head.ljust(label) + "".join(fmt(r.get(head)).rjust(w) for r, w in kept)]
    lines += [c.ljust(label) + "".join(fmt(r.get(c)).rjust(w) for r, w in kept) for c in body]
    return "\n".join(lines), []
