"""Read a Keras Tuner project directory (``oracle.json`` + ``trial_*/trial.json``) into a :class:`Project`.

Reads the JSON files directly: no model code, no keras_tuner or TensorFlow import. Keras Tuner records
only the best epoch of a trial, so epochs actually trained are known only under Hyperband
(``tuner/epochs - tuner/initial_epoch``); elsewhere ``best_step + 1`` is a lower bound. A trial.json that
cannot be read is left out with a problem naming it (the rule of :func:`fashion_tuner.runs.read_trials`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_tuner import algorithms, epochlog, rundir
from fashion_tuner.cv import FOLD_PREFIX, SD_METRIC
from fashion_tuner.errors import UserError
from fashion_tuner.review import infer
from fashion_tuner.runs import ranked_trials

log = logging.getLogger(__name__)
ORACLE = "oracle.json"
RUN_JSON = "run.json"
TRIAL_JSON = "trial.json"
REVIEW_DIR = "review"
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", REVIEW_DIR}
CORE_COLUMNS = ["trial_id", "order", "status", "score", "best_step", "epochs_run"]
RAN = ["completed", "failed", "invalid", "stopped"]  # statuses of trials that trained


@dataclass
class Project:
    """One Keras Tuner project as the review sees it.

    ``trials``: DataFrame, one row per readable trial in start order (columns: :data:`CORE_COLUMNS`,
    Hyperband's ``epochs``/``initial_epoch``/``bracket``/``round``/``parent_trial`` when present, one
    per hyperparameter, ``metric:<name>``, ``message``). ``ranking``: trial ids of the completed trials
    with a finite score, best first, ties in start order (:func:`fashion_tuner.runs.ranked_trials`).
    ``space``: ``{name: {"type", "values", "min", "max", "step", "sampling", "default", "conditional"}}``.
    ``curves``: ``{trial_id: [epoch rows of epochs.jsonl]}``; ``values``: ``{trial_id: {hyperparameter: value}}``
    as trial.json stores them (Hyperband's ``tuner/*`` keys included, a conditional one absent);
    ``observations``: ``{trial_id: {metric: [(step, value), ...]}}`` from trial.json, steps ascending, each
    value the mean over executions (Keras Tuner stores the best epoch only); ``times``: ``{trial_id: (start, end, exact)}``
    in Unix seconds; ``mtime``: latest file time (Unix seconds); ``problems``: what the reader warns about.
    """

    path: Path
    name: str
    run: dict | None
    oracle: dict | None
    tuner: str
    tuner_detail: str
    objective: str
    direction: str
    objective_how: str
    space: dict[str, dict]
    trials: pd.DataFrame
    ranking: list[str]
    epochs_spent: int
    epochs_exact: bool
    mtime: float
    curves: dict[str, list[dict]] = field(default_factory=dict)
    values: dict[str, dict] = field(default_factory=dict)
    observations: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)
    times: dict[str, tuple[float, float, bool]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    pick: str | None = None  # the trial retrain-best trains first, when the algorithm's pick is not the best score
    pick_note: str | None = None  # why (algorithms.pick_order: priorband keeps the defaults within the noise)

    def ranked(self) -> pd.DataFrame:
        """The rows of :attr:`ranking`, best first."""
        return self.trials.set_index("trial_id", drop=False).loc[self.ranking].reset_index(drop=True)

    def completed(self) -> pd.DataFrame:
        """The rows of :attr:`ranking` in start order (what the plots draw)."""
        return self.trials[self.trials["trial_id"].isin(self.ranking)]

    @property
    def best(self) -> pd.Series | None:
        """The best trial's row, or None when no trial completed with a finite score."""
        return self.ranked().iloc[0] if self.ranking else None


# ----------------------------------------------------------------------------- finding projects

def is_project(path: Path) -> bool:
    return (path / ORACLE).is_file() or any(path.glob(f"trial_*/{TRIAL_JSON}"))


def find_projects(path: str | os.PathLike) -> list[Path]:
    """Keras Tuner project directories at or under ``path`` (sorted); UserError when none."""
    root = Path(path).expanduser()
    if not root.exists():
        raise UserError(f"{root} does not exist; pass a Keras Tuner project directory or a folder holding some")
    if not root.is_dir():
        raise UserError(f"{root} is not a directory; pass a Keras Tuner project directory (it holds oracle.json)")
    if is_project(root):
        return [root]
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        if here != root and is_project(here):
            found.append(here)
            dirnames[:] = []  # a project's own folders are trials, not projects
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "trial_")) and d not in SKIP_DIRS)
    if not found:
        raise UserError(f"no Keras Tuner project under {root} (looked for oracle.json or trial_*/trial.json); "
                        "pass the tuner's directory/project_name folder")
    return sorted(found)


# ----------------------------------------------------------------------------- reading files

def as_float(value) -> float:
    """A score or metric value as a float; NaN when missing or not a number (a list is averaged)."""
    if isinstance(value, list):  # metric observations are lists (one value per execution, averaged)
        value = float(np.mean(value)) if value else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _json_object(path: Path, problems: list[str], consequence: str, schema: str | None = None) -> dict | None:
    """``path`` parsed as a JSON object, or None (with a problem saying ``consequence``) when unusable;
    ``schema``: also checked against that file's schema (:data:`fashion_tuner.rundir.SCHEMAS`)."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        problem = rundir.schema_problem(data, schema) if schema else None
        if problem:
            raise ValueError(problem)
        return data
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        problems.append(f"{path}: unreadable ({exc}); {consequence}")
        return None


def _metrics(state: dict) -> dict:
    """``{metric: {"direction", "last", "at_best": {step: value}}}`` from a trial.json's metrics."""
    metrics = {}
    for name, hist in ((state.get("metrics") or {}).get("metrics") or {}).items():
        obs = hist.get("observations") or []
        metrics[name] = {"direction": hist.get("direction"),
                         "last": as_float(obs[-1].get("value")) if obs else math.nan,
                         "at_best": {o.get("step"): as_float(o.get("value")) for o in obs}}
    return metrics


def read_trial(trial_dir: Path, problems: list[str]) -> dict | None:
    """One trial as the reader keeps it (``state``: the trial.json dict), or None when unreadable."""
    state = _json_object(trial_dir / TRIAL_JSON, problems, "left out")
    if state is None:
        return None
    if "hyperparameters" not in state:
        problems.append(f"{trial_dir / TRIAL_JSON}: unreadable (not a Keras Tuner trial: no 'hyperparameters'); "
                        "left out")
        return None
    problem = rundir.trial_problem(state, trial_dir)
    if problem:
        problems.append(f"{trial_dir / TRIAL_JSON}: unreadable ({problem}); left out")
        return None
    hps = state.get("hyperparameters") or {}
    message = state.get("message")
    if message:
        lines = [ln.strip() for ln in str(message).strip().splitlines() if ln.strip()]
        message = lines[-1] if lines else None
    begin, epochs = epochlog.read_epochs(trial_dir)
    return {"trial_id": str(state.get("trial_id", trial_dir.name[len("trial_"):])), "state": state,
            "status": str(state.get("status", "?")).lower(), "score": as_float(state.get("score")),
            "best_step": state.get("best_step"), "values": hps.get("values") or {}, "space": hps.get("space") or [],
            "metrics": _metrics(state), "message": message, "mtime": (trial_dir / TRIAL_JSON).stat().st_mtime,
            "begin": begin, "epochs": epochs}


def _observations(trial: dict) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(step, value), ...]}`` of one read trial, steps ascending (a step that is not a whole number is left out)."""
    out = {}
    for name, info in trial["metrics"].items():
        points = [(int(step), value) for step, value in info["at_best"].items()
                  if isinstance(step, int) and not isinstance(step, bool)]
        out[name] = sorted(points)
    return out


def _trial_sort_key(trial_id: str):
    return (0, int(trial_id), "") if trial_id.isdigit() else (1, 0, trial_id)


def _read_trials(path: Path, oracle: dict | None, problems: list[str]) -> list[dict]:
    """The readable trials in start order (oracle.json's, else by trial id)."""
    read = [read_trial(d, problems) for d in sorted(path.glob("trial_*")) if (d / TRIAL_JSON).is_file()]
    trials = sorted((t for t in read if t is not None), key=lambda t: _trial_sort_key(t["trial_id"]))
    if oracle and oracle.get("start_order"):
        rank = {tid: i for i, tid in enumerate(oracle["start_order"])}
        trials.sort(key=lambda t: rank.get(t["trial_id"], len(rank)))
    return trials


def _space(oracle: dict | None, trials: list[dict]) -> dict[str, dict]:
    configs = list(((oracle or {}).get("hyperparameters") or {}).get("space") or [])
    for t in trials:
        configs.extend(t["space"])
    space = infer.hp_space(configs)
    for t in trials:  # values without a declared space entry (should not happen, but plain dicts can)
        for name, value in t["values"].items():
            if name not in space and name not in infer.HYPERBAND_KEYS:
                space[name] = infer.undeclared(value)
    for name in infer.HYPERBAND_KEYS:
        space.pop(name, None)
    return space


def trial_times(trials: list[dict]) -> dict[str, tuple[float, float, bool]]:
    """``{trial_id: (start, end, exact)}`` in Unix seconds. Exact from ``epochs.jsonl`` (fashion_tuner
    searches); otherwise approximate, for trials run one after another: a trial ends when its trial.json
    was last written and starts when the previous one (in start order) ended."""
    out, previous_end = {}, None
    for t in trials:
        if t.get("begin") and t.get("epochs"):
            out[t["trial_id"]] = (float(t["begin"]), float(t["epochs"][-1]["time"]), True)
        elif previous_end is not None and t["mtime"] > previous_end:
            out[t["trial_id"]] = (previous_end, t["mtime"], False)
        previous_end = t["mtime"]
    return out


def fold_columns(metric_names) -> list[str]:
    """``search --cv``'s per-trial metrics in order: ``fold_1``.. ``fold_K`` then ``cv_sd`` (those present)."""
    folds = sorted((m for m in metric_names if m.startswith(FOLD_PREFIX) and m[len(FOLD_PREFIX):].isdigit()),
                   key=lambda m: int(m[len(FOLD_PREFIX):]))
    return folds + ([SD_METRIC] if folds and SD_METRIC in metric_names else [])


def trials_frame(trials: list[dict], space: dict) -> pd.DataFrame:
    """One row per trial: core columns, the cross-validation columns ``fold_1``.. ``fold_K`` and ``cv_sd``
    (``search --cv``: each fold's best val_accuracy and their sd; the score is their mean), Hyperband
    columns, every hyperparameter, ``metric:<name>``."""
    metric_names = sorted({m for t in trials for m in t["metrics"]})
    cv_cols = fold_columns(metric_names)
    rows = []
    for order, t in enumerate(trials):
        row = {"trial_id": t["trial_id"], "order": order, "status": t["status"], "score": t["score"],
               "best_step": t["best_step"], "epochs_run": math.nan}
        row.update({c: t["metrics"][c]["last"] if c in t["metrics"] else math.nan for c in cv_cols})
        row.update({col: t["values"][key] for key, col in infer.HYPERBAND_KEYS.items() if key in t["values"]})
        logged = {e.get("epoch") for e in t.get("epochs") or []}
        if logged:  # what ran (epochs.jsonl), as the trial's own log counts it: a budget or early stop included
            row["epochs_run"] = len(logged)
        elif "epochs" in row:  # planned: a plain Keras Tuner folder logs no epochs
            row["epochs_run"] = row["epochs"] - row.get("initial_epoch", 0)
        row.update({name: t["values"].get(name) for name in space})
        row.update({f"metric:{m}": t["metrics"][m]["last"] if m in t["metrics"] else math.nan for m in metric_names})
        row["message"] = t["message"]
        rows.append(row)
    hb_cols = [c for c in infer.HYPERBAND_KEYS.values() if any(c in r for r in rows)]
    columns = CORE_COLUMNS + cv_cols + hb_cols + list(space) + [f"metric:{m}" for m in metric_names] + ["message"]
    df = pd.DataFrame(rows, columns=columns)
    df["score"] = df["score"].astype(float)
    df["best_step"] = pd.to_numeric(df["best_step"], errors="coerce")
    df["epochs_run"] = pd.to_numeric(df["epochs_run"], errors="coerce")
    return df


# ----------------------------------------------------------------------------- the project

def _ids(ids: list[str], limit: int = 8) -> str:
    return ", ".join(ids[:limit]) + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


def trial_problems(path: Path, df: pd.DataFrame, trials: list[dict], space: dict) -> list[str]:
    """What is odd about the readable trials: still running, no finite score, failed, a hyperparameter
    (not a conditional one) set in some trials only."""
    problems = []
    running = df.loc[df["status"] == "running", "trial_id"].tolist()
    if running:
        problems.append(f"{path}: trial(s) {_ids(running)} still RUNNING (search killed, or still going); no score yet")
    noscore = df.loc[(df["status"] == "completed") & ~np.isfinite(df["score"]), "trial_id"].tolist()
    if noscore:
        problems.append(f"{path}: completed trial(s) {_ids(noscore)} have a NaN or missing score; "
                        "left out of the ranking")
    failed = df.loc[df["status"].isin(["failed", "invalid"]), "trial_id"].tolist()
    if failed:
        problems.append(f"{path}: trial(s) {_ids(failed)} failed or were invalid; see the message column of trials.csv")
    # A conditional hyperparameter (declared under a parent's condition, e.g. a block's filters when
    # the network has that block) is meant to be absent from some trials: that is not a problem.
    # One without conditions that only some trials have was added to the space during the search.
    partial = [n for n, hp in space.items() if not hp.get("conditional") and trials
               and 0 < sum(n in t["values"] for t in trials) < len(trials)]
    if partial:
        problems.append(f"{path}: hyperparameter(s) {_ids(partial)} are set in some trials only (added to the "
                        "space during the search?); blank elsewhere")
    return problems


def _epochs_spent(df: pd.DataFrame, tuner: str, folds: int = 1) -> tuple[int, bool]:
    """(epochs trained by the trials that ran, exact?): exact under Hyperband, else a lower bound.
    ``folds``: search --cv's K (every trial trained K models; ``epochs_run`` already counts them)."""
    ran = df[df["status"].isin(RAN)]
    if algorithms.is_multi_fidelity(tuner) and ran["epochs_run"].notna().all():
        return int(ran["epochs_run"].sum()), True
    return int((ran["best_step"].fillna(0) + 1).where(ran["status"] == "completed", 0).sum()) * folds, False


def _run_and_oracle(path: Path, problems: list[str]) -> tuple[dict | None, dict | None]:
    run = None
    if (path / RUN_JSON).is_file():
        run = _json_object(path / RUN_JSON, problems, "reviewing it as a plain Keras Tuner directory", RUN_JSON)
    oracle = None
    if (path / ORACLE).is_file():
        oracle = _json_object(path / ORACLE, problems, "tuner type and trial order come from the trials alone", ORACLE)
    else:
        problems.append(f"{path}: no {ORACLE} (search killed before its first save?); reviewing the trial folders alone")
    return run, oracle


def read_project(path: str | os.PathLike) -> Project:
    """Everything the review needs about one project directory; problems are in ``.problems``, not logged."""
    path = Path(path)
    problems: list[str] = []
    run, oracle = _run_and_oracle(path, problems)
    trials = _read_trials(path, oracle, problems)
    space = _space(oracle, trials)
    tuner, detail = infer.infer_tuner(oracle, trials, space)
    if run and run.get("tuner"):
        tuner, detail = str(run["tuner"]), detail if tuner == str(run["tuner"]) else "from run.json"
    if run and run.get("objective"):
        objective, direction, how = run["objective"], run.get("direction", "max"), "from run.json"
    else:
        objective, direction, how = infer.infer_objective(trials)
    df = trials_frame(trials, space)
    problems += trial_problems(path, df, trials, space)
    ids = {id(t["state"]): t["trial_id"] for t in trials}
    ranked = ranked_trials([t["state"] for t in trials], direction)
    ranking = [ids[id(s)] for s in ranked]
    order, pick_note = algorithms.pick_order(path, ranked) if run else (ranked, None)
    pick = ids.get(id(order[0])) if order and pick_note else None
    folds = int(((run or {}).get("cv") or {}).get("k") or 1)
    if folds > 1 and "epochs" in df:  # search --cv: each of the K folds trains from scratch for tuner/epochs
        df["epochs_run"] = pd.to_numeric(df["epochs"], errors="coerce") * folds
    epochs_spent, epochs_exact = _epochs_spent(df, tuner, folds)
    files = [path / n for n in (ORACLE, RUN_JSON) if (path / n).exists()]
    mtime = max([t["mtime"] for t in trials] + [f.stat().st_mtime for f in files] + [0.0])
    return Project(path=path, name=str((run or {}).get("name") or path.name), run=run, oracle=oracle, tuner=tuner,
                   tuner_detail=detail, objective=objective, direction=direction, objective_how=how, space=space,
                   trials=df, ranking=ranking, epochs_spent=epochs_spent, epochs_exact=epochs_exact, mtime=mtime,
                   curves={t["trial_id"]: t["epochs"] for t in trials if t.get("epochs")},
                   values={t["trial_id"]: dict(t["values"]) for t in trials},
                   observations={t["trial_id"]: _observations(t) for t in trials},
                   times=trial_times(trials), problems=problems, pick=pick, pick_note=pick_note)


def load_project(path: str | os.PathLike, warn=None) -> Project:
    """:func:`read_project`, each problem logged as a warning (or passed to ``warn(message)`` instead)."""
    project = read_project(path)
    for problem in project.problems:
        if warn is None:
            log.warning("%s", " ".join(problem.split()))
        else:
            warn(problem)
    return project
