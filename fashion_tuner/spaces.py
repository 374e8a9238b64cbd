"""Search-space registry and the data context model builders read.

A search space is a Python module exposing ``build_model(hp) -> keras.Model`` (compiled,
integer labels, accuracy metric). It may also expose ``fit(hp, model, x, y, **kwargs)``
to train differently (Keras Tuner's ``HyperModel.fit`` convention: return the History).
If its hyperparameters include ``batch_size``, that value is used for the fit.
Under a distribution strategy that value is per replica: ``fit`` receives the global batch
(batch_size x replicas). A space's own ``fit`` always receives NumPy arrays, never tf.data.

Built-in spaces live in ``search_spaces/<name>.py``; ``--space path/to/file.py`` imports
any other file, which is running its code: only use space files you trust.

Builders that need facts about the data (input shape, normalisation statistics, the
training images for unsupervised pretraining, a cache folder) call :func:`data_context`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from fashion_tuner.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
SPACES_DIR = REPO_ROOT / "search_spaces"
DEFAULTS_NAME = "SEARCH_DEFAULTS"  # a built-in space's default budget, a literal dict in its own module


def read_builtin_spaces(directory: Path = SPACES_DIR) -> dict[str, dict]:
    """``{name: default budget}`` of every ``<directory>/<name>.py`` that defines ``build_model``, read
    from the source without importing it (so the CLI validates before Keras loads): adding a built-in
    space is adding its file. The budget is the module's literal ``SEARCH_DEFAULTS`` dict (``{}`` when
    absent): ``max_epochs`` and ``subset`` of the search (--max-epochs, --subset), ``trial_timeout``,
    and ``retrain``, how retrain-best trains the winner of such a default search (--epochs, --train-on,
    patience)."""
    import ast

    found = {}
    for path in sorted(Path(directory).glob("*.py")):
        if path.stem.startswith("_"):
            continue
        tree = ast.parse(path.read_text())
        if not any(isinstance(n, ast.FunctionDef) and n.name == "build_model" for n in tree.body):
            continue
        defaults = {}
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            if any(isinstance(t, ast.Name) and t.id == DEFAULTS_NAME for t in targets) and node.value is not None:
                defaults = ast.literal_eval(node.value)
        found[path.stem] = defaults
    return found


SPACE_DEFAULTS: dict[str, dict] = read_builtin_spaces()
BUILTIN_SPACES = tuple(SPACE_DEFAULTS)  # the file names, sorted
DEFAULT_MAX_EPOCHS = 10  # spaces without an entry (user files)

# Fashion-MNIST training-set statistics in pixel units (0-255): 0.2860 and 0.3530 of 255.
FASHION_MEAN = 72.94
FASHION_STD = 90.02


@dataclass
class DataContext:
    """What a model builder may need to know about the data it will be fitted on."""

    image_shape: tuple[int, int, int] = (28, 28, 1)
    num_classes: int = 10
    mean: float = FASHION_MEAN  # of training pixels, 0-255 units
    std: float = FASHION_STD
    x_train: np.ndarray | None = None  # (N, 28, 28, 1) float32, 0-255: for unsupervised pretraining
    data_md5: str = ""  # one digest of the data files, to key caches
    cache_dir: Path = REPO_ROOT / "results" / "pretrained"
    weights: str | None = None  # transfer backbones: "imagenet", a weights file path, or "none"
    seed: int = 42
    extra: dict = field(default_factory=dict)


    @classmethod
    def from_data(cls, dataset, x_train: np.ndarray, results_dir: str | Path, seed: int,
                  weights: str | None = None, max_epochs: int | None = None) -> "DataContext":
        """The one constructor from a loaded data set (``fashion_tuner.data.Dataset``) and the images a
        model will train on, ``x_train`` ``(N, 28, 28, 1)`` float32 0-255; ``max_epochs``: for
        schedules laid out over the length of training (cosine decay steps)."""
        import hashlib

        digest = hashlib.md5("".join(sorted(dataset.md5.values())).encode()).hexdigest() if dataset.md5 else ""
        return cls(image_shape=tuple(x_train.shape[1:]), num_classes=len(dataset.class_names),
                   mean=float(x_train.mean()), std=float(x_train.std()), x_train=x_train, data_md5=digest,
                   cache_dir=Path(results_dir) / "pretrained", weights=weights, seed=seed,
                   extra={"train_size": int(len(x_train)), "max_epochs": int(max_epochs or 0) or None})


_CONTEXT = DataContext()


def set_data_context(ctx: DataContext) -> None:
    """For one-process scripts (benchmarks) only: the commands use :func:`using_data_context`."""
    global _CONTEXT
    _CONTEXT = ctx


@contextlib.contextmanager
def using_data_context(ctx: DataContext):
    """Make ``ctx`` what :func:`data_context` returns inside the block (a search, a retrain), then
    restore the previous one. How the commands set it."""
    global _CONTEXT
    saved, _CONTEXT = _CONTEXT, ctx
    try:
        yield ctx
    finally:
        _CONTEXT = saved


def data_context() -> DataContext:
    """The context of the current search or retrain (Fashion-MNIST defaults when none is set)."""
    return _CONTEXT


def is_space_file(space: str) -> bool:
    return space.endswith(".py") or "/" in space or "\\" in space


def check_space_name(space: str) -> None:
    """Cheap validation before TensorFlow is imported."""
    if is_space_file(space):
        path = Path(space)
        if not path.is_file():
            raise UserError(f"space file {space} does not exist; pass one of {', '.join(BUILTIN_SPACES)} "
                            "or the path of a .py file that defines build_model(hp)")
    elif space not in BUILTIN_SPACES:
        raise UserError(f"unknown space {space!r}; choose one of {', '.join(BUILTIN_SPACES)} "
                        "or pass the path of a .py file that defines build_model(hp)")


def load_space(space: str) -> ModuleType:
    """Import a built-in space by name or a user space file by path; check it has build_model."""
    check_space_name(space)
    if is_space_file(space):
        path = Path(space).resolve()
        mod_name = f"fashion_tuner_user_space_{path.stem}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise UserError(f"space file {space} failed to import: {type(exc).__name__}: {exc}") from exc
    else:
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        module = importlib.import_module(f"search_spaces.{space}")
    if not callable(getattr(module, "build_model", None)):
        raise UserError(f"space {space} defines no build_model(hp) function; add one that returns a compiled "
                        "keras.Model (see README, 'Your own search space')")
    return module


def space_digest(space: str) -> str | None:
    """SHA-256 of a user space file (None for a built-in space), recorded so a later command can tell
    whether the file it is given is the one the run was searched with."""
    if not is_space_file(space) or not Path(space).is_file():
        return None
    import hashlib

    return hashlib.sha256(Path(space).read_bytes()).hexdigest()


def space_reference(space: str) -> str:
    """What run.json records: a built-in name, or the absolute path of a user space file."""
    return str(Path(space).resolve()) if is_space_file(space) else space


def hp_value(hp, name: str, default=None):
    """The value of a hyperparameter, or ``default`` when it does not exist or is inactive."""
    return hp.get(name) if name in hp else default
