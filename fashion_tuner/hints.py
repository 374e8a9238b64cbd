"""Commands we print for the user to run next, spelled so they run as printed from the repository root.

``python main.py`` is wrong when the requirements live in the project's virtual environment and
``python`` is the system one: every hint names the interpreter that is running this command
(``.venv/bin/python`` after ``scripts/setup.sh``), relative to the repository root when it is inside it.
Tools the requirements install (``tensorboard``, ``optuna-dashboard``) are named the same way: the
script beside that interpreter (``.venv/bin/tensorboard``) unless the bare name on PATH is that script.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SETUP = "bash scripts/setup.sh"
# Modules a command needs that a bare Python lacks: importing one of them failing means "not set up".
REQUIREMENTS = ("tensorflow", "keras", "keras_tuner", "numpy", "sklearn", "pandas", "matplotlib", "seaborn", "PIL",
                "tensorboard", "grpc", "google")


def python() -> str:
    """The running interpreter as the user should type it from the repository root."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(REPO_ROOT))  # .venv/bin/python (not resolved: a venv's python is a link)
    except ValueError:
        pass
    if shutil.which("python") == sys.executable:
        return "python"
    return shlex.quote(sys.executable)


def main_py() -> str:
    """``<python> main.py``: the prefix of every printed command."""
    return f"{python()} main.py"


def tool(name: str) -> str:
    """How to type the console script ``name`` installed with the requirements (``.venv/bin/tensorboard``,
    or ``tensorboard`` when PATH finds that one); the bare name when this interpreter has no such script."""
    beside = Path(sys.executable).parent / name
    if not beside.is_file():
        return name
    found = shutil.which(name)
    if found and Path(found).resolve() == beside.resolve():
        return name
    try:
        return str(beside.relative_to(REPO_ROOT))
    except ValueError:
        return shlex.quote(str(beside))


def tool_command(name: str, *args: str) -> str:
    """A tool's full command line (:func:`tool`), quoted for a POSIX shell."""
    return f"{tool(name)} {shlex.join([str(a) for a in args])}".rstrip()


def space_args(space: str | None) -> list[str]:
    """``["--space", PATH]`` when ``space`` is a space file (retrain-best needs it named again: code
    named in a run folder never runs on its own), relative to the current folder when inside it; else []."""
    from fashion_tuner.spaces import is_space_file

    if not space or not is_space_file(space):
        return []
    path = Path(space)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            pass
    return ["--space", str(path)]


def command(*args: str) -> str:
    """A full command line, quoted for a POSIX shell."""
    return f"{main_py()} {shlex.join([str(a) for a in args])}".rstrip()


def set_up_first(what: str) -> str:
    """The message for a Python that lacks ``what`` when the project's own environment is the answer:
    ``what``, then run scripts/setup.sh and use .venv/bin/python (as for any missing requirement)."""
    return (f"this Python ({sys.executable}) {what}: run `{SETUP}` once from the repository root, "
            "then use `.venv/bin/python main.py ...`")


def in_project_venv() -> bool:
    """True when this interpreter is the repository's ``.venv`` (the one scripts/setup.sh makes)."""
    return Path(sys.prefix).resolve() == (REPO_ROOT / ".venv").resolve()


def missing_requirement(exc: BaseException) -> str | None:
    """The one-line message for an ImportError of a requirement (this Python is not set up), else None."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if not isinstance(exc, ImportError) or name not in REQUIREMENTS:
        return None
    return set_up_first(f"does not have the requirements (no module {name!r})")
