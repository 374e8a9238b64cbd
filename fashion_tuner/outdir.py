"""One rule for the folders a command writes its output into (``review --out``, ``compare --out``, the review
inside a run): write only into a new or empty folder, or one this tool wrote; overwrite and delete only the
files it wrote there.

The folder's marker ``.fashion_tuner_output.json`` lists the files (plain names directly in the folder) that
the last command wrote. :func:`claim` refuses a folder holding anything else, before anything is written,
and lists the names about to be written (a killed command leaves a folder the same command may reuse);
:func:`finish` lists exactly the files written. ``review --tensorboard`` keeps the same rule with its own
marker (:mod:`fashion_tuner.review.tensorboard`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fashion_tuner import fsio, rundir
from fashion_tuner.errors import UserError

MARKER = ".fashion_tuner_output.json"


def listed(out: Path) -> set[str]:
    """The plain names the marker of ``out`` lists (an entry that is not a plain name is ignored)."""
    try:
        marker = json.loads((Path(out) / MARKER).read_text())
    except (OSError, ValueError):
        return set()
    files = marker.get("files") if isinstance(marker, dict) else None
    return {f for f in files if rundir.is_safe_component(f)} if isinstance(files, list) else set()


def claim(out: str | os.PathLike, flag: str, names: list[str], legacy: tuple[str, ...] = ()) -> Path:
    """Make ``out`` ready for ``names``: UserError (nothing written) when it is a file, a symlink is among
    ``names``, or it holds an entry its marker does not list. ``legacy``: names an older version wrote
    without a marker; a folder holding only those (the first of them included) counts as ours."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out} is a file; pass a new or empty folder (or one this command wrote)")
    entries = {p.name for p in out.iterdir()} - {MARKER} if out.is_dir() else set()
    ours = listed(out) if (out / MARKER).is_file() else (
        set(legacy) if legacy and legacy[0] in entries and entries <= set(legacy) else set())
    foreign = sorted(entries - ours)
    if foreign:
        shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise UserError(f"{flag} {out} holds files this tool did not write ({shown}); pass a new or empty folder: "
                        "nothing in it is overwritten or deleted")
    for name in names:
        rundir.refuse_symlink(out / name)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {flag} {out} ({exc.strerror}); pass another folder") from None
    _write(out, sorted((ours & entries) | set(names)))
    return out


def remove_listed(out: Path, names: list[str]) -> None:
    """Delete those of ``names`` that the marker lists (an earlier run's file this run does not rewrite)."""
    for name in set(names) & listed(out):
        (Path(out) / name).unlink(missing_ok=True)


def finish(out: Path, written: list[Path]) -> None:
    """The marker lists exactly the files written (and still there)."""
    _write(Path(out), sorted(p.name for p in written if p.exists()))


def _write(out: Path, names: list[str]) -> None:
    fsio.atomic_write_text(out / MARKER, json.dumps({"tool": "fashion_tuner", "files": names}, indent=1) + "\n")
