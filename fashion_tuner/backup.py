"""Resume inside a fit: the whole training state backed up after every epoch and restored by the
next fit of the same model, so a killed trial or retrain loses at most the epoch it was in.

Built on ``keras.callbacks.BackupAndRestore`` (Keras 3.15). What Keras saves there: the model's
weights *with the optimizer's variables* (``model.save_weights``: Adam's moments, the iteration
count, so a step-based learning-rate schedule such as cosine decay continues, and the
learning-rate variable ReduceLROnPlateau lowers) and the epoch number; at the next fit's start it
loads them and the fit continues from that epoch. What it does not cover, and :class:`FitBackup`
adds:

- the other callbacks' state: EarlyStopping's wait counter, best value, best epoch and the best
  weights it puts back at the end; ReduceLROnPlateau's wait, cooldown and best; Keras Tuner's
  ``SaveBestEpoch`` best value (else the first resumed epoch would overwrite the trial's best
  checkpoint even when worse); any callback with ``backup_state()`` / ``restore_backup_state(state)``
  methods (our trial guard: the time already spent counts toward ``--trial-timeout``);
- the history of the epochs before the kill: the resumed fit's ``History`` holds every epoch, so
  Keras Tuner's score and best step, and retrain-best's ``history.csv``, are those of a whole fit;
- a fit that had already ended (stopped early, or at its last epoch) when it was killed: resumed,
  it trains no more epochs and ends as it would have (best weights restored);
- atomic writes: Keras writes the weights file and the epoch in place (a kill during the write
  leaves a damaged backup); here each epoch's weights go to a new file and ``state.json``,
  replaced atomically, names the files of the last complete epoch.

Not covered: the random state (shuffling order and dropout draws after the resume differ from an
uninterrupted fit: same shape, not the same bits); the epoch in progress at the kill (it reruns);
callbacks a space's ``fit`` creates without passing them to ``model.fit``; training state kept
outside Keras (a custom training loop).

How it is wired: :func:`attached` makes every ``model.fit`` call of one model append a ``History``
and a :class:`FitBackup` *last* in its callbacks (after the ones a space's own ``fit`` adds), so
the backup saves after every other callback has updated its state and restores after each has
reset itself in ``on_train_begin``. Fit calls are numbered per :class:`FitSlots` (a trial, a
retrained member): the n-th fit of a rerun restores the n-th fit's backup, which also covers
several executions per trial and a space's two-stage fit. The owner deletes the folder when the
trial / the retrain ends (:func:`discard`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from fashion_tuner import fsio, rundir

STATE_FILE = "state.json"
STATE_VERSION = 1
TRIAL_BACKUP_DIR = "backup"  # inside a trial folder
# Attributes of Keras' and Keras Tuner's stateful callbacks that a resumed fit needs back
# (by class name, so Keras Tuner need not be imported here).
CALLBACK_STATE = {
    "EarlyStopping": ("wait", "stopped_epoch", "best", "best_epoch"),
    "ReduceLROnPlateau": ("wait", "cooldown_counter", "best"),
    "SaveBestEpoch": ("best_value",),
    "ModelCheckpoint": ("best",),
}

log = logging.getLogger(__name__)


class FitSlots:
    """Backup folders for the fits of one trial or one retrained model: ``root/fit_1``, ``fit_2``...

    ``next_dir()`` hands out the folder of the next ``model.fit`` call, in call order.
    """

    def __init__(self, root: str | os.PathLike, label: str = ""):
        self.root = Path(root)
        self.label = label or str(self.root)
        self.calls = 0

    def next_dir(self) -> Path:
        self.calls += 1
        return self.root / f"fit_{self.calls}"


def discard(root: str | os.PathLike) -> None:
    """Delete a backup folder (its fits finished: nothing to resume)."""
    shutil.rmtree(root, ignore_errors=True)


def read_state(backup_dir: str | os.PathLike) -> dict | None:
    """The backup's ``state.json`` as a dict, or None when there is no usable backup. No Keras needed."""
    path = Path(backup_dir) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or not isinstance(state.get("epoch"), int):
        return None
    names = [state.get("weights")] + [e.get("best_weights") for e in state.get("callbacks") or []
                                      if isinstance(e, dict) and e.get("best_weights")]
    if not isinstance(state.get("callbacks", []), list) or not all(rundir.is_safe_component(n) for n in names):
        return None  # a file name that is not a plain name in this folder: not a backup this tool wrote
    return state


@contextlib.contextmanager
def attached(model, slots: FitSlots | None):
    """Within the block, each ``model.fit(...)`` gets a History and a :class:`FitBackup` (in the next
    folder of ``slots``) appended last to its callbacks. ``slots`` None: nothing is changed."""
    if slots is None:
        yield model
        return
    import keras

    original = model.fit
    backup_cls = _backup_class()

    def fit(*args, **kwargs):
        callbacks = list(kwargs.pop("callbacks", None) or [])
        history = keras.callbacks.History()
        backup = backup_cls(slots.next_dir(), siblings=callbacks, history=history, label=slots.label)
        return original(*args, callbacks=[*callbacks, history, backup], **kwargs)

    object.__setattr__(model, "fit", fit)  # an instance attribute shadows the method (not tracked by Keras)
    try:
        yield model
    finally:
        object.__delattr__(model, "fit")


def _callback_key(callback) -> str | None:
    if callable(getattr(callback, "backup_state", None)):
        return type(callback).__name__
    for cls in type(callback).__mro__:
        if cls.__name__ in CALLBACK_STATE:
            return cls.__name__
    return None


def _plain(value):
    """A JSON-safe copy of a callback attribute (NumPy scalars become floats/ints)."""
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if hasattr(value, "numpy") and not isinstance(value, (int, float)):
        return np.asarray(value).item()
    return value


def _backup_class():
    import keras

    class FitBackup(keras.callbacks.BackupAndRestore):
        """BackupAndRestore plus the other callbacks' state, the history and atomic writes (module docstring)."""

        def __init__(self, backup_dir, *, siblings: list, history, label: str = ""):
            super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False)
            self.dir = Path(backup_dir)
            self.siblings = [cb for cb in siblings if _callback_key(cb)]
            self.history = history
            self.label = label
            self.restored_epoch = None

        # ---------------------------------------------------------------- restore
        def on_train_begin(self, logs=None):
            self.history.epoch = []
            state = read_state(self.dir)
            if state is None:
                return
            try:
                best = self._load_arrays(state)
                weights = self.dir / state["weights"]
                if not weights.is_file():
                    raise FileNotFoundError(weights)
                optimizer = self.model.optimizer
                if optimizer is not None and not optimizer.built:
                    optimizer.build(self.model.trainable_variables)  # so the saved moments load
                self.model.load_weights(str(weights))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("%s: the backup in %s is unusable (%s: %s); this fit starts from its first epoch",
                            self.label, self.dir, type(exc).__name__, exc)
                discard(self.dir)
                return
            self._restore_callbacks(state, best)
            self._restore_history(state)
            epoch = int(state["epoch"])
            finished = bool(state.get("stopped")) or epoch >= self.params.get("epochs", epoch)
            # the fit loop starts at model._initial_epoch when set (Keras' own BackupAndRestore mechanism)
            self.model._initial_epoch = max(epoch, self.params.get("epochs", epoch)) if finished else epoch
            self.restored_epoch = epoch
            if finished:
                log.info("%s: this fit had finished at epoch %d before the interruption; restored, not rerun",
                         self.label, epoch)
            else:
                log.info("%s: resuming at epoch %d of %s from the backup of %s (model, optimizer, callbacks, "
                         "history)", self.label, epoch + 1, self.params.get("epochs", "?"),
                         time.strftime("%H:%M:%S", time.localtime(state.get("time", time.time()))))

        def _load_arrays(self, state: dict) -> dict:
            out = {}
            for i, entry in enumerate(state.get("callbacks", [])):
                if entry.get("best_weights"):
                    with np.load(self.dir / entry["best_weights"]) as npz:
                        out[i] = [npz[f"arr_{j}"] for j in range(len(npz.files))]
            return out

        def _restore_callbacks(self, state: dict, arrays: dict) -> None:
            seen: dict[str, int] = {}
            mine = []
            for cb in self.siblings:
                key = _callback_key(cb)
                mine.append((key, seen.get(key, 0), cb))
                seen[key] = seen.get(key, 0) + 1
            saved = {(e.get("class"), e.get("index")): (i, e) for i, e in enumerate(state.get("callbacks", []))}
            for key, index, cb in mine:
                if (key, index) not in saved:
                    continue
                i, entry = saved[(key, index)]
                if callable(getattr(cb, "restore_backup_state", None)):
                    cb.restore_backup_state(entry.get("attrs", {}))
                    continue
                for name, value in (entry.get("attrs") or {}).items():
                    setattr(cb, name, value)
                if i in arrays:
                    cb.best_weights = arrays[i]

        def _restore_history(self, state: dict) -> None:
            saved = state.get("history") or {}
            self.history.history = {k: list(v) for k, v in (saved.get("values") or {}).items()}
            self.history.epoch = list(saved.get("epochs") or [])
            self.model.history = self.history  # what fit returns even when no epoch runs

        # ---------------------------------------------------------------- save
        def _save_model(self):
            """Write epoch ``_current_epoch``'s state: new files, then state.json atomically, then
            remove the previous epoch's files."""
            rundir.refuse_symlink(self.dir, f"the backup folder {self.dir}")
            fsio.check_free_space(self.dir)  # before h5py writes: it crashes the process on a full disk
            self.dir.mkdir(parents=True, exist_ok=True)
            epoch = int(self._current_epoch)
            weights = f"epoch_{epoch}.weights.h5"
            rundir.refuse_symlink(self.dir / weights)  # h5py would write through it
            self.model.save_weights(str(self.dir / weights), overwrite=True)
            entries, keep = [], {STATE_FILE, weights}
            seen: dict[str, int] = {}
            for cb in self.siblings:
                key = _callback_key(cb)
                index = seen.get(key, 0)
                seen[key] = index + 1
                entry = {"class": key, "index": index}
                if callable(getattr(cb, "backup_state", None)):
                    entry["attrs"] = cb.backup_state()
                else:
                    entry["attrs"] = {a: _plain(getattr(cb, a)) for a in CALLBACK_STATE[key] if hasattr(cb, a)}
                    best_weights = getattr(cb, "best_weights", None)
                    if best_weights is not None:
                        name = f"epoch_{epoch}.{key}{index}.best.npz"
                        rundir.refuse_symlink(self.dir / name)
                        np.savez(self.dir / name, *best_weights)
                        entry["best_weights"] = name
                        keep.add(name)
                entries.append(entry)
            state = {"version": STATE_VERSION, "epoch": epoch, "stopped": bool(self.model.stop_training),
                     "weights": weights, "time": time.time(), "callbacks": entries,
                     "history": {"epochs": [int(e) for e in self.history.epoch],
                                 "values": {k: [_plain(v) for v in vals] for k, vals in self.history.history.items()}}}
            fsio.atomic_write_text(self.dir / STATE_FILE, json.dumps(state))
            for path in self.dir.iterdir():
                if path.name not in keep and not path.name.startswith("."):
                    path.unlink(missing_ok=True)

        def on_train_end(self, logs=None):
            self.model._initial_epoch = None  # a later fit of this model starts where it is asked to
            # the folder stays: its owner deletes it when the trial / the retrain ends (discard)

    return FitBackup
