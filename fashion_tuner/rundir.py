"""A run folder is untrusted input: the one set of checks every command applies to what it reads from one.

A run folder may have been sent by someone else, edited by hand or written by an old version, so
nothing read from it is trusted to name a place to write or a value to build a model with:

- a path part taken from a file's content (a trial id, a name in a marker's list, a backup folder,
  a TensorBoard session) must be a plain name (:func:`safe_component`) and every path built from it
  must stay inside its root once symlinks are resolved (:func:`inside`);
- a file written inside a run (a lock, a marker, a backup) is opened without following a symlink
  (:func:`open_nofollow`, :func:`refuse_symlink`), and a walk over a run never follows one (:func:`walk_files`);
- ``run.json``, ``trial.json`` and ``oracle.json`` are checked against declared JSON schemas
  (:data:`SCHEMAS`, validated with ``jsonschema``) before any value is used: :func:`schema_problem`
  says what is wrong in a few words, for the caller's one-line message.

No TensorFlow here; ``jsonschema`` is imported on first use.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from fashion_tuner.errors import UserError

# A name that may become one path part: letters, digits, '.', '_', '-', not starting with '.' or '-'.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

_NUM = {"type": "number"}
_INT = {"type": "integer"}
_STR = {"type": "string"}
_ID = {"type": "string", "pattern": SAFE_NAME.pattern}  # a trial id: it becomes a folder name
_OPT = lambda schema: {"anyOf": [schema, {"type": "null"}]}  # noqa: E731
_OBSERVATION = {"type": "object", "properties": {"value": {"anyOf": [{"type": "array", "items": {"type": "number"}},
                                                                     {"type": ["number", "null"]}]},
                                                 "step": _OPT(_INT)}}
_METRIC = {"type": "object", "properties": {"direction": _OPT(_STR),
                                            "observations": {"type": "array", "items": _OBSERVATION}}}
_SCALAR = {"type": ["null", "boolean", "number", "string"]}  # a hyperparameter value
_NUM_OR_NULL = {"type": ["number", "null"]}
_HP_CONFIG = {"type": "object", "required": ["class_name", "config"],
              "properties": {"class_name": _STR,
                             "config": {"type": "object", "required": ["name"],
                                        "properties": {"name": _STR, "default": _SCALAR, "value": _SCALAR,
                                                       "conditions": {"type": "array", "items": {"type": "object"}},
                                                       "values": {"type": "array", "items": _SCALAR},
                                                       "min_value": _NUM_OR_NULL, "max_value": _NUM_OR_NULL,
                                                       "step": _NUM_OR_NULL, "sampling": _OPT(_STR),
                                                       "ordered": {"type": "boolean"}}}}}
_HYPERPARAMETERS = {"type": "object", "properties": {
    "space": {"type": "array", "items": _HP_CONFIG},
    "values": {"type": "object", "additionalProperties": _SCALAR}}}
# The fields the commands read, with their types; other fields are free (Keras Tuner adds its own).
SCHEMAS = {
    "trial.json": {
        "type": "object", "required": ["trial_id", "hyperparameters"],
        "properties": {
            "trial_id": _ID,
            "hyperparameters": {**_HYPERPARAMETERS, "required": ["values"]},
            "metrics": {"type": "object", "properties": {
                "metrics": {"type": "object", "additionalProperties": _METRIC}}},
            "score": _OPT(_NUM), "best_step": _OPT(_INT), "status": _STR, "message": _OPT(_STR)}},
    "oracle.json": {
        "type": "object",
        "properties": {
            "hyperparameters": _HYPERPARAMETERS,
            "ongoing_trials": {"type": "object", "additionalProperties": _ID},
            "retry_queue": {"type": "array", "items": _ID},
            "start_order": {"type": "array", "items": _ID}, "end_order": {"type": "array", "items": _ID},
            "tried_so_far": {"type": "array"}}},
    "run.json": {
        "type": "object", "required": ["space"],
        "properties": {
            "name": _STR, "space": {"type": "string", "minLength": 1}, "tuner": _STR, "objective": _STR,
            "direction": {"enum": ["max", "min"]}, "status": _STR, "space_sha256": _OPT(_STR),
            "args": {"type": "object", "properties": {
                "seed": _OPT(_INT), "max_epochs": _OPT({"type": "integer", "minimum": 1}),
                "subset": _OPT({"type": "integer", "minimum": 1}), "batch_size": _OPT({"type": "integer", "minimum": 1}),
                "patience": _OPT({"type": "integer", "minimum": 0}), "max_trials": _OPT(_INT), "factor": _OPT(_INT),
                "executions_per_trial": _OPT({"type": "integer", "minimum": 1}), "data_dir": _OPT(_STR)}},
            "data": {"type": "object", "properties": {
                "dataset": _STR, "data_dir": _OPT(_STR), "skip_md5": {"type": "boolean"},
                "md5": _OPT({"type": "object", "additionalProperties": _STR})}},
            "split": {"type": "object", "properties": {"sha256": _OPT(_STR)}},
            "cv": _OPT({"type": "object"}), "class_weight": _OPT({"type": ["object", "array"]}),
            "best": _OPT({"type": "object"}), "changes": {"type": "array"}}},
}


# ----------------------------------------------------------------------------- paths


def is_safe_component(name) -> bool:
    """True when ``name`` may become one path part (no separator, no '..', no leading dot)."""
    return isinstance(name, str) and bool(SAFE_NAME.match(name)) and name not in (".", "..")


def safe_component(name, what: str) -> str:
    """``name`` if it is a plain name (:data:`SAFE_NAME`), else UserError naming ``what`` it was."""
    if not is_safe_component(name):
        shown = repr(name) if len(repr(name)) < 60 else repr(name)[:57] + "..."
        raise UserError(f"{what} {shown} is not a plain name (letters, digits, '.', '_', '-'): refused, "
                        "nothing written (was the folder edited or made by another program?)")
    return name


def is_inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """True when ``path``, symlinks resolved, is ``root`` or below it (``root`` resolved too)."""
    try:
        real_root = Path(root).resolve()
        real = Path(path).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return False
    return real == real_root or real_root in real.parents


def inside(root: str | os.PathLike, path: str | os.PathLike, what: str = "a path") -> Path:
    """``path`` unchanged when it stays inside ``root`` (:func:`is_inside`), else UserError."""
    if not is_inside(root, path):
        raise UserError(f"{what} {path} leads outside {root} (an absolute path, '..' or a symbolic link): "
                        "refused, nothing written or deleted there")
    return Path(path)


def refuse_symlink(path: str | os.PathLike, what: str = "") -> Path:
    """UserError when ``path`` itself is a symbolic link (it may lead anywhere); ``path`` unchanged else."""
    if Path(path).is_symlink():
        raise UserError(f"{what or path} is a symbolic link (to {os.readlink(path)}): refusing to write through it; "
                        "remove the link and rerun")
    return Path(path)


def open_nofollow(path: str | os.PathLike, flags: int, mode: int = 0o644, what: str = "") -> int:
    """``os.open`` with ``O_NOFOLLOW``: a symlink at ``path`` is refused (UserError), its target untouched."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or Path(path).is_symlink():
            refuse_symlink(path, what)
        raise


def walk_files(root: str | os.PathLike):
    """Every regular file below ``root`` (a Path each), never following a symlink (file or folder)."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                yield path


# ----------------------------------------------------------------------------- JSON content


def trial_problem(state, trial_dir: str | os.PathLike) -> str | None:
    """Why a parsed ``trial_dir/trial.json`` is unusable (its schema, or a trial id other than its folder's
    ``trial_<id>``: paths are built from the id), or None."""
    problem = schema_problem(state, "trial.json")
    if problem is None and Path(trial_dir).name != f"trial_{state['trial_id']}":
        problem = f"trial_id {state['trial_id']!r} is not its folder's ({Path(trial_dir).name})"
    return problem


def value_problem(values: dict, space: list) -> str | None:
    """Why a trial's hyperparameter ``values`` do not fit the declared ``space`` (Keras Tuner configs, as
    oracle.json's ``hyperparameters.space`` holds them), or None: each value of its declared type and in
    its declared range or choices; a name the space does not declare is refused (Hyperband's ``tuner/*``
    bookkeeping aside); a conditional one may be absent. A name declared twice: the last entry counts."""
    declared = {c["config"]["name"]: c for c in space}
    for name, value in values.items():
        if name.startswith("tuner/"):
            continue
        if name not in declared:
            return f"hyperparameter {name!r} is not in the declared space"
        kind, config = declared[name]["class_name"], declared[name]["config"]
        if not _fits(kind, config, value):
            shown = repr(value) if len(repr(value)) < 40 else repr(value)[:37] + "..."
            return f"hyperparameter {name} = {shown} is outside its declared {kind} {_declared(kind, config)}"
    return None


def _is_number(value) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fits(kind: str, config: dict, value) -> bool:
    if kind == "Boolean":
        return isinstance(value, bool)
    if kind == "Fixed":
        return value == config.get("value") and type(value) is type(config.get("value"))
    if kind == "Choice":
        return any(value == v and type(value) is type(v) for v in config.get("values") or [])
    if kind in ("Int", "Float"):
        if not _is_number(value) or (kind == "Int" and not isinstance(value, int)):
            return False
        low, high = config.get("min_value"), config.get("max_value")
        return (not _is_number(low) or value >= low) and (not _is_number(high) or value <= high)
    return True  # a kind this version does not know: Keras Tuner checks it


def _declared(kind: str, config: dict) -> str:
    if kind == "Choice":
        return "choices " + str(config.get("values"))[:60]
    if kind in ("Int", "Float"):
        return f"range [{config.get('min_value')}, {config.get('max_value')}]"
    return f"value {config.get('value')!r}" if kind == "Fixed" else "type"


def schema_problem(payload, kind: str) -> str | None:
    """Why ``payload`` (parsed ``kind``: "run.json", "trial.json", "oracle.json") breaks its schema, in a few
    words naming the field, or None when it fits."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMAS[kind])
    error = jsonschema.exceptions.best_match(validator.iter_errors(payload))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    message = error.message if len(error.message) < 120 else error.message[:117] + "..."
    return f"{where}: {message}"
