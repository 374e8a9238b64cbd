"""K-fold cross-validation: stratified fold assignment, the pooled images a search folds, and the
per-fold scores a trial or a retrain records. Nothing here imports Keras.

The pool (``search --cv K``): the search's training images plus its validation images (the official
validation split is folded in, not kept apart), so every fold validates on ``1/K`` of the pool and
trains on the rest. With ``--subset N`` the pool is a stratified sample of ``N`` of those images (a
quick run stays quick). The held-out test split is never in the pool. The assignment is saved in
``RUN_DIR/cv_folds.npz`` as indices into the official arrays plus each image's fold number, so any
later reader rebuilds the identical folds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashion_tuner.errors import UserError
from fashion_tuner.fsio import atomic_savez

MIN_FOLDS = 2
CV_FILE = "cv_folds.npz"
FOLD_PREFIX = "fold_"  # trial metrics fold_1 .. fold_K: each fold's best val_accuracy
SD_METRIC = "cv_sd"  # the sample standard deviation of the fold scores (ddof 1)


def check_k(k: int | None, flag: str = "--cv") -> None:
    """UserError unless ``k`` is None (no cross-validation) or a whole number of at least 2."""
    if k is None:
        return
    if isinstance(k, bool) or not isinstance(k, int) or k < MIN_FOLDS:
        raise UserError(f"{flag} {k}: K-fold cross-validation needs K of at least {MIN_FOLDS} folds")


def fold_ids(y: np.ndarray, k: int, seed: int, what: str = "the pooled images") -> np.ndarray:
    """Fold number ``0..k-1`` of each label of ``y`` ``(N,)``: stratified (each fold holds each class in
    proportion), shuffled with ``seed``; deterministic per ``(y, k, seed)``. UserError when a class has
    fewer than ``k`` images (a fold would miss it)."""
    check_k(k)
    classes, counts = np.unique(np.asarray(y), return_counts=True)
    if counts.size and counts.min() < k:
        rarest = classes[counts.argmin()]
        raise UserError(f"--cv {k}: class {rarest} has only {counts.min()} image(s) in {what}, fewer than the "
                        f"{k} folds; use --cv {max(MIN_FOLDS, int(counts.min()))} or less, or a larger --subset")
    from sklearn.model_selection import StratifiedKFold  # here: ~1 s to import

    out = np.empty(len(y), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, val) in enumerate(splitter.split(np.zeros(len(y)), y)):
        out[val] = fold
    return out


@dataclass
class Folds:
    """The pooled images of a search and their folds.

    ``train_idx``: indices into the official training set; ``val_idx``: into the set named by the run's
    ``val_source``; ``fold``: the fold number (1..K) of each pooled image, training ones first, in the
    order ``concatenate([train_idx, val_idx])``.
    """

    train_idx: np.ndarray
    val_idx: np.ndarray
    fold: np.ndarray
    k: int
    seed: int

    def splits(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(train positions, validation positions)]`` per fold, positions into the pool."""
        return [(np.flatnonzero(self.fold != f), np.flatnonzero(self.fold == f)) for f in range(1, self.k + 1)]

    def sizes(self) -> dict:
        return {"pool": int(self.fold.size), "from_train": int(self.train_idx.size),
                "from_val": int(self.val_idx.size),
                "val_per_fold": [int((self.fold == f).sum()) for f in range(1, self.k + 1)]}


def make_folds(split, y_train: np.ndarray, y_val_source: np.ndarray, k: int, seed: int,
               subset: int | None = None) -> Folds:
    """Pool the split's training and validation images (``split``: :class:`fashion_tuner.splits.Split`;
    ``y_val_source``: the labels of the official set its validation indices point into), take a
    stratified sample of ``subset`` of them when the pool is larger, and assign stratified folds."""
    train_idx, val_idx = np.asarray(split.train_idx), np.asarray(split.val_idx)
    labels = np.concatenate([y_train[train_idx], y_val_source[val_idx]])
    if subset is not None and subset < labels.size:
        keep = np.sort(_stratified_sample(labels, subset, seed))
        in_train = keep[keep < train_idx.size]
        in_val = keep[keep >= train_idx.size] - train_idx.size
        train_idx, val_idx, labels = train_idx[in_train], val_idx[in_val], labels[keep]
    return Folds(train_idx, val_idx, fold_ids(labels, k, seed) + 1, k, seed)


def _stratified_sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Positions of a stratified sample of ``n`` of ``labels``."""
    from sklearn.model_selection import train_test_split

    try:
        keep, _ = train_test_split(np.arange(labels.size), train_size=n, random_state=seed, stratify=labels)
    except ValueError as exc:
        raise UserError(f"cannot take a stratified {n}-image pool for --cv ({exc}); use a larger --subset") from None
    return keep


def pool_arrays(folds: Folds, train: tuple, val: tuple, split) -> tuple[np.ndarray, np.ndarray]:
    """The pooled ``(x, y)`` in :class:`Folds` order from the split's ``train`` and ``val`` arrays
    (those of ``apply_split``: rows in the order of ``split.train_idx`` / ``split.val_idx``)."""
    tr = np.searchsorted(split.train_idx, folds.train_idx)
    va = np.searchsorted(split.val_idx, folds.val_idx)
    return np.concatenate([train[0][tr], val[0][va]]), np.concatenate([train[1][tr], val[1][va]])


def check_folds(folds: Folds, split) -> None:
    """UserError unless the saved pool lies inside the run's split, fold numbers run 1..K, and each fold has images."""
    ok = (np.isin(folds.train_idx, split.train_idx).all() and np.isin(folds.val_idx, split.val_idx).all()
          and folds.fold.size == folds.train_idx.size + folds.val_idx.size
          and set(np.unique(folds.fold).tolist()) == set(range(1, folds.k + 1)))
    if not ok:
        raise UserError(f"the saved {CV_FILE} does not match the run's split; the file is damaged: rerun the search "
                        "with --overwrite")


def save_folds(path: Path, folds: Folds) -> None:
    """Write the folds as a plain ``.npz`` of integer arrays, atomically."""
    atomic_savez(path, train_idx=folds.train_idx, val_idx=folds.val_idx, fold=folds.fold, k=np.array(folds.k),
                 seed=np.array(folds.seed))


def load_folds(path: Path) -> Folds:
    if not Path(path).is_file():
        raise UserError(f"{path} is missing: the run was searched with --cv but its folds are gone; rerun the "
                        "search with --overwrite")
    try:
        with np.load(path, allow_pickle=False) as f:
            return Folds(f["train_idx"], f["val_idx"], f["fold"], int(f["k"]), int(f["seed"]))
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{path} is not a readable folds file ({exc}); rerun the search with --overwrite") from None


def summarize(scores: list[float]) -> dict:
    """``{"fold_1": s1, ..., "fold_K": sK, "cv_sd": sd}`` for fold scores in fold order (sd: ddof 1)."""
    out = {f"{FOLD_PREFIX}{i}": float(s) for i, s in enumerate(scores, start=1)}
    out[SD_METRIC] = float(np.std(scores, ddof=1)) if len(scores) > 1 else math.nan
    return out
