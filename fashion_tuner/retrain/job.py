"""One retrain-best, resolved: the space, the run, the data, where the report is built and how long
each model trains (instead of nine values passed along positionally)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from fashion_tuner import budget, rundir
from fashion_tuner.retrain.config import BACKUP_DIR, trial_epochs


@dataclass
class RetrainJob:
    space: ModuleType  # the space module (built-in, or the file the user named)
    run: dict  # run.json
    data: dict  # x_fit/y_fit ((N, 28, 28, 1) float32 0-255, (N,)), val, x_te/y_te, class_names, class_weight, provenance
    out: Path  # the temporary report folder, swapped in at the end
    max_epochs: int
    explicit_epochs: int | None  # --epochs as given (None: planned)
    train_on: str  # train | train+val | full
    seed: int
    patience: int
    test_idx: np.ndarray  # the held-out test indices of the run's split
    deadline: budget.Deadline | None = None  # --time-budget: when it ends and what must fit after a fit
    budget: dict | None = None  # --time-budget: what was planned (recorded in metrics.json)
    tta: str = "none"  # --tta: how test images are scored (fashion_tuner.tta), recorded in metrics.json
    extend_to: int | None = None  # --time-budget, one model: the most epochs its first re-plan may lengthen it to

    def budget_record(self, history: dict, guarded: dict | None = None) -> dict:
        """``{"time_budget": {...}}`` for a model's metrics under --time-budget (else ``{}``): the plan, the
        epochs trained and what the budget guard did (``guarded``, ``BudgetGuard.record()``: the epochs its
        schedule last ended at, and whether the budget stopped the fit before them)."""
        if not self.budget:
            return {}
        guarded = guarded or {"replanned_epochs": None, "stopped_by_budget": False}
        return {"time_budget": {**self.budget, "epochs_trained": len(history.get("loss", [])), **guarded}}

    def epochs_for(self, trial: dict) -> int:
        """Epochs to train ``trial``'s configuration: on train+val without --epochs, as many as it needed
        in the search (no validation set to stop on); else up to max_epochs with EarlyStopping."""
        if self.train_on == "train+val" and self.explicit_epochs is None:
            return trial_epochs(trial, self.max_epochs)
        return self.max_epochs

    def backup_dir(self, trial: dict, role: str, teacher=None) -> Path:
        """Where training ``trial``'s model as ``role`` is backed up per epoch:
        ``RUN_DIR/retrain_backup/<role>-trial<id>-<digest>``, the digest of everything that shapes that
        training, so a rerun with the same arguments resumes it and one with other arguments starts afresh."""
        key = {"trial": trial.get("trial_id"), "hyperparameters": (trial.get("hyperparameters") or {}).get("values"),
               "role": role, "seed": self.seed, "epochs": self.epochs_for(trial), "train_on": self.train_on,
               "patience": self.patience, "teacher": teacher}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
        name = rundir.safe_component(f"{role.replace(' ', '_')}-trial{trial.get('trial_id')}-{digest}", "backup folder")
        root = rundir.refuse_symlink(self.out.parent / BACKUP_DIR)
        return rundir.inside(self.out.parent, root / name, "backup folder")
