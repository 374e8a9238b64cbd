"""The IDX loader: real files when installed, and IDX files written here (good and broken)."""

import gzip
import struct

import numpy as np
import pytest

from conftest import SYSTEM_DATA, write_idx, write_idx_set
from fashion_tuner import data as data_mod
from fashion_tuner.errors import UserError

TRAIN_IMAGES = data_mod.FILES["fashion_mnist"]["train_images"][0]
TRAIN_LABELS = data_mod.FILES["fashion_mnist"]["train_labels"][0]


@pytest.mark.skipif(not (SYSTEM_DATA / TRAIN_IMAGES).is_file(), reason="dataset-fashion-mnist not installed")
def test_real_files_load_and_verify():
    ds = data_mod.load_dataset("fashion_mnist", SYSTEM_DATA, allow_download=False)
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (10000, 28, 28)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    assert set(ds.md5) == {f for f, *_ in data_mod.FILES["fashion_mnist"].values()}
    assert ds.class_names[6] == "Shirt"


def test_written_idx_files_round_trip(tmp_path):
    write_idx_set(tmp_path, n_train=200, n_test=50)
    ds = data_mod.load_dataset("fashion_mnist", tmp_path, verify_md5=False, allow_download=False)
    assert ds.x_train.shape == (200, 28, 28) and ds.y_test.shape == (50,)
    assert ds.y_train.dtype == np.int64 and ds.y_train.max() == 9
    assert ds.source == str(tmp_path)


def test_md5_mismatch_is_an_error(tmp_path):
    write_idx_set(tmp_path, n_train=100, n_test=20)
    with pytest.raises(UserError, match="MD5 .* published"):
        data_mod.load_dataset("fashion_mnist", tmp_path, verify_md5=True, allow_download=False)


def test_truncated_file(tmp_path):
    write_idx_set(tmp_path, n_train=100, n_test=20)
    path = tmp_path / TRAIN_IMAGES
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-500]))
    with pytest.raises(UserError, match="truncated"):
        data_mod.load_dataset("fashion_mnist", tmp_path, verify_md5=False, allow_download=False)


def test_corrupt_gzip(tmp_path):
    write_idx_set(tmp_path, n_train=100, n_test=20)
    path = tmp_path / TRAIN_IMAGES
    path.write_bytes(path.read_bytes()[:300])  # cut the compressed stream
    with pytest.raises(UserError, match="not a readable gzip"):
        data_mod.load_dataset("fashion_mnist", tmp_path, verify_md5=False, allow_download=False)


def test_wrong_magic(tmp_path):
    write_idx_set(tmp_path, n_train=100, n_test=20)
    # a label file where the image file should be
    write_idx(tmp_path / TRAIN_IMAGES, np.zeros(100, dtype=np.uint8))
    with pytest.raises(UserError, match="magic number 2049, expected 2051"):
        data_mod.load_dataset("fashion_mnist", tmp_path, verify_md5=False, allow_download=False)


def test_labels_out_of_range(tmp_path):
    write_idx_set(tmp_path, n_train=100, n_test=20)
    write_idx(tmp_path / TRAIN_LABELS, np.full(100, 12, dtype=np.uint8))
    with pytest.raises(UserError, match="outside 0-9"):
        data_mod.load_dataset("fashion_mnist", tmp_path, verify_md5=False, allow_download=False)


def test_count_mismatch(tmp_path):
    write_idx_set(tmp_path, n_train=100, n_test=20)
    write_idx(tmp_path / TRAIN_LABELS, np.zeros(90, dtype=np.uint8))
    with pytest.raises(UserError, match="differ in count"):
        data_mod.load_dataset("fashion_mnist", tmp_path, verify_md5=False, allow_download=False)


def test_missing_one_file(tmp_path):
    write_idx_set(tmp_path, n_train=100, n_test=20)
    (tmp_path / TRAIN_LABELS).unlink()
    with pytest.raises(UserError, match="missing"):
        data_mod.load_dataset("fashion_mnist", tmp_path, verify_md5=False, allow_download=False)


def test_nothing_found_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FASHION_TUNER_DATA", str(tmp_path / "env"))
    with pytest.raises(UserError) as err:
        data_mod.load_dataset("mnist", None, allow_download=False)
    message = str(err.value)
    for place in (str(tmp_path / "env"), str(tmp_path / "home" / ".keras" / "datasets" / "mnist"),
                  "/usr/share/datasets/mnist"):
        assert place in message
    assert "--data-dir" in message and "\n" not in message


def test_search_order_env_before_system(tmp_path, monkeypatch):
    env_dir = write_idx_set(tmp_path / "env", n_train=100, n_test=20)
    monkeypatch.setenv("FASHION_TUNER_DATA", str(env_dir))
    ds = data_mod.load_dataset("fashion_mnist", None, verify_md5=False, allow_download=False)
    assert ds.source == str(env_dir) and ds.x_train.shape[0] == 100


def test_explicit_empty_data_dir_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds none"):
        data_mod.load_dataset("fashion_mnist", tmp_path / "empty", allow_download=False)


def test_read_idx_header_only(tmp_path):
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(struct.pack(">i", 2051))
    with pytest.raises(UserError, match="truncated"):
        data_mod.read_idx(path, data_mod.IMAGE_MAGIC)
