"""Commands we print for the user to run next, spelled so they run as printed from the repository root.

``python main.py`` is wrong when the requirements live in the project's virtual environment and
``python`` is the system one: every hint names the interpreter that is running this command
(``.venv/bin/python`` after ``scripts/setup.sh``), relative to the repository root when it is inside it.
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


def command(*args: str) -> str:
    """A full command line, quoted for a POSIX shell."""
    return f"{main_py()} {shlex.join([str(a) for a in args])}".rstrip()


def missing_requirement(exc: BaseException) -> str | None:
    """The one-line message for an ImportError of a requirement (this Python is not set up), else None."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if not isinstance(exc, ImportError) or name not in REQUIREMENTS:
        return None
    return (f"this Python ({sys.executable}) does not have the requirements (no module {name!r}): run `{SETUP}` "
            "once from the repository root, then use `.venv/bin/python main.py ...`")
