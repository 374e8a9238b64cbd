"""``python main.py predict --model PATH IMAGE... [--top N]``: classify image files with a saved model.

Images: PNG/JPG (anything Pillow opens) or ``.npy`` arrays of one image, shape ``(H, W)``,
``(H, W, 1)`` or ``(H, W, 3|4)``. Colour is converted to grayscale, other sizes are resized
to 28x28, and values end up as float32 0-255 in shape ``(1, 28, 28, 1)``, what the models
expect (they normalise inside). A ``.npy`` of floats no larger than 1.0 is taken to be in
0-1 units and scaled by 255. Fashion-MNIST shows light garments on a black background; an
image whose border is mostly light (a product photo on white) is inverted, and the output
says so.

Class names come from ``class_names.json`` beside the model, else ``metrics.json`` beside it
(``"class_names"``), else the Fashion-MNIST names. Models are loaded with
``safe_mode=True`` (no arbitrary code from the model file).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from fashion_tuner import tta
from fashion_tuner.data import CLASS_NAMES
from fashion_tuner.errors import UserError
from fashion_tuner.runs import load_model

log = logging.getLogger(__name__)
IMAGE_SIZE = (28, 28)
CLASS_NAMES_FILE = "class_names.json"
# Mean border brightness (0-255) above which an image is taken as dark-on-light and inverted.
LIGHT_BORDER = 127.0
# Largest image read (pixels; checked from the header before decoding): 8000 x 8000 is far above any
# photo of one garment and keeps a hostile header (30000 x 30000) from allocating gigabytes.
MAX_PIXELS = 64_000_000


def read_class_names(model_path: str | Path, num_classes: int | None = None) -> list[str]:
    """Class names stored beside a model, else Fashion-MNIST's."""
    folder = Path(model_path).parent
    for fname, key in ((CLASS_NAMES_FILE, None), ("metrics.json", "class_names")):
        path = folder / fname
        if path.is_file():
            try:
                payload = json.loads(path.read_text())
                names = payload if key is None else payload.get(key)
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                names = None
            if isinstance(names, list) and names and (num_classes is None or len(names) == num_classes):
                return [str(n) for n in names]
    names = CLASS_NAMES["fashion_mnist"]
    if num_classes is not None and num_classes != len(names):
        return [str(i) for i in range(num_classes)]
    return list(names)


def _to_gray_float(arr: np.ndarray, source: str) -> np.ndarray:
    """``(H, W[, C])`` array -> ``(H, W)`` float32 in 0-255."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    elif arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., :3].astype(np.float32)
        arr = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's "L"
    elif arr.ndim != 2:
        raise UserError(f"{source} holds an array of shape {arr.shape}; expected one image "
                        "(H, W), (H, W, 1) or (H, W, 3)")
    if arr.size == 0:
        raise UserError(f"{source} holds an empty array of shape {arr.shape}; expected one image of at least 1x1 pixels")
    if arr.size > MAX_PIXELS:
        raise UserError(f"{source} holds {arr.size} pixels; images over {MAX_PIXELS} pixels are refused")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise UserError(f"{source} holds {arr.dtype} values; expected numeric pixel values")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise UserError(f"{source} contains NaN or infinite pixel values")
    return arr


def _check_npy_header(path: Path) -> None:
    """UserError when a ``.npy`` header claims more data than the file holds (NumPy would allocate it first)."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version not in ((1, 0), (2, 0)):
            return  # version 3 (utf-8 field names): np.load checks it
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(fh)
        data_bytes = os.fstat(fh.fileno()).st_size - fh.tell()
    claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if claimed > data_bytes:
        raise UserError(f"image {path}: its header claims shape {shape} ({claimed:,} bytes) but the file holds "
                        f"{data_bytes:,}; pass a whole .npy array")


def load_image(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read one image file as ``(28, 28)`` float32 0-255; also returns notes on conversions made."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    notes: list[str] = []
    if path.is_dir():
        raise UserError(f"image {path} is a folder; pass the image files in it (e.g. {path}/*.png)")
    if not path.is_file():
        raise UserError(f"image {path} does not exist; pass PNG/JPG files or .npy arrays")
    if path.suffix.lower() == ".npy":
        try:
            _check_npy_header(path)
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UserError(f"image {path} is not a readable .npy array ({exc})") from None
        gray = _to_gray_float(arr, str(path))
        if np.issubdtype(arr.dtype, np.floating) and gray.size and gray.max() <= 1.0:
            gray = gray * 255.0
            notes.append("values in 0-1 scaled to 0-255")
    else:
        try:
            with Image.open(path) as img:  # reads the header only
                width, height = img.size
                if width * height > MAX_PIXELS or width < 1 or height < 1:
                    raise UserError(f"image {path} says it is {width}x{height} pixels; images over "
                                    f"{MAX_PIXELS} pixels (or empty) are refused before decoding")
                img.load()
                if img.mode in ("I", "I;16", "F"):  # 16-bit / float grayscale: rescale to 0-255
                    gray = np.asarray(img, dtype=np.float32)
                    if gray.size and gray.max() > 255:
                        gray = gray * (255.0 / gray.max())
                else:
                    if img.mode not in ("L", "1"):
                        notes.append(f"{img.mode} converted to grayscale")
                    gray = np.asarray(img.convert("L"), dtype=np.float32)
        except Image.DecompressionBombError as exc:  # Pillow's own limit, checked from the header as it opens
            raise UserError(f"image {path} is too large ({exc}); images over {MAX_PIXELS} pixels are refused "
                            "before decoding") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise UserError(f"image {path} cannot be read as an image ({exc}); pass PNG/JPG files "
                            "or .npy arrays") from None
    if gray.shape != IMAGE_SIZE:
        notes.append(f"resized from {gray.shape[1]}x{gray.shape[0]} to {IMAGE_SIZE[1]}x{IMAGE_SIZE[0]}")
        gray = _resize(gray)
    gray = np.clip(gray, 0.0, 255.0)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > LIGHT_BORDER:
        gray = 255.0 - gray
        notes.append("light background: inverted to light-on-dark like Fashion-MNIST")
    return gray.astype(np.float32), notes


def _resize(gray: np.ndarray) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32))  # mode "F"
    return np.asarray(img.resize(IMAGE_SIZE[::-1], Image.Resampling.LANCZOS), dtype=np.float32)


def check_input_shape(model, model_path) -> None:
    """The model must take ``(N, 28, 28, 1)`` images, what predict feeds it."""
    expected = (None, *IMAGE_SIZE, 1)
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, list):
        shape = shape[0] if len(shape) == 1 else shape
    if not isinstance(shape, tuple) or len(shape) != 4 or any(
            want is not None and got not in (None, want) for got, want in zip(shape, expected)):
        raise UserError(f"model {model_path} takes input of shape {shape}; predict feeds 28x28 grayscale images "
                        "(None, 28, 28, 1): pass a model written by retrain-best")


def predict_images(model_path: str | Path, images: list[str], top: int = 3):
    """Top-``top`` predictions per image.

    Returns ``(results, probs)``: ``results`` is a list (one per image) of dicts with ``image``,
    ``notes`` and ``top`` (list of ``(class_name, class_index, probability)``, best first);
    ``probs`` is the ``(N, C)`` probability array.
    """
    if top < 1:
        raise UserError(f"--top must be at least 1, not {top}")
    if not images:
        raise UserError("name at least one image file to classify")
    loaded = [load_image(p) for p in images]  # read all first: a bad file fails before the model loads
    model = load_model(model_path)
    check_input_shape(model, model_path)
    batch = np.stack([g for g, _ in loaded])[..., None]
    how = tta.recorded(model_path)
    if how != "none":
        log.info("%s: test-time augmentation %r, as recorded in metrics.json beside the model", model_path, how)
    probs = tta.predict(model, batch, how)
    if probs.ndim != 2:
        raise UserError(f"model {model_path} outputs shape {probs.shape}; expected (N, classes) probabilities")
    names = read_class_names(model_path, probs.shape[1])
    log.debug("%s: %d images, %d classes (%s ...)", model_path, len(images), probs.shape[1], names[0])
    results = []
    for path, (_, notes), p in zip(images, loaded, probs):
        order = np.argsort(-p, kind="stable")[: min(top, p.size)]
        results.append({"image": str(path), "notes": notes,
                        "top": [(names[i], int(i), float(p[i])) for i in order]})
    return results, probs


def predict_command(model: str, images: list[str], top: int = 3) -> int:
    """CLI entry: print the top classes with probabilities for each image; returns 0."""
    results, _ = predict_images(model, images, top)
    for r in results:
        note = f"  ({'; '.join(r['notes'])})" if r["notes"] else ""
        print(f"{r['image']}{note}")
        for rank, (name, _, p) in enumerate(r["top"], start=1):
            print(f"  {rank}. {name:<14} {p:7.2%}")
    return 0
