"""Review Keras Tuner result directories: ``review``, ``list`` and ``compare``.

Works on any Keras Tuner project directory (``oracle.json`` + ``trial_*/trial.json``), written by
fashion_tuner or by a plain Keras Tuner script, by reading the JSON files directly: no model code,
no keras_tuner or TensorFlow import (the commands start in about a second).

What Keras Tuner stores, and what we infer from it:

- ``oracle.json`` holds the search space, the start order of the trials and the oracle's own state.
  Hyperband adds ``brackets``/``max_epochs``/``factor``; BayesianOptimization adds
  ``num_initial_points``/``alpha``/``beta``; RandomSearch and GridSearch add nothing, but GridSearch's
  first trial always takes every default value and its second differs from it in one value.
- The objective's name is not stored anywhere. Each trial keeps its metrics (at the best epoch only)
  and its ``score``: the objective is the metric equal to the score in the most trials (``run.json``
  says it outright for our runs).
- Keras Tuner records only the best epoch of a trial, so epochs actually trained are known only under
  Hyperband (``tuner/epochs - tuner/initial_epoch``); elsewhere ``best_step + 1`` is a lower bound.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_tuner import epochlog, hints, tables
from fashion_tuner import review_plots as rp
from fashion_tuner.errors import UserError

ORACLE = "oracle.json"
RUN_JSON = "run.json"
TRIAL_JSON = "trial.json"
METRICS_JSON = Path("report") / "metrics.json"
REVIEW_DIR = "review"
HYPERBAND_KEYS = {"tuner/epochs": "epochs", "tuner/initial_epoch": "initial_epoch",
                  "tuner/bracket": "bracket", "tuner/round": "round", "tuner/trial_id": "parent_trial"}
CORE_COLUMNS = ["trial_id", "order", "status", "score", "best_step", "epochs_run"]
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", REVIEW_DIR}
BUDGET_KEYS = ("max_epochs", "factor", "max_trials", "batch_size", "seed", "subset")
MAX_BOARD_COLUMNS = 12  # a wider leaderboard is shown sideways on the page (one row per column)
# The review's figures in page order: file stem -> heading.
FIGURES = {"history": "Optimisation history", "curves": "Learning curves of every trial",
           "timeline": "Trial timeline", "hp_scores": "Score against each hyperparameter",
           "parallel": "Parallel coordinates of the top trials", "hyperband": "Hyperband brackets",
           "importance": "Hyperparameter importance", "heatmap": "The two most important hyperparameters"}


# ----------------------------------------------------------------------------- small helpers

def _warn(msg: str) -> None:
    print("warning: " + " ".join(str(msg).split()), file=sys.stderr)


def _float(value) -> float:
    """A score or metric value as a float; NaN when missing or not a number."""
    if isinstance(value, list):  # metric observations are lists (one value per execution, averaged)
        value = float(np.mean(value)) if value else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _read_json(path: Path):
    return json.loads(Path(path).read_text())


def _ids(ids: list[str], limit: int = 8) -> str:
    return ", ".join(ids[:limit]) + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


def _fmt(value) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return "-" if value is None else str(value)


def _trial_sort_key(trial_id: str):
    return (0, int(trial_id), "") if trial_id.isdigit() else (1, 0, trial_id)


def _is_project(path: Path) -> bool:
    return (path / ORACLE).is_file() or any(path.glob(f"trial_*/{TRIAL_JSON}"))


def find_projects(path: str | os.PathLike) -> list[Path]:
    """Keras Tuner project directories at or under ``path`` (sorted); UserError when none."""
    root = Path(path).expanduser()
    if not root.exists():
        raise UserError(f"{root} does not exist; pass a Keras Tuner project directory or a folder holding some")
    if not root.is_dir():
        raise UserError(f"{root} is not a directory; pass a Keras Tuner project directory (it holds oracle.json)")
    if _is_project(root):
        return [root]
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        if here != root and _is_project(here):
            found.append(here)
            dirnames[:] = []  # a project's own folders are trials, not projects
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "trial_")) and d not in SKIP_DIRS)
    if not found:
        raise UserError(f"no Keras Tuner project under {root} (looked for oracle.json or trial_*/trial.json); "
                        "pass the tuner's directory/project_name folder")
    return sorted(found)


# ----------------------------------------------------------------------------- loading

def _hp_space(configs: list[dict]) -> dict[str, dict]:
    """``{name: {"type", "values", "min", "max", "step", "sampling", "default"}}`` from HP configs."""
    space = {}
    for item in configs:
        cls, cfg = item.get("class_name", "?"), item.get("config", {})
        name = cfg.get("name")
        if not name or name in space:
            continue
        entry = {"type": cls, "default": cfg.get("default"), "sampling": cfg.get("sampling"),
                 "min": cfg.get("min_value"), "max": cfg.get("max_value"), "step": cfg.get("step"),
                 "values": cfg.get("values"), "conditional": bool(cfg.get("conditions"))}
        if cls == "Boolean":
            entry["values"] = [False, True]
        elif cls == "Fixed":
            entry["values"] = [cfg.get("value")]
            entry["default"] = cfg.get("value")
        space[name] = entry
    return space


def _default_value(hp: dict):
    if hp["default"] is not None:
        return hp["default"]
    if hp["type"] in ("Int", "Float"):
        return hp["min"]
    if hp["type"] == "Boolean":
        return False
    return (hp["values"] or [None])[0]


def _infer_tuner(oracle: dict | None, trials: list[dict], space: dict) -> tuple[str, str]:
    """(tuner name, detail) from oracle.json keys and the trials' hyperparameters."""
    if oracle and "brackets" in oracle:
        return "hyperband", (f"max_epochs {oracle.get('max_epochs')}, factor {oracle.get('factor')}, "
                             f"{oracle.get('hyperband_iterations')} iteration(s)")
    if any("tuner/epochs" in t["values"] for t in trials):
        return "hyperband", "inferred from the trials' tuner/* hyperparameters"
    if oracle and "num_initial_points" in oracle:
        return "bayesian", (f"num_initial_points {oracle.get('num_initial_points')}, "
                            f"alpha {oracle.get('alpha')}, beta {oracle.get('beta')}")
    if oracle is None or not trials:
        return "unknown", "no oracle.json" if oracle is None else "no trials"
    by_id = {t["trial_id"]: t for t in trials}
    order = [by_id[i] for i in oracle.get("start_order", []) if i in by_id] or trials
    first = order[0]["values"]
    tunable = [n for n, hp in space.items() if hp["type"] != "Fixed"]
    if tunable and all(first.get(n) == _default_value(space[n]) for n in tunable if n in first):
        if len(order) < 2 or sum(order[1]["values"].get(n) != first.get(n) for n in first) == 1:
            return "grid", "inferred: the first trial took every default value"
    return "random", "no oracle state beyond the base Oracle's"


def _read_trial(trial_dir: Path, warn) -> dict:
    trial_id = trial_dir.name[len("trial_"):]
    try:
        state = _read_json(trial_dir / TRIAL_JSON)
        if not isinstance(state, dict) or "hyperparameters" not in state:
            raise ValueError("not a Keras Tuner trial (no 'hyperparameters')")
    except (OSError, ValueError) as exc:
        warn(f"{trial_dir / TRIAL_JSON}: unreadable ({type(exc).__name__}: {exc}); reviewed as 'unreadable'")
        return {"trial_id": trial_id, "status": "unreadable", "score": math.nan, "best_step": None,
                "values": {}, "space": [], "metrics": {}, "message": None, "mtime": 0.0, "begin": None,
                "epochs": []}
    hps = state.get("hyperparameters") or {}
    metrics = {}
    for name, hist in ((state.get("metrics") or {}).get("metrics") or {}).items():
        obs = hist.get("observations") or []
        metrics[name] = {"direction": hist.get("direction"),
                         "last": _float(obs[-1].get("value")) if obs else math.nan,
                         "at_best": {o.get("step"): _float(o.get("value")) for o in obs}}
    message = state.get("message")
    if message:
        lines = [ln.strip() for ln in str(message).strip().splitlines() if ln.strip()]
        message = lines[-1] if lines else None
    return {"trial_id": str(state.get("trial_id", trial_id)), "status": str(state.get("status", "?")).lower(),
            "score": _float(state.get("score")), "best_step": state.get("best_step"),
            "values": hps.get("values") or {}, "space": hps.get("space") or [], "metrics": metrics,
            "message": message, "mtime": (trial_dir / TRIAL_JSON).stat().st_mtime,
            **dict(zip(("begin", "epochs"), epochlog.read_epochs(trial_dir)))}


def _infer_objective(trials: list[dict]) -> tuple[str, str, str]:
    """(name, direction, how) of the metric equal to the trials' score."""
    votes: dict[str, int] = {}
    directions = {}
    for t in trials:
        if math.isnan(t["score"]):
            continue
        for name, m in t["metrics"].items():
            value = m["at_best"].get(t["best_step"], m["last"])
            if not math.isnan(value) and math.isclose(value, t["score"], rel_tol=1e-9, abs_tol=1e-12):
                votes[name] = votes.get(name, 0) + 1
                directions[name] = m["direction"]
    if not votes:
        # Multi-objective and custom scores are minimised by Keras Tuner.
        return "unknown (custom or multi-objective score)", "min", "no metric equals the score"
    name = max(votes, key=lambda n: (votes[n], n.startswith("val_"), n))
    return name, directions[name] or "max", "inferred from trial metrics"


def load_project(path: Path, warn=_warn) -> dict:
    """Everything the review needs about one project directory.

    Returns a dict: ``path``, ``name``, ``run`` (run.json or None), ``oracle``, ``tuner``, ``tuner_detail``,
    ``objective``, ``direction``, ``objective_how``, ``space`` (see :func:`_hp_space`), ``trials``
    (DataFrame, one row per trial in start order, see :func:`trials_frame`), ``best`` (row or None),
    ``epochs_spent`` (int) and ``epochs_exact`` (bool), ``mtime`` (latest file time, epoch seconds).
    """
    path = Path(path)
    run = None
    if (path / RUN_JSON).is_file():
        try:
            run = _read_json(path / RUN_JSON)
            if not isinstance(run, dict):
                run = None
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            warn(f"{path / RUN_JSON}: unreadable ({exc}); reviewing it as a plain Keras Tuner directory")
    oracle = None
    if (path / ORACLE).is_file():
        try:
            oracle = _read_json(path / ORACLE)
            if not isinstance(oracle, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            oracle = None
            warn(f"{path / ORACLE}: unreadable ({exc}); tuner type and trial order come from the trials alone")
    else:
        warn(f"{path}: no {ORACLE} (search killed before its first save?); reviewing the trial folders alone")

    trials = [_read_trial(d, warn) for d in sorted(path.glob("trial_*")) if (d / TRIAL_JSON).is_file()]
    trials.sort(key=lambda t: _trial_sort_key(t["trial_id"]))
    if oracle and oracle.get("start_order"):
        rank = {tid: i for i, tid in enumerate(oracle["start_order"])}
        trials.sort(key=lambda t: rank.get(t["trial_id"], len(rank)))

    configs = list(((oracle or {}).get("hyperparameters") or {}).get("space") or [])
    for t in trials:
        configs.extend(t["space"])
    space = _hp_space(configs)
    for t in trials:  # values without a declared space entry (should not happen, but plain dicts can)
        for name, value in t["values"].items():
            if name not in space and name not in HYPERBAND_KEYS:
                space[name] = {"type": "Float" if isinstance(value, (int, float)) and not isinstance(value, bool)
                               else "Choice", "values": None, "min": None, "max": None, "step": None,
                               "sampling": None, "default": None, "conditional": False}
    for name in HYPERBAND_KEYS:
        space.pop(name, None)

    tuner, detail = _infer_tuner(oracle, trials, space)
    if run and run.get("tuner"):
        tuner, detail = str(run["tuner"]), detail if tuner == str(run["tuner"]) else "from run.json"
    if run and run.get("objective"):
        objective, direction, how = run["objective"], run.get("direction", "max"), "from run.json"
    else:
        objective, direction, how = _infer_objective(trials)

    df = trials_frame(trials, space, tuner)
    _warn_problems(path, df, trials, space, warn)
    ok = df[(df["status"] == "completed") & df["score"].notna()]
    best = None
    if len(ok):
        # Stable sort in start order: ties go to the earliest trial, as in Oracle.get_best_trials().
        best = ok.sort_values("score", ascending=direction == "min", kind="stable").iloc[0]
    ran = df[df["status"].isin(["completed", "failed", "invalid", "stopped"])]
    epochs_exact = tuner == "hyperband" and ran["epochs_run"].notna().all()
    if epochs_exact:
        epochs_spent = int(ran["epochs_run"].sum())
    else:
        epochs_spent = int((ran["best_step"].fillna(0) + 1).where(ran["status"] == "completed", 0).sum())
    files = [path / n for n in (ORACLE, RUN_JSON) if (path / n).exists()]
    mtime = max([t["mtime"] for t in trials] + [f.stat().st_mtime for f in files] + [0.0])
    name = str((run or {}).get("name") or path.name)
    return {"path": path, "name": name, "run": run, "oracle": oracle, "tuner": tuner, "tuner_detail": detail,
            "objective": objective, "direction": direction, "objective_how": how, "space": space,
            "trials": df, "best": best, "epochs_spent": epochs_spent, "epochs_exact": epochs_exact,
            "mtime": mtime, "curves": {t["trial_id"]: t["epochs"] for t in trials if t.get("epochs")},
            "times": _trial_times(trials)}


def _trial_times(trials: list[dict]) -> dict[str, tuple[float, float, bool]]:
    """``{trial_id: (start, end, exact)}`` in Unix seconds. Exact from ``epochs.jsonl`` (fashion_tuner
    searches); otherwise approximate, for trials run one after another: a trial ends when its trial.json
    was last written and starts when the previous one (in start order) ended."""
    out, previous_end = {}, None
    for t in trials:
        if t["status"] == "unreadable":
            continue
        if t.get("begin") and t.get("epochs"):
            out[t["trial_id"]] = (float(t["begin"]), float(t["epochs"][-1]["time"]), True)
        elif previous_end is not None and t["mtime"] > previous_end:
            out[t["trial_id"]] = (previous_end, t["mtime"], False)
        previous_end = t["mtime"]
    return out


def trials_frame(trials: list[dict], space: dict, tuner: str) -> pd.DataFrame:
    """One row per trial: core columns, Hyperband columns, every hyperparameter, ``metric:<name>``."""
    metric_names = sorted({m for t in trials for m in t["metrics"]})
    rows = []
    for order, t in enumerate(trials):
        row = {"trial_id": t["trial_id"], "order": order, "status": t["status"], "score": t["score"],
               "best_step": t["best_step"], "epochs_run": math.nan}
        for key, col in HYPERBAND_KEYS.items():
            if key in t["values"]:
                row[col] = t["values"][key]
        if "epochs" in row:
            row["epochs_run"] = row["epochs"] - row.get("initial_epoch", 0)
        for name in space:
            row[name] = t["values"].get(name)
        for m in metric_names:
            row[f"metric:{m}"] = t["metrics"][m]["last"] if m in t["metrics"] else math.nan
        row["message"] = t["message"]
        rows.append(row)
    hb_cols = [c for c in HYPERBAND_KEYS.values() if any(c in r for r in rows)]
    columns = CORE_COLUMNS + hb_cols + list(space) + [f"metric:{m}" for m in metric_names] + ["message"]
    df = pd.DataFrame(rows, columns=columns)
    df["score"] = df["score"].astype(float)
    df["best_step"] = pd.to_numeric(df["best_step"], errors="coerce")
    df["epochs_run"] = pd.to_numeric(df["epochs_run"], errors="coerce")
    return df


def _warn_problems(path: Path, df: pd.DataFrame, trials: list[dict], space: dict, warn) -> None:
    running = df.loc[df["status"] == "running", "trial_id"].tolist()
    if running:
        warn(f"{path}: trial(s) {_ids(running)} still RUNNING (search killed, or still going); no score yet")
    noscore = df.loc[(df["status"] == "completed") & df["score"].isna(), "trial_id"].tolist()
    if noscore:
        warn(f"{path}: completed trial(s) {_ids(noscore)} have a NaN or missing score; left out of the ranking")
    failed = df.loc[df["status"].isin(["failed", "invalid"]), "trial_id"].tolist()
    if failed:
        warn(f"{path}: trial(s) {_ids(failed)} failed or were invalid; see the message column of trials.csv")
    # A conditional hyperparameter (declared under a parent's condition, e.g. a block's filters when
    # the network has that block) is meant to be absent from some trials: that is not a problem.
    # One without conditions that only some trials have was added to the space during the search.
    readable = [t for t in trials if t["status"] != "unreadable"]
    partial = [n for n, hp in space.items() if not hp.get("conditional") and readable
               and 0 < sum(n in t["values"] for t in readable) < len(readable)]
    if partial:
        warn(f"{path}: hyperparameter(s) {_ids(partial)} are set in some trials only (added to the space "
             "during the search?); blank elsewhere")


# ----------------------------------------------------------------------------- text summary

def describe_hp(name: str, hp: dict) -> str:
    t = hp["type"]
    if t in ("Int", "Float"):
        step = f" step {hp['step']}" if hp.get("step") else ""
        return f"{name}: {t} {hp['min']}..{hp['max']}{step} ({hp.get('sampling') or 'linear'})"
    if t == "Fixed":
        return f"{name}: Fixed {hp['default']}"
    values = hp.get("values")
    return f"{name}: {t} " + (", ".join(map(str, values)) if values else "(values not declared)")


def leaderboard(project: dict, top: int) -> pd.DataFrame:
    """The ``top`` completed trials, best first: id, score, best epoch (1-based), epochs run, Hyperband's
    bracket/round and the trial a continuation resumes (``continues``), then only the hyperparameters
    that differ between the rows (the full table is trials.csv)."""
    df = project["trials"]
    ok = df[(df["status"] == "completed") & df["score"].notna()]
    ok = ok.sort_values("score", ascending=project["direction"] == "min", kind="stable").head(max(top, 0))
    board = ok[["trial_id", "score"]].copy()
    initial = ok["initial_epoch"].fillna(0) if "initial_epoch" in ok else 0
    board["best_epoch"] = (ok["best_step"] + 1 + initial).astype("Int64")  # 1-based, from the start of training
    board["epochs_run"] = ok["epochs_run"].astype("Int64") if ok["epochs_run"].notna().any() else None
    for col in ("bracket", "round"):
        if col in ok:
            board[col] = pd.to_numeric(ok[col], errors="coerce").astype("Int64")
    if "parent_trial" in ok and ok["parent_trial"].notna().any():
        board["continues"] = ok["parent_trial"].fillna(tables.MISSING)
    names = [n for n in project["space"] if n in ok]
    rows = ok[names].to_dict("records")
    keep = tables.differing(rows, names) if len(rows) > 1 else names
    for n in keep:
        board[n] = ok[n].map(tables.fmt)
    board = board.reset_index(drop=True)
    board.index += 1
    return board.dropna(axis=1, how="all")


def print_board(board: pd.DataFrame) -> None:
    """The leaderboard as text that fits the terminal (sideways when there are many hyperparameters)."""
    rows = [{"rank": str(i), **{c: (f"{v:.5g}" if isinstance(v, float) else v) for c, v in r.items()}}
            for i, r in zip(board.index, board.to_dict("records"))]
    fixed = ["rank", "trial_id", "score"]
    text, _ = tables.fit_table(rows, fixed, [c for c in board.columns if c not in fixed], tables.terminal_width())
    print(text)


def summary_lines(project: dict) -> list[str]:
    df = project["trials"]
    counts = df["status"].value_counts().to_dict()
    known = ["completed", "failed", "invalid", "running"]
    other = {k: v for k, v in counts.items() if k not in known}
    status = ", ".join(f"{k} {counts.get(k, 0)}" for k in known) + \
        "".join(f", {k} {v}" for k, v in other.items())
    best = project["best"]
    best_txt = f"{best['score']:.6g} (trial {best['trial_id']})" if best is not None else "none (no completed trial)"
    epochs = (f"{project['epochs_spent']}" if project["epochs_exact"] else
              f"at least {project['epochs_spent']} (Keras Tuner records only each trial's best epoch)")
    run = project["run"] or {}
    lines = [f"project: {project['path']}" + (f" (run {run['name']})" if run.get("name") else ""),
             f"tuner: {project['tuner']} ({project['tuner_detail']})",
             f"objective: {project['objective']} ({project['direction']}; {project['objective_how']})",
             f"trials: {len(df)} ({status})",
             f"best: {best_txt}",
             f"epochs spent: {epochs}",
             "hyperparameters:"]
    lines += ["  " + describe_hp(n, hp) for n, hp in project["space"].items()] or ["  (none)"]
    return lines


# ----------------------------------------------------------------------------- review

def _writable_dir(path: Path) -> bool:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def _default_out(path: Path) -> Path:
    if _writable_dir(path / REVIEW_DIR):
        return path / REVIEW_DIR
    beside = path.parent / f"{path.name}-{REVIEW_DIR}"
    if _writable_dir(beside):
        return beside
    raise UserError(f"cannot write the review next to {path} (not writable); pass --out DIR")


def _unique(name: str, taken: set) -> str:
    base, i = name, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def _html_page(project: dict, lines: list[str], board: pd.DataFrame, images: dict[str, Path],
               notes: dict[str, str]) -> str:
    """The self-contained review page: summary, leaderboard, then each figure (or, for a figure with
    nothing to show, why not) with its note."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>review: {html.escape(project['name'])}"
             "</title><style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
             ".scroll{overflow-x:auto}pre{background:#f6f6f6;padding:1em;overflow-x:auto}"
             "img{max-width:100%;margin:0.5em 0 1.5em}.note{color:#a60}</style>"
             f"</head><body><h1>Keras Tuner review: {html.escape(project['name'])}</h1>",
             "<h2>Summary</h2><pre>" + html.escape("\n".join(lines)) + "</pre>",
             f"<h2>Leaderboard (top {len(board)})</h2>",
             ("<p>Hyperparameters that are the same in every row are left out; trials.csv has them all.</p>"
              "<div class='scroll'>" + (board if board.shape[1] <= MAX_BOARD_COLUMNS else board.T.rename(
                  columns=lambda rank: f"#{rank}")).to_html(float_format=lambda v: f"{v:.6g}", na_rep="") + "</div>")
             if len(board) else "<p>no completed trials</p>"]
    for name, title in FIGURES.items():
        if name not in images and name not in notes:
            continue
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if notes.get(name):
            parts.append(f"<p class='note'>{html.escape(notes[name])}</p>")
        if name in images:
            data = base64.b64encode(images[name].read_bytes()).decode("ascii")
            parts.append(f"<img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
    parts.append(f"<p><small>written {time.strftime('%Y-%m-%d %H:%M')} by fashion_tuner review; "
                 "the per-trial table is trials.csv</small></p></body></html>")
    return "\n".join(parts)


def review_figures(project: dict, out: Path, top: int) -> tuple[dict[str, Path], dict[str, str], pd.DataFrame | None]:
    """Write the review's PNGs into ``out``: ``({name: png}, {name: note}, importance table or None)``.
    A figure with nothing to show is not written; its note says why."""
    images, notes = {}, {}

    def add(name, result):
        png, note = result if isinstance(result, tuple) else (result, "")
        if png is not None:
            images[name] = png
        if note:
            notes[name] = note

    table, importance_note = rp.hp_importance(project)
    add("history", rp.plot_history([project], out / "history.png",
                                    f"{project['name']}: optimisation history ({project['tuner']})"))
    add("curves", rp.plot_curves(project, out / "curves.png"))
    add("timeline", rp.plot_timeline(project, out / "timeline.png"))
    add("hp_scores", rp.plot_hp_scores(project, out / "hp_scores.png"))
    add("parallel", rp.plot_parallel(project, out / "parallel.png", top, table))
    if project["tuner"] == "hyperband" and "bracket" in project["trials"]:
        add("hyperband", rp.plot_hyperband(project, out / "hyperband.png"))
    add("importance", (rp.plot_importance(project, table, out / "importance.png") if table is not None else None,
                       importance_note))
    add("heatmap", rp.plot_heatmap(project, table, out / "heatmap.png") if table is not None else (None, ""))
    return images, notes, table


def review_project(project: dict, out: Path, top: int = 10) -> dict[str, Path]:
    """Print the summary and leaderboard of one loaded project; write trials.csv, plots and review.html.

    Returns ``{"trials.csv": path, "review.html": path, "<plot name>.png": path, ...}``.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the review folder {out} ({exc.strerror}); pass --out DIR") from None
    lines = summary_lines(project)
    board = leaderboard(project, top)
    print("\n".join(lines))
    print(f"leaderboard (top {len(board)} by {project['objective']}, {project['direction']}):")
    if len(board):
        print_board(board)
        print("(hyperparameters that are the same in every row are left out; trials.csv has them all)")
    else:
        print("  (no completed trials)")
    written = {"trials.csv": out / "trials.csv"}
    project["trials"].to_csv(written["trials.csv"], index=False)
    for stale in FIGURES:  # a figure this review does not draw must not survive from an earlier one
        (out / f"{stale}.png").unlink(missing_ok=True)
    images, notes, table = review_figures(project, out, top)
    if table is not None:
        print("hyperparameter importance: " + ", ".join(
            f"{r.hyperparameter} {r.importance:.3g}" for r in table.itertuples()))
    else:
        print(f"hyperparameter importance: {notes.get('importance', '')}")
    written.update({f"{k}.png": v for k, v in images.items()})
    written["review.html"] = out / "review.html"
    written["review.html"].write_text(_html_page(project, lines, board, images, notes))
    print(f"written: {written['review.html']} (+ trials.csv, {len(images)} plots in {out})")
    return written


def review_command(paths: list[str], out: str | None = None, top: int = 10) -> int:
    """``review PATH... [--out DIR] [--top N]``: review every Keras Tuner project at or under each PATH.

    Output per project: ``trials.csv``, PNG plots and ``review.html`` in ``--out`` (one subfolder per
    project when there are several), else ``PATH/review/`` (``PATH-review`` beside it if PATH is not
    writable), with one subfolder per project found under a parent PATH.
    """
    if top < 1:
        raise UserError(f"--top must be at least 1 (got {top})")
    found = [(Path(p).expanduser(), find_projects(p)) for p in paths]  # all path errors before any work
    total = sum(len(projects) for _, projects in found)
    taken: set = set()
    for root, projects in found:
        for project_dir in projects:
            if out is not None:
                target = Path(out).expanduser()
                if total > 1:
                    rel = project_dir.relative_to(root).as_posix() if project_dir != root else project_dir.name
                    target = target / _unique(rel.replace("/", "__") or project_dir.name, taken)
            else:
                target = _default_out(root)
                if project_dir != root:
                    target = target / project_dir.relative_to(root).as_posix().replace("/", "__")
            print(f"== {project_dir}")
            review_project(load_project(project_dir), target, top)
            print()
    return 0


# ----------------------------------------------------------------------------- list and compare

def _test_accuracy(path: Path) -> float:
    try:
        return _float(_read_json(path / METRICS_JSON).get("test_accuracy"))
    except (OSError, ValueError, AttributeError):
        return math.nan


def _quiet_load(path: Path) -> dict:
    problems = []
    project = load_project(path, warn=problems.append)
    if problems:
        _warn(f"{path.name}: {len(problems)} problem(s) reading it; `{hints.command('review', str(path))}` lists them")
    return project


def _space_name(run: dict | None) -> str:
    space = (run or {}).get("space")
    if not space:
        return "-"
    return Path(space).stem if str(space).endswith(".py") else str(space)


def list_command(results_dir: str) -> int:
    """``list [--results-dir DIR]``: one row per run (subfolder holding oracle.json or run.json).

    A missing or empty results directory is not an error: a message says so and the exit code is 0.
    A results "directory" that is a file is a UserError.
    """
    root = Path(results_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise UserError(f"--results-dir {root} is a file, not a directory; pass the folder holding your runs")
    if not root.is_dir():
        print(f"no runs: {root} does not exist yet (`{hints.main_py()} search` creates runs there)")
        return 0
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and ((d / ORACLE).is_file() or (d / RUN_JSON).is_file()))
    if not dirs:
        print(f"no runs in {root} (no subfolder holds oracle.json or run.json)")
        return 0
    rows = []
    for d in dirs:
        p = _quiet_load(d)
        df = p["trials"]
        rows.append({"name": d.name, "space": _space_name(p["run"]), "tuner": p["tuner"],
                     "status": (p["run"] or {}).get("status", "-"),
                     "completed": int((df["status"] == "completed").sum()),
                     "failed": int(df["status"].isin(["failed", "invalid"]).sum()),
                     "objective": p["objective"] if len(str(p["objective"])) < 20 else "?",
                     "best": p["best"]["score"] if p["best"] is not None else math.nan,
                     "test_acc": _test_accuracy(d),
                     "modified": time.strftime("%Y-%m-%d %H:%M", time.localtime(p["mtime"])) if p["mtime"] else "-"})
    table = pd.DataFrame(rows).sort_values("modified", kind="stable")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-"))
    return 0


def _resolve(run: str, results_dir: Path) -> Path:
    path = Path(run).expanduser()
    if not path.is_dir() and os.sep not in run and (results_dir / run).is_dir():
        path = results_dir / run
    if not path.is_dir():
        raise UserError(f"run {run!r} not found (neither a directory nor a run under {results_dir}); "
                        f"`{hints.command('list')}` shows the runs")
    if not _is_project(path):
        raise UserError(f"{path} is not a Keras Tuner project (no oracle.json or trial_*/trial.json)")
    return path


def compare_command(runs: list[str], results_dir: str, out: str | None = None) -> int:
    """``compare RUN...``: runs side by side; with ``--out DIR`` also ``compare.csv`` and an overlaid
    optimisation-history plot ``history.png`` in DIR (never inside a run). Without ``--out`` nothing is
    written, so the results folder holds runs only.
    """
    if not runs:
        raise UserError(f"name at least one run to compare (`{hints.command('list')}` shows them)")
    root = Path(results_dir).expanduser()
    dirs = [_resolve(r, root) for r in runs]
    projects = [_quiet_load(d) for d in dirs]
    taken: set = set()
    for p in projects:
        p["name"] = _unique(p["path"].name, taken)
    columns = {}
    for p in projects:
        args = (p["run"] or {}).get("args") or {}
        best = p["best"]
        df = p["trials"]
        col = {"path": str(p["path"]), "space": _space_name(p["run"]), "tuner": p["tuner"],
               "objective": f"{p['objective']} ({p['direction']})"}
        for key in BUDGET_KEYS:
            # a Hyperband budget is max_epochs and factor; --max-trials only counts for the other tuners
            irrelevant = (key == "factor") != (p["tuner"] == "hyperband") and key in ("factor", "max_trials")
            col[f"budget: {key}"] = "-" if irrelevant else args.get(key, "-")
        col.update({"trials completed": int((df["status"] == "completed").sum()),
                    "trials failed": int(df["status"].isin(["failed", "invalid"]).sum()),
                    "epochs spent": p["epochs_spent"] if p["epochs_exact"] else f">= {p['epochs_spent']}",
                    "best score": _fmt(best["score"]) if best is not None else "-",
                    "best trial": best["trial_id"] if best is not None else "-",
                    "test accuracy": _fmt(_test_accuracy(p["path"]))})
        for name in p["space"]:
            value = best[name] if best is not None and name in best else None
            col[f"hp: {name}"] = "-" if value is None or (isinstance(value, float) and math.isnan(value)) else value
        columns[p["name"]] = col
    table = pd.DataFrame(columns).fillna("-")
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(table.to_string())
    if out is None:
        print("(add --out DIR to save this table as compare.csv with an overlaid optimisation-history plot)")
        return 0
    target = Path(out).expanduser()
    if any(target.resolve() == d.resolve() or d.resolve() in target.resolve().parents for d in dirs):
        raise UserError(f"--out {target} is inside a run directory; pick a folder outside the runs")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {target} ({exc.strerror}); pass --out DIR") from None
    table.to_csv(target / "compare.csv")
    rp.plot_history(projects, target / "history.png", "optimisation history: " + ", ".join(p["name"] for p in projects))
    print(f"written: {target / 'compare.csv'}, {target / 'history.png'}")
    return 0
