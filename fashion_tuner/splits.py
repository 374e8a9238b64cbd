"""Stratified train / validation / held-out test splits, saved as indices.

Default (``val_source="test"``): the official test set is split 60/40 into validation
and held-out test (Fashion-MNIST: 6,000 / 4,000, 600 / 400 per class), seed 42, exactly
what users did by hand with ``train_test_split(test_size=0.4, random_state=42, stratify=y)``.
``val_source="train"``: validation is a stratified fraction of the training set and the
official test set stays whole. ``subset`` then takes a stratified subsample of what is
left for training. Indices refer to the official arrays, so a later command rebuilds
the identical sets from the saved file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashion_tuner.errors import UserError
from fashion_tuner.fsio import atomic_savez

DEFAULT_SEED = 42
DEFAULT_VAL_SIZE = {"test": 0.6, "train": 0.1}
VAL_SOURCES = ("test", "train")


@dataclass
class Split:
    """Index arrays into the official train / test arrays.

    ``train_idx`` indexes the official training set; ``val_idx`` indexes the official
    set named by ``val_source``; ``test_idx`` indexes the official test set.
    """

    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    val_source: str
    seed: int

    def sizes(self) -> dict[str, int]:
        return {"train": int(self.train_idx.size), "val": int(self.val_idx.size), "test": int(self.test_idx.size)}


def _stratified(indices: np.ndarray, labels: np.ndarray, size: float | int, seed: int, what: str):
    """Split ``indices`` in two, stratified on ``labels``; ``size`` is the second part."""
    from sklearn.model_selection import train_test_split  # here: ~1 s to import, and resumed searches never split

    try:
        return train_test_split(indices, test_size=size, random_state=seed, stratify=labels)
    except ValueError as exc:
        raise UserError(f"cannot stratify {what} ({exc}); use a larger --subset or another --val-size") from None


def make_split(y_train: np.ndarray, y_test: np.ndarray, *, val_source: str = "test",
               val_size: float | None = None, subset: int | None = None, seed: int = DEFAULT_SEED) -> Split:
    """Build a stratified split from the official label arrays (shapes ``(N,)`` and ``(M,)``).

    ``val_size`` is the fraction of the source set used for validation (default 0.6 of
    the official test set, or 0.1 of the training set). ``subset`` is a number of
    training images kept (stratified), for quick runs.
    """
    if val_source not in VAL_SOURCES:
        raise UserError(f"--val-source must be one of {', '.join(VAL_SOURCES)}, not {val_source!r}")
    val_size = DEFAULT_VAL_SIZE[val_source] if val_size is None else val_size
    if not 0.0 < val_size < 1.0:
        raise UserError(f"--val-size must be a fraction between 0 and 1 (exclusive), not {val_size}")
    train_all = np.arange(y_train.size)
    test_all = np.arange(y_test.size)
    if val_source == "test":
        # same call (and so the same images) as the by-hand train_test_split(test_size=0.4, ...)
        val_idx, test_idx = _stratified(test_all, y_test, round(1.0 - val_size, 10), seed,
                                        "the test set into validation and test")
        train_idx = train_all
    else:
        train_idx, val_idx = _stratified(train_all, y_train, val_size, seed, "validation out of the training set")
        test_idx = test_all
    if subset is not None:
        if subset <= 0:
            raise UserError(f"--subset must be a positive number of images, not {subset}")
        if subset < train_idx.size:
            n_classes = np.unique(y_train[train_idx]).size
            if subset < n_classes:
                raise UserError(f"--subset {subset} is smaller than the {n_classes} classes; "
                                f"use at least {n_classes} (a few thousand for a meaningful search)")
            train_idx, _ = _stratified(train_idx, y_train[train_idx], train_idx.size - subset, seed,
                                       f"a {subset}-image training subset")
    return Split(np.sort(train_idx), np.sort(val_idx), np.sort(test_idx), val_source, seed)


def check_split(split: Split, n_train: int, n_test: int) -> None:
    """UserError unless every index of ``split`` is a whole number inside the official arrays
    (``n_train`` / ``n_test`` images), without repeats, and validation and test never share an image."""
    n_val = n_test if split.val_source == "test" else n_train
    for part, idx, n in (("train", split.train_idx, n_train), ("val", split.val_idx, n_val),
                         ("test", split.test_idx, n_test)):
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise UserError(f"the saved split's {part} indices are not a list of whole numbers; the split file is "
                            "damaged: rerun the search with --overwrite")
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise UserError(f"the saved split's {part} indices run from {idx.min()} to {idx.max()}, outside the "
                            f"{n} images of the data: the split file is damaged or belongs to other data")
        if np.unique(idx).size != idx.size:
            raise UserError(f"the saved split repeats {part} indices; the split file is damaged")
    shared = np.intersect1d(split.val_idx, split.test_idx) if split.val_source == "test" else np.array([])
    shared_train = np.intersect1d(split.train_idx, split.val_idx) if split.val_source == "train" else np.array([])
    if shared.size or shared_train.size:
        raise UserError("the saved split puts the same images in two of train / validation / test; the split file "
                        "is damaged: rerun the search with --overwrite")


def apply_split(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, split: Split):
    """Return ``(x_tr, y_tr), (x_val, y_val), (x_te, y_te)`` selected by ``split`` (checked first)."""
    check_split(split, len(y_train), len(y_test))
    val_x, val_y = (x_test, y_test) if split.val_source == "test" else (x_train, y_train)
    return ((x_train[split.train_idx], y_train[split.train_idx]),
            (val_x[split.val_idx], val_y[split.val_idx]),
            (x_test[split.test_idx], y_test[split.test_idx]))


def save_split(path: Path, split: Split) -> None:
    """Write the split as a plain ``.npz`` of integer arrays (no pickled objects), atomically."""
    atomic_savez(path, train_idx=split.train_idx, val_idx=split.val_idx, test_idx=split.test_idx,
                 val_source=np.array(split.val_source), seed=np.array(split.seed))


def load_split(path: Path) -> Split:
    if not Path(path).is_file():
        raise UserError(f"{path} is missing: the run has no saved split; rerun the search that made it")
    try:
        with np.load(path, allow_pickle=False) as f:
            split = Split(f["train_idx"], f["val_idx"], f["test_idx"], str(f["val_source"]), int(f["seed"]))
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{path} is not a readable split file ({exc}); rerun the search with --overwrite") from None
    if split.val_source not in VAL_SOURCES:
        raise UserError(f"{path} names validation source {split.val_source!r}; the split file is damaged")
    return split
