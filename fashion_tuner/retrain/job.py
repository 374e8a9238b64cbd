"""One retrain-best, resolved: the space, the run, the data, where the report is built and how long
each model trains (instead of nine values passed along positionally)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from fashion_tuner.retrain.config import trial_epochs


def time_passed(deadline: float, slack_s: float = 0.0) -> bool:
    import time

    return time.time() + slack_s >= deadline


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
    deadline: float | None = None  # --time-budget: Unix seconds by which every fit must end
    budget: dict | None = None  # --time-budget: what was planned (recorded in metrics.json)

    def budget_record(self, history: dict) -> dict:
        """``{"time_budget": {...}}`` for a model's metrics under --time-budget (else ``{}``): the plan and
        whether the budget stopped the fit before its planned epochs."""
        if not self.budget:
            return {}
        trained = len(history.get("loss", []))
        per_epoch = self.budget.get("seconds_per_epoch_expected") or 0.0
        return {"time_budget": {**self.budget, "epochs_trained": trained,
                                "stopped_by_budget": bool(self.deadline and trained < self.budget["planned_epochs"]
                                                          and time_passed(self.deadline, slack_s=1.5 * per_epoch))}}

    def epochs_for(self, trial: dict) -> int:
        """Epochs to train ``trial``'s configuration: on train+val without --epochs, as many as it needed
        in the search (no validation set to stop on); else up to max_epochs with EarlyStopping."""
        if self.train_on == "train+val" and self.explicit_epochs is None:
            return trial_epochs(trial, self.max_epochs)
        return self.max_epochs
