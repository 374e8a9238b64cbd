"""Which trial checkpoints a run still needs, deleting the others (``search --keep-checkpoints K``),
and how much disk a run uses (recorded in run.json's ``disk``).

Keras Tuner keeps every trial's best-epoch weights (``trial_<id>/checkpoint.weights.h5``) forever
(keras-team/keras-tuner #288). A checkpoint still matters when:

- its trial is unfinished (running, or queued to run again): a resume continues it, and the
  checkpoint of its best epoch so far must survive;
- it is the parent of an unfinished Hyperband continuation (that trial's rerun loads it);
- Hyperband may still pick it to continue: its trial is in round r of a bracket whose round r+1
  is not yet full (the oracle draws the next round's trials from round r);
- it is one of the K best completed trials (``--keep-checkpoints K``, default 1: the best trial's
  checkpoint stays, so ``tuner.get_best_models()`` and benchmarks/peers.py work).

Every other checkpoint is deleted after each trial (and at the end of the search); the trial
folder keeps ``checkpoint.deleted.json`` saying when, why and how many bytes. ``all`` keeps every
checkpoint (Keras Tuner's own behaviour). Reading needs no Keras.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from fashion_tuner import algorithms, fsio, kt_compat, runs
from fashion_tuner.fitting import DIRECTION

CHECKPOINT_FILE = "checkpoint.weights.h5"
DELETED_FILE = "checkpoint.deleted.json"
DEFAULT_KEEP = 1
PARENT_KEY = "tuner/trial_id"

log = logging.getLogger(__name__)


def needed(oracle_state: dict, trials: list[dict]) -> dict[str, str]:
    """``{trial_id: why}``: trials whose checkpoint a resume or a Hyperband continuation may still load.

    ``oracle_state``: parsed oracle.json; ``trials``: trial.json dicts (runs.read_trials)."""
    why: dict[str, str] = {}
    values = {str(t.get("trial_id")): (t.get("hyperparameters") or {}).get("values") or {} for t in trials}
    unfinished = kt_compat.unfinished_trials(oracle_state) | {
        str(t.get("trial_id")) for t in trials if t.get("status") in (None, "RUNNING", "IDLE")}
    for tid in sorted(unfinished):
        why[tid] = "unfinished trial"
        parent = values.get(tid, {}).get(PARENT_KEY)
        if parent:
            why.setdefault(str(parent), f"parent of unfinished trial {tid}")
    recognized = algorithms.recognize(oracle_state)
    if recognized is not None:  # what the algorithm's own saved state may still continue (Hyperband's rounds)
        for tid, reason in algorithms.module(recognized[0]).needed_checkpoints(oracle_state, trials).items():
            why.setdefault(tid, reason)
    return why


def plan(run_dir: str | Path, keep_best: int) -> tuple[dict[str, str], list[Path]]:
    """``(kept {trial_id: why}, checkpoint files to delete)``; nothing to delete when oracle.json is unreadable."""
    run_dir = Path(run_dir)
    try:
        oracle_state = json.loads((run_dir / kt_compat.ORACLE_FILE).read_text())
    except (OSError, ValueError):
        return {}, []
    trials = runs.read_trials(run_dir)
    keep = needed(oracle_state if isinstance(oracle_state, dict) else {}, trials)
    for rank, trial in enumerate(runs.ranked_trials(trials, DIRECTION)[:keep_best], start=1):
        keep.setdefault(str(trial.get("trial_id")), f"best {rank} of the run")
    known = {str(t.get("trial_id")) for t in trials}
    delete = [p for p in sorted(run_dir.glob(f"trial_*/{CHECKPOINT_FILE}"))
              if p.parent.name[len("trial_"):] in known and p.parent.name[len("trial_"):] not in keep]
    return keep, delete


def prune(run_dir: str | Path, keep_best: int | None) -> int:
    """Delete the checkpoints no longer needed (``keep_best`` None: none); returns the bytes freed."""
    if keep_best is None:
        return 0
    _, delete = plan(run_dir, keep_best)
    freed = 0
    for path in delete:
        try:
            size = path.stat().st_size
            fsio.atomic_write_text(path.with_name(DELETED_FILE), json.dumps(
                {"bytes": size, "time": time.time(),
                 "why": f"not among the {keep_best} best trials and no resume or Hyperband round can load it "
                        "(search --keep-checkpoints)"}) + "\n")
            path.unlink()
        except OSError as exc:
            log.warning("could not delete %s: %s", path, exc)
            continue
        freed += size
    if delete:
        log.debug("deleted %d checkpoint(s), %.1f MB", len(delete), freed / 1e6)
    return freed


def _tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def _checkpoint_files(run_dir: Path) -> dict[str, list[Path]]:
    """``{trial folder name: its checkpoint files}`` for the trials that hold one. A checkpoint file is any
    file under ``trial_*/`` whose name, or a folder's name below the trial folder, starts with "checkpoint":
    Keras 3's ``checkpoint.weights.h5``, tf.keras' ``checkpoint`` + ``.index`` + ``.data-*`` (Keras Tuner on
    Keras 2), Keras Tuner 1.0's ``checkpoints/epoch_N/...``; not :data:`DELETED_FILE`."""
    found: dict[str, list[Path]] = {}
    for trial_dir in sorted(run_dir.glob("trial_*")):
        if not trial_dir.is_dir() or trial_dir.is_symlink():  # a link may lead anywhere (trial_9 -> /)
            continue
        for path in sorted(trial_dir.rglob("*")):
            parts = path.relative_to(trial_dir).parts
            if path.name != DELETED_FILE and any(p.startswith("checkpoint") for p in parts) and path.is_file():
                found.setdefault(trial_dir.name, []).append(path)
    return found


def _size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def disk_usage(run_dir: str | Path) -> dict:
    """What run.json records as ``disk`` (and ``review`` prints), for a fashion_tuner run or any Keras Tuner
    project folder: ``bytes``, the sizes of every file under the folder (links not followed);
    ``checkpoint_bytes`` of the trials' checkpoint files; ``checkpoints_kept``, trials holding a checkpoint;
    ``checkpoints_deleted`` and the ``freed_bytes`` deleting them freed (``search --keep-checkpoints``)."""
    run_dir = Path(run_dir)
    kept = _checkpoint_files(run_dir)
    deleted = list(run_dir.glob(f"trial_*/{DELETED_FILE}"))
    freed = 0
    for path in deleted:
        try:
            freed += int(json.loads(path.read_text()).get("bytes") or 0)
        except (OSError, ValueError, TypeError, AttributeError):
            continue
    return {"bytes": _tree_bytes(run_dir), "checkpoint_bytes": sum(_size(p) for files in kept.values() for p in files),
            "checkpoints_kept": len(kept), "checkpoints_deleted": len(deleted), "freed_bytes": freed}


def describe(usage: dict) -> str:
    """One line for the search summary."""
    text = (f"disk: {usage['bytes'] / 1e6:.1f} MB ({usage['checkpoints_kept']} checkpoint(s) kept, "
            f"{usage['checkpoint_bytes'] / 1e6:.1f} MB")
    if usage.get("checkpoints_deleted"):
        text += f"; {usage['checkpoints_deleted']} deleted, {usage['freed_bytes'] / 1e6:.1f} MB freed"
    return text + ")"
