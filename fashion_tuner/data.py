"""Read Fashion-MNIST / MNIST from the original IDX ``.gz`` files into numpy arrays.

Images come back as ``uint8`` arrays of shape ``(N, 28, 28)``, labels as ``int64``
arrays of shape ``(N,)`` with values 0-9. Places are tried in a fixed order
(see :func:`candidate_dirs`); the first directory holding all four files is used,
and the files are verified (gzip integrity, IDX magic numbers, sizes, label range
and, for the official files, the published MD5 sums).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fashion_tuner.errors import UserError

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
NUM_CLASSES = 10
# Decompressed size limit of one IDX file: the largest, 60,000 training images, is 47,040,016 bytes.
MAX_IDX_BYTES = 64 * 10**6

# name -> (file name, published MD5 of the .gz, MD5 of the decompressed IDX file or None).
# Debian's dataset-fashion-mnist re-packs the gzip headers (file name and timestamp stripped),
# so its .gz digests differ from the published ones while the data inside is identical: a file
# passes when either digest matches (the decompressed digests are the ones torchvision checks).
FILES = {
    "fashion_mnist": {
        "train_images": ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                         "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train_labels": ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe",
                         "9018921c3c673c538a1fc5bad174d6f9"),
        "test_images": ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79",
                        "8181f5470baa50b63fa0f6fddb340f0a"),
        "test_labels": ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310",
                        "15d484375f8d13e6eb1aabb0c3f46965"),
    },
    "mnist": {
        "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", None),
        "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", None),
        "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", None),
        "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", None),
    },
}
DATASETS = tuple(FILES)
SYSTEM_DIRS = {"fashion_mnist": "fashion-mnist", "mnist": "mnist"}
CLASS_NAMES = {
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "mnist": [str(i) for i in range(10)],
}
HOW_TO_GET = {
    "fashion_mnist": "install it with `apt-get install dataset-fashion-mnist` (Debian) or put the four "
                     "IDX .gz files in a folder and pass --data-dir DIR",
    "mnist": "put the four MNIST IDX .gz files in a folder and pass --data-dir DIR "
             "(or run once with internet so Keras can download it)",
}


@dataclass
class Dataset:
    """Train and official test arrays of one data set, and where they came from."""

    name: str
    x_train: np.ndarray  # (N, 28, 28) uint8
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray  # (M, 28, 28) uint8
    y_test: np.ndarray  # (M,) int64
    source: str
    md5: dict[str, str] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        return CLASS_NAMES.get(self.name, [str(i) for i in range(NUM_CLASSES)])


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_gzip(path: Path) -> bytes:
    """The decompressed bytes of ``path``, at most :data:`MAX_IDX_BYTES` (a gzip bomb is refused, not unpacked)."""
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read(MAX_IDX_BYTES + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"{path} is not a readable gzip file ({exc}); re-download or reinstall it") from None
    if len(raw) > MAX_IDX_BYTES:
        raise UserError(f"{path} unpacks to more than {MAX_IDX_BYTES // 10**6} MB, far more than any MNIST-style "
                        "file; it is not one: re-download or reinstall it")
    return raw


def read_idx(path: Path, expected_magic: int, raw: bytes | None = None) -> np.ndarray:
    """Read one gzipped IDX file (or its already decompressed bytes); UserError naming the file on any defect."""
    raw = read_gzip(path) if raw is None else raw
    ndim = {IMAGE_MAGIC: 3, LABEL_MAGIC: 1}[expected_magic]
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise UserError(f"{path} is truncated (only {len(raw)} bytes after decompression); re-download it")
    magic = struct.unpack(">i", raw[:4])[0]
    if magic != expected_magic:
        kind = "image" if expected_magic == IMAGE_MAGIC else "label"
        raise UserError(f"{path} has magic number {magic}, expected {expected_magic} for an IDX {kind} file; "
                        "is it the right file?")
    dims = struct.unpack(">" + "i" * ndim, raw[4:header_len])
    expected = int(np.prod(dims))
    payload = len(raw) - header_len
    if payload != expected:
        raise UserError(f"{path} is truncated or padded: header promises {expected} bytes for shape {dims}, "
                        f"file holds {payload}; re-download it")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def candidate_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Directories looked in, in order: --data-dir, $FASHION_TUNER_DATA, the Keras cache, the Debian package."""
    dirs: list[Path] = []
    if data_dir:
        dirs.append(Path(data_dir).expanduser())
    env = os.environ.get("FASHION_TUNER_DATA")
    if env:
        dirs.append(Path(env).expanduser())
    sub = SYSTEM_DIRS[name]
    dirs.append(Path.home() / ".keras" / "datasets" / sub)
    dirs.append(Path("/usr/share/datasets") / sub)
    return dirs


def load_idx_dir(directory: Path, name: str = "fashion_mnist", verify_md5: bool = True) -> Dataset:
    """Load the four IDX files of ``name`` from ``directory`` and check them."""
    files = FILES[name]
    arrays: dict[str, np.ndarray] = {}
    sums: dict[str, str] = {}
    for key, (fname, published, published_raw) in files.items():
        path = directory / fname
        if not path.is_file():
            raise UserError(f"{path} is missing; {HOW_TO_GET[name]}")
        sums[fname] = md5sum(path)
        raw = read_gzip(path)
        if verify_md5 and sums[fname] != published and hashlib.md5(raw).hexdigest() != published_raw:
            raise UserError(f"{path} has MD5 {sums[fname]}, the published one is {published}: the file is "
                            "corrupt or not the official one; re-download it, or pass --skip-md5 for your own IDX files")
        arrays[key] = read_idx(path, IMAGE_MAGIC if key.endswith("images") else LABEL_MAGIC, raw)
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise UserError(f"{directory}: {part} images ({images.shape[0]}) and labels ({labels.shape[0]}) "
                            "differ in count; the files do not belong together")
        if labels.size and labels.max() >= NUM_CLASSES:
            raise UserError(f"{directory}: {part} labels hold {int(labels.max())}, outside 0-{NUM_CLASSES - 1}; "
                            "these are not Fashion-MNIST/MNIST labels")
    return Dataset(
        name=name,
        x_train=arrays["train_images"], y_train=arrays["train_labels"].astype(np.int64),
        x_test=arrays["test_images"], y_test=arrays["test_labels"].astype(np.int64),
        source=str(directory), md5=sums,
    )


def _keras_download(name: str) -> Dataset:
    import contextlib
    import io

    from fashion_tuner.devices import import_tensorflow_quietly

    import_tensorflow_quietly()  # TensorFlow's start-up chatter would come before our one-line error
    import keras

    loader = keras.datasets.fashion_mnist if name == "fashion_mnist" else keras.datasets.mnist
    with contextlib.redirect_stdout(io.StringIO()):  # "Downloading data from ..." even when it then fails
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    cache = Path.home() / ".keras" / "datasets" / SYSTEM_DIRS[name]
    if name == "fashion_mnist" and cache.is_dir():
        return load_idx_dir(cache, name)
    return Dataset(name, x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), source="keras download")


def load_dataset(name: str = "fashion_mnist", data_dir: str | os.PathLike | None = None,
                 verify_md5: bool = True, allow_download: bool = True) -> Dataset:
    """Find and load a data set.

    A directory that holds none of the files is skipped; one that holds some but is
    defective raises at once (a corrupt file is never silently passed over).
    When nothing is found and ``allow_download`` is set, Keras' own download is tried.
    """
    if name not in FILES:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    looked = candidate_dirs(name, data_dir)
    for directory in looked:
        present = [f for f, *_ in FILES[name].values() if (directory / f).is_file()]
        if not present:
            if data_dir and directory == looked[0]:
                raise UserError(f"--data-dir {directory} holds none of the {name} IDX files "
                                f"({', '.join(f for f, *_ in FILES[name].values())}); {HOW_TO_GET[name]}")
            continue
        return load_idx_dir(directory, name, verify_md5=verify_md5)
    places = ", ".join(str(d) for d in looked)
    if allow_download:
        try:
            return _keras_download(name)
        except Exception as exc:  # offline, proxy, ...: reported below with every place looked
            places += f", Keras download ({type(exc).__name__})"
    raise UserError(f"{name} data not found (looked in {places}); {HOW_TO_GET[name]}")
