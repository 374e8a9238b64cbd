"""Run directories: where they live, what ``run.json`` holds, and how to get a run's data back.

A run directory ``<results_dir>/<name>/`` is a standard Keras Tuner project directory
(``oracle.json``, ``trial_*/trial.json``, checkpoints) plus our files:

- ``run.json``: command line, every argument, versions, data MD5s, split sizes, devices, times;
- ``split.npz``: the train / validation / held-out test indices (see :mod:`fashion_tuner.splits`);
- ``best_hyperparameters.json``: the best trial's hyperparameter values;
- ``report/``: what ``retrain-best`` writes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from fashion_tuner import data as data_mod
from fashion_tuner import splits
from fashion_tuner.errors import UserError

RUN_JSON = "run.json"
SPLIT_FILE = "split.npz"
BEST_HP_FILE = "best_hyperparameters.json"
REPORT_DIR = "report"
DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_results_dir(results_dir: str | os.PathLike) -> Path:
    """The results root must be a directory (or creatable) and writable; nothing is created here."""
    path = Path(results_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"--results-dir {path} is a file, not a directory; pass a directory")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"--results-dir {path} is not writable ({probe} is not a writable directory); "
                        "pass a directory you can write to")
    return path


def check_run_name(name: str) -> str:
    if not NAME_RE.match(name) or name in (".", ".."):
        raise UserError(f"run name {name!r} is not allowed: use letters, digits, '.', '_' and '-' only "
                        "(no path separators or '..'), so the run stays inside the results directory")
    return name


def run_dir_for(results_dir: str | os.PathLike, name: str) -> Path:
    return check_results_dir(results_dir) / check_run_name(name)


def resolve_run(run: str | None, results_dir: str | os.PathLike = DEFAULT_RESULTS_DIR,
                name: str | None = None) -> Path:
    """Find an existing run: a path to it, a name under ``results_dir``, or ``--name``."""
    if run:
        path = Path(run).expanduser()
        if not path.is_dir() and os.sep not in run and NAME_RE.match(run):
            path = Path(results_dir).expanduser() / run
    elif name:
        path = Path(results_dir).expanduser() / check_run_name(name)
    else:
        raise UserError("name the run: pass RUN_DIR or --name NAME (see `python main.py list`)")
    if not path.is_dir():
        raise UserError(f"run {path} does not exist; `python main.py list` shows the runs you have")
    if not (path / RUN_JSON).is_file():
        raise UserError(f"{path} has no {RUN_JSON}: it is not a fashion_tuner run "
                        "(use `python main.py review` for plain Keras Tuner directories)")
    return path


def read_run(run_dir: Path) -> dict:
    try:
        run = json.loads((Path(run_dir) / RUN_JSON).read_text())
        run["run_dir"] = str(Path(run_dir))  # where it is now, wherever it was written
        return run
    except FileNotFoundError:
        raise UserError(f"{run_dir} has no {RUN_JSON}; is it a fashion_tuner run?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{run_dir / RUN_JSON} is not valid JSON ({exc}); the run manifest is damaged") from None


def read_trials(run_dir: Path) -> list[dict]:
    """Every readable ``trial_*/trial.json`` of a run, as stored by Keras Tuner (unreadable ones skipped)."""
    trials = []
    for path in sorted(Path(run_dir).glob("trial_*/trial.json")):
        try:
            trials.append(json.loads(path.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            continue
    return trials


def write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically (a killed process never leaves half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_model_input(x: np.ndarray) -> np.ndarray:
    """``(N, 28, 28)`` uint8 -> ``(N, 28, 28, 1)`` float32 in 0-255 (models normalise inside)."""
    x = np.asarray(x, dtype=np.float32)
    return x[..., None] if x.ndim == 3 else x


def load_run_data(run: dict, data_dir: str | None = None):
    """Reload the data a run used and apply its saved split.

    Returns ``(dataset, split, (x_tr, y_tr), (x_val, y_val), (x_te, y_te))`` with images as
    ``(N, 28, 28, 1)`` float32. The data files' MD5s must match those recorded in run.json.
    """
    info = run["data"]
    dataset = data_mod.load_dataset(info["dataset"], data_dir or info.get("data_dir"),
                                    verify_md5=not info.get("skip_md5", False))
    if info.get("md5") and dataset.md5 and dataset.md5 != info["md5"]:
        raise UserError(f"the data found in {dataset.source} differs from the data the run used "
                        f"({info.get('source')}); pass --data-dir pointing at the original files")
    split = splits.load_split(Path(run["run_dir"]) / SPLIT_FILE)
    (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = splits.apply_split(
        dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test, split)
    return (dataset, split, (to_model_input(x_tr), y_tr), (to_model_input(x_val), y_val),
            (to_model_input(x_te), y_te))
