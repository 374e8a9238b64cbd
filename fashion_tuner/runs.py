"""Run directories: where they live, what ``run.json`` holds, and how to get a run's data back.

A run directory ``<results_dir>/<name>/`` is a standard Keras Tuner project directory
(``oracle.json``, ``trial_*/trial.json``, checkpoints) plus our files:

- ``run.json``: command line, every argument, versions, data MD5s, split sizes, devices, times;
- ``split.npz``: the train / validation / held-out test indices (see :mod:`fashion_tuner.splits`);
- ``best_hyperparameters.json``: the best trial's hyperparameter values;
- ``report/``: what ``retrain-best`` writes;
- ``tensorboard/``: the trials as a TensorBoard HParams logdir (:mod:`fashion_tuner.review.tensorboard`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from fashion_tuner import data as data_mod
from fashion_tuner import fsio, hints, rundir, splits
from fashion_tuner.errors import UserError

RUN_JSON = "run.json"
SPLIT_FILE = "split.npz"
BEST_HP_FILE = "best_hyperparameters.json"
REPORT_DIR = "report"
TENSORBOARD_DIR = "tensorboard"
DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME = 100  # characters; file systems allow 255 bytes and Keras Tuner adds its own names below
# Written first by --overwrite (the names it is deleting), removed when done: a killed --overwrite is
# finished by the same command.
OVERWRITE_MARKER = ".fashion_tuner_overwrite.json"
# What a run directory may hold that this tool (or Keras Tuner under it) wrote: --overwrite deletes
# these and nothing else (names directly inside the run directory). Files, folders, and patterns
# precise enough that a user's trial_notes.txt, tuner_ideas.json or paper.tmp are not taken for ours.
RUN_FILES = (RUN_JSON, SPLIT_FILE, BEST_HP_FILE, "oracle.json", "cv_folds.npz",
             "optuna.journal", "optuna.journal.lock")  # the trials for optuna-dashboard (review/optuna_bridge.py), its lock
RUN_FOLDERS = (REPORT_DIR, "review", "retrain_backup", TENSORBOARD_DIR)
RUN_PATTERNS = (re.compile(r"^tuner\d+\.json$"), re.compile(r"^\.report\.(tmp|old)-\d+$"),
                re.compile(r"^\..+\.tmp-\d+$"))
TRIAL_DIR = re.compile(r"^trial_[A-Za-z0-9][A-Za-z0-9._-]*$")
# Types of the run.json fields the commands read; anything else means the manifest is damaged.
log = logging.getLogger(__name__)
MANIFEST_TYPES = {"args": dict, "data": dict, "space": str, "split": dict, "tuner": str}


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
    if len(name) > MAX_NAME:
        raise UserError(f"run name {name[:20]}... is {len(name)} characters long; use at most {MAX_NAME}")
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
        raise UserError(f"name the run: pass RUN_DIR or --name NAME (see `{hints.command('list')}`)")
    if not path.is_dir():
        raise UserError(f"run {path} does not exist; `{hints.command('list')}` shows the runs you have")
    if not (path / RUN_JSON).is_file():
        raise UserError(f"{path} has no {RUN_JSON}: it is not a fashion_tuner run "
                        f"(use `{hints.main_py()} review` for plain Keras Tuner directories)")
    return path


def read_run(run_dir: Path) -> dict:
    """run.json as a dict (plus ``run_dir``: where the run is now); UserError when missing or damaged."""
    path = Path(run_dir) / RUN_JSON
    try:
        run = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{run_dir} has no {RUN_JSON}; is it a fashion_tuner run?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); the run manifest is damaged") from None
    problem = manifest_problem(run)
    if problem:
        raise UserError(f"{path} is damaged ({problem}); restore it from a copy, or rerun the search with --overwrite")
    run["run_dir"] = str(Path(run_dir))  # where it is now, wherever it was written
    return run


def manifest_problem(run) -> str | None:
    """Why ``run`` (parsed run.json) is not a usable manifest, or None."""
    if not isinstance(run, dict):
        return f"a JSON {type(run).__name__}, not an object"
    for key, kind in MANIFEST_TYPES.items():
        if key in run and not isinstance(run[key], kind):
            return f"{key!r} is a {type(run[key]).__name__}, expected a {kind.__name__}"
    if "space" not in run:
        return "it names no search space"
    return rundir.schema_problem(run, RUN_JSON)


def is_run_entry(path: Path) -> bool:
    """True for an entry of a run directory that this tool or Keras Tuner wrote (see :data:`RUN_FILES`)."""
    name, is_dir = path.name, path.is_dir() and not path.is_symlink()
    if name in RUN_FILES or any(p.match(name) for p in RUN_PATTERNS):
        return True
    return is_dir and (name in RUN_FOLDERS or bool(TRIAL_DIR.match(name)))


def overwrite_in_progress(run_dir: Path) -> list[str] | None:
    """The names a killed ``--overwrite`` was deleting (its marker), or None when none was interrupted."""
    try:
        marker = json.loads((Path(run_dir) / OVERWRITE_MARKER).read_text())
    except (OSError, ValueError):
        return None
    names = marker.get("deleting") if isinstance(marker, dict) else None
    return [n for n in names if rundir.is_safe_component(n)] if isinstance(names, list) else None


def begin_overwrite(run_dir: Path, delete: list[Path]) -> None:
    """Record (atomically) what ``--overwrite`` is about to delete, before it deletes anything."""
    write_json(Path(run_dir) / OVERWRITE_MARKER, {"tool": "fashion_tuner", "deleting": [p.name for p in delete]})


def end_overwrite(run_dir: Path) -> None:
    (Path(run_dir) / OVERWRITE_MARKER).unlink(missing_ok=True)


def overwrite_plan(run_dir: Path) -> tuple[list[Path], list[Path]]:
    """What ``--overwrite`` would delete in ``run_dir`` and what it keeps: ``(delete, keep)``.

    Only a directory that is recognisably a run of this tool may be overwritten: one whose
    run.json is a manifest, a half-made run holding nothing but our own files, or one whose
    ``--overwrite`` was killed (:data:`OVERWRITE_MARKER`). Entries this tool did not write (a user's
    notes) are kept. Anything else raises UserError; nothing is touched.
    """
    entries = sorted(p for p in Path(run_dir).iterdir() if p.name != OVERWRITE_MARKER)
    interrupted = overwrite_in_progress(run_dir)
    ours = [p for p in entries if is_run_entry(p) or p.name in (interrupted or [])]
    others = [p for p in entries if p not in ours]
    manifest = None
    try:
        manifest = json.loads((Path(run_dir) / RUN_JSON).read_text())
    except (OSError, ValueError):
        pass
    if manifest_problem(manifest) is not None and others and interrupted is None:
        shown = ", ".join(p.name for p in others[:3]) + (" ..." if len(others) > 3 else "")
        raise UserError(f"{run_dir} is not a fashion_tuner run (no usable {RUN_JSON}; it holds {shown}): --overwrite "
                        "only deletes runs made by this tool; pick another --name or move that folder yourself")
    return ours, others


def read_trials(run_dir: Path) -> list[dict]:
    """Every ``trial_*/trial.json`` of a run, as stored by Keras Tuner, in trial order: each one checked against
    its schema and its hyperparameter values against the space oracle.json declares (fashion_tuner.rundir).

    The one rule for a file that cannot be read (every command follows it): it is skipped with a
    logged warning naming it; a search refuses to resume over it (kt_compat.check_project).
    """
    trials = []
    declared = declared_space(run_dir)
    for path in sorted(Path(run_dir).glob("trial_*/trial.json")):
        try:
            trial = json.loads(path.read_text())
            hps = trial.get("hyperparameters") if isinstance(trial, dict) else None
            # oracle.json's space first: a trial's own copy of a declared hyperparameter does not widen it
            problem = rundir.trial_problem(trial, path.parent) or rundir.value_problem(
                hps["values"], (hps.get("space") or []) + (declared or []))
            if problem:
                raise ValueError(problem)
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            log.warning("%s: unreadable (%s); left out", path, exc)
            continue
        trials.append(trial)
    return trials


def declared_space(run_dir: Path) -> list | None:
    """The hyperparameter space oracle.json declares (Keras Tuner configs), or None without a usable oracle.json."""
    try:
        oracle = json.loads((Path(run_dir) / "oracle.json").read_text())
    except (OSError, ValueError):
        return None
    if rundir.schema_problem(oracle, "oracle.json") or "space" not in (oracle.get("hyperparameters") or {}):
        return None
    return oracle["hyperparameters"]["space"]


def finished_trials(run_dir: Path) -> int:
    """How many of a run's trials have ended (completed, failed or invalid; not RUNNING); 0 for no run."""
    return sum(t.get("status") not in (None, "RUNNING") for t in read_trials(run_dir))


def trial_score(trial: dict) -> float | None:
    """A trial's score as a float, or None when it is missing or not finite (NaN never ranks)."""
    score = trial.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not np.isfinite(score):
        return None
    return float(score)


def ranked_trials(trials: list[dict], direction: str = "max") -> list[dict]:
    """The one ranking every command uses: completed trials with a finite score, best first; ties keep
    trial order (a stable sort). ``trials`` are trial.json dicts, as :func:`read_trials` returns them."""
    done = [t for t in trials if t.get("status") == "COMPLETED" and trial_score(t) is not None]
    return sorted(done, key=trial_score, reverse=(direction == "max"))


def write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically (a killed process never leaves half a file)."""
    fsio.atomic_write_text(path, json.dumps(payload, indent=2, default=_json_default) + "\n")


def mark_stopped(run_dir: Path, status: str, reason: str) -> None:
    """Record in run.json that the run stopped (``status``) and why; no-op if run.json is unreadable."""
    path = Path(run_dir) / RUN_JSON
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(manifest, dict) and manifest.get("status") == "running":
        from datetime import datetime, timezone

        manifest.update(status=status, stop_reason=reason,
                        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        write_json(path, manifest)


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


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_split_digest(run: dict, path: Path) -> None:
    """UserError when ``path`` (split.npz) is not the file whose SHA-256 run.json recorded (``split.sha256``;
    a run written before it was recorded is not checked): a swapped or edited split would let test images train."""
    recorded = (run.get("split") or {}).get("sha256")
    if recorded and path.is_file() and file_digest(path) != recorded:
        raise UserError(f"{path} is not the split this run was searched with (its SHA-256 differs from run.json's): "
                        "restore it from a copy; the held-out test images are only held out with the run's own split")


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
    check_split_digest(run, Path(run["run_dir"]) / SPLIT_FILE)
    split = splits.load_split(Path(run["run_dir"]) / SPLIT_FILE)
    (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = splits.apply_split(
        dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test, split)
    return (dataset, split, (to_model_input(x_tr), y_tr), (to_model_input(x_val), y_val),
            (to_model_input(x_te), y_te))


def load_model(path: str | Path):
    """Load a ``.keras`` model with ``safe_mode=True``; UserError if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} does not exist; retrain-best writes RUN_DIR/report/best_model.keras")
    from fashion_tuner.devices import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    from fashion_tuner import layers  # noqa: F401  (registers fashion_tuner>BatchNorm, which the cnn space saves)

    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors... all mean "not loadable"
        raise UserError(f"model file {path} cannot be loaded ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); pass a .keras file saved by retrain-best") from None
