"""Stratified splits: exact per-class counts, determinism, disjointness, saved indices."""

import numpy as np
import pytest

from fashion_tuner import splits
from fashion_tuner.errors import UserError


def test_default_split_is_the_hand_made_one(fashion):
    split = splits.make_split(fashion.y_train, fashion.y_test)
    n_test = fashion.y_test.size
    assert split.val_idx.size == round(0.6 * n_test) and split.test_idx.size == n_test - split.val_idx.size
    assert split.train_idx.size == fashion.y_train.size
    if n_test == 10000:  # the real data: 6,000 / 4,000, 600 / 400 per class
        assert np.bincount(fashion.y_test[split.val_idx]).tolist() == [600] * 10
        assert np.bincount(fashion.y_test[split.test_idx]).tolist() == [400] * 10
    # identical to what users wrote by hand
    from sklearn.model_selection import train_test_split

    _, hand_test = train_test_split(np.arange(n_test), test_size=0.4, random_state=42, stratify=fashion.y_test)
    assert set(hand_test.tolist()) == set(split.test_idx.tolist())


def test_val_and_test_disjoint_and_cover_test_set(fashion):
    split = splits.make_split(fashion.y_train, fashion.y_test)
    assert not set(split.val_idx) & set(split.test_idx)
    assert set(split.val_idx) | set(split.test_idx) == set(range(fashion.y_test.size))


def test_apply_split_selects_exactly_the_indices(fashion):
    split = splits.make_split(fashion.y_train, fashion.y_test, subset=1000)
    (x_tr, y_tr), (x_val, _), (x_te, y_te) = splits.apply_split(fashion.x_train, fashion.y_train,
                                                                 fashion.x_test, fashion.y_test, split)
    assert np.array_equal(x_te, fashion.x_test[split.test_idx]) and np.array_equal(y_te, fashion.y_test[split.test_idx])
    assert np.array_equal(x_val, fashion.x_test[split.val_idx])
    assert np.array_equal(x_tr, fashion.x_train[split.train_idx]) and y_tr.size == 1000


def test_val_from_train_keeps_test_whole(fashion):
    split = splits.make_split(fashion.y_train, fashion.y_test, val_source="train", val_size=0.1)
    assert split.test_idx.size == fashion.y_test.size
    assert not set(split.train_idx) & set(split.val_idx)
    assert split.val_idx.size == round(0.1 * fashion.y_train.size)
    counts = np.bincount(fashion.y_train[split.val_idx])
    assert counts.max() - counts.min() <= 1


def test_subset_is_stratified(fashion):
    split = splits.make_split(fashion.y_train, fashion.y_test, subset=2000)
    assert split.train_idx.size == 2000
    assert np.bincount(fashion.y_train[split.train_idx]).tolist() == [200] * 10


def test_same_seed_same_split_other_seed_other_split(fashion):
    a = splits.make_split(fashion.y_train, fashion.y_test, subset=1000, seed=3)
    b = splits.make_split(fashion.y_train, fashion.y_test, subset=1000, seed=3)
    c = splits.make_split(fashion.y_train, fashion.y_test, subset=1000, seed=4)
    assert np.array_equal(a.train_idx, b.train_idx) and np.array_equal(a.test_idx, b.test_idx)
    assert not np.array_equal(a.train_idx, c.train_idx)


def test_save_and_load_round_trip(fashion, tmp_path):
    split = splits.make_split(fashion.y_train, fashion.y_test, subset=500, val_source="train")
    splits.save_split(tmp_path / "split.npz", split)
    back = splits.load_split(tmp_path / "split.npz")
    assert back.val_source == "train" and back.seed == split.seed
    for name in ("train_idx", "val_idx", "test_idx"):
        assert np.array_equal(getattr(back, name), getattr(split, name))


@pytest.mark.parametrize("kwargs, match", [
    ({"subset": 5}, "smaller than the 10 classes"),
    ({"subset": 0}, "positive"),
    ({"val_size": 1.5}, "fraction"),
    ({"val_source": "nowhere"}, "val-source"),
])
def test_bad_split_arguments(fashion, kwargs, match):
    with pytest.raises(UserError, match=match):
        splits.make_split(fashion.y_train, fashion.y_test, **kwargs)
