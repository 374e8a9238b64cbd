"""``retrain-best --cv K``: the best configuration's K-fold cross-validated accuracy, beside its single
held-out test figure.

The folds are stratified folds of the images the final model trains on (``--train-on``: the run's
training images, plus the validation images under train+val, or every training image under full), so
the estimate is of training on that much data; the held-out test images are never among them. Each fold trains the
configuration from scratch (the retrain's epochs, EarlyStopping on the fold's held-out part) and
scores its best val_accuracy. The fold models are discarded: the test set is evaluated once, by the
final model only (:mod:`fashion_tuner.retrain.command`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fashion_tuner import cv, spaces
from fashion_tuner.retrain.config import say
from fashion_tuner.retrain.job import RetrainJob
from fashion_tuner.retrain.training import train_member

SUMMARY_HEADER = "K-fold val accuracy (mean ± sd)"


def cross_validate(job: RetrainJob, trial: dict, k: int) -> dict:
    """Train ``trial``'s configuration on each of ``k`` stratified folds (seeded by the retrain's --seed);
    returns the record for metrics.json: ``{"k", "folds": [{fold, val_accuracy, best_epoch, epochs_trained,
    n_train, n_val}], "mean", "sd", "pool_size", ...}`` (accuracies as fractions, sd with ddof 1)."""
    import keras

    x, y = job.data["x_fit"], job.data["y_fit"]
    ids = cv.fold_ids(y, k, job.seed, f"the retrain's {len(y)} training images")
    say(f"--cv {k}: cross-validating trial {trial['trial_id']} on the {len(y)} training images ({job.train_on}; "
        f"never the held-out test), up to {job.max_epochs} epoch(s) per fold, EarlyStopping on each fold's part")
    folds = []
    for f in range(k):
        train, val = ids != f, ids == f
        data = dict(job.data, x_fit=x[train], y_fit=y[train], val=(x[val], y[val]))
        ctx = spaces.data_context()  # schedules laid out over this fold's training images
        fold_ctx = dataclasses.replace(ctx, extra={**ctx.extra, "train_size": int(train.sum())})
        with spaces.using_data_context(fold_ctx):
            fitted = train_member(job.space, trial, data=data, run=job.run, epochs=job.max_epochs,
                                  seed=job.seed, patience=job.patience,
                                  label=f"trial {trial['trial_id']} fold {f + 1}/{k}",
                                  backup_dir=job.backup_dir(trial, f"cv{k}-fold{f + 1}"))
        history, wall = fitted.history, fitted.wall_s
        del fitted
        keras.backend.clear_session()
        scores = history.get("val_accuracy") or [float("nan")]
        best = int(np.nanargmax(scores)) if np.isfinite(scores).any() else 0
        folds.append({"fold": f + 1, "val_accuracy": float(scores[best]), "best_epoch": best + 1,
                      "epochs_trained": len(scores), "n_train": int(train.sum()), "n_val": int(val.sum()),
                      "wall_s": round(wall, 2)})
        say(f"--cv {k}: fold {f + 1}/{k}: val accuracy {scores[best]:.4f} (epoch {best + 1} of {len(scores)})")
    values = [fd["val_accuracy"] for fd in folds]
    record = {"k": k, "trial_id": trial["trial_id"], "seed": job.seed, "pool_size": int(len(y)),
              "pool": f"the final model's training images (--train-on {job.train_on}); never the held-out test",
              "max_epochs": job.max_epochs, "patience": job.patience, "folds": folds,
              "mean": float(np.mean(values)), "sd": cv.summarize(values)[cv.SD_METRIC]}
    say(f"--cv {k}: trial {trial['trial_id']}: K-fold val accuracy {record['mean']:.4f} ± {record['sd']:.4f} "
        f"(folds {', '.join(f'{v:.4f}' for v in values)})")
    return record


def describe(record: dict) -> str:
    """``0.8512 ± 0.0103 (K=3)`` for the report's test-results table."""
    return f"{record['mean']:.4f} ± {record['sd']:.4f} (K={record['k']})"


def note(record: dict) -> str:
    """The report's sentence about the cross-validation and how it relates to the test figure."""
    folds = ", ".join(f"{fd['val_accuracy']:.4f}" for fd in record["folds"])
    return (f"K-fold cross-validation (retrain-best --cv {record['k']}): trial {record['trial_id']}'s configuration, "
            f"trained from scratch on each of {record['k']} stratified folds of the final model's {record['pool_size']} "
            f"training images, reached a validation accuracy of {describe(record)} (folds: {folds}). The fold "
            "models are discarded; the held-out test accuracy is the final model's single evaluation.")
