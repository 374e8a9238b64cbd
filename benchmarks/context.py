"""What every benchmark step shares: the run context (suite, folders, provenance stamp, subprocess
runner), the failure type, and the results file (``benchmarks/results.json``) on disk."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from benchmarks import common
from benchmarks.common import REPO, run_command
from benchmarks.suites import ACCURACY, STEP_TIMEOUT

SCHEMA = 1
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results.json"
DEFAULT_WORK = REPO / "results" / "benchmarks"

log = logging.getLogger(__name__)


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StepFailed(Exception):
    """A benchmark step whose command failed; ``commands``: what ran up to and including the failure."""

    def __init__(self, message: str, commands: list[str]):
        super().__init__(message)
        self.commands = commands


class Context:
    """What every benchmark needs: suite, folders, data arguments, seeds and the provenance stamp."""

    def __init__(self, suite: str, work_dir: Path, data_dir: str | None, skip_md5: bool, out: Path,
                 seeds: tuple[int, ...] | None = None, approaches: tuple[str, ...] | None = None):
        self.suite, self.work, self.out = suite, work_dir, out
        self.data_dir, self.skip_md5 = data_dir, skip_md5
        self.seeds = tuple(seeds) if seeds else None  # None: the default seed, no --seeds on the rerun line
        self.approaches = tuple(approaches) if approaches else None  # peers_time: None runs every approach
        self.timeout = STEP_TIMEOUT[suite]
        self.logs = work_dir / "logs"
        self.stamp = {"machine": common.machine(), "versions": common.versions(),
                      "data_md5": common.data_md5(data_dir), "data_dir": data_dir}
        self.searches: dict[str, dict] = {}  # searches done in this invocation, by run name

    def data_args(self) -> list[str]:
        return self.data_dir_args() + (["--skip-md5"] if self.skip_md5 else [])

    def data_dir_args(self) -> list[str]:
        return ["--data-dir", str(self.data_dir)] if self.data_dir else []

    def rel(self, path: Path) -> str:
        """A path as written in commands: relative to the repository when inside it."""
        try:
            return str(Path(path).resolve().relative_to(REPO))
        except ValueError:
            return str(path)

    def run(self, argv: list[str], label: str, env: dict | None = None) -> dict:
        """Run one command (``common.run_command``) with this suite's timeout, logged to ``logs/<label>.log``."""
        log.info("%s: %s%s", label, "".join(f"{k}={v} " for k, v in (env or {}).items()), common.shown(argv))
        result = run_command(argv, timeout=self.timeout, log=self.logs / f"{label}.log", env=env)
        log.info("%s: exit %s after %.1f s", label, result["rc"], result["wall_s"])
        return result

    def rerun(self, name: str) -> str:
        """The command that reruns benchmark ``name`` as this invocation ran it."""
        seeds = f" --seeds {' '.join(map(str, self.seeds))}" if self.seeds else ""
        return f"python -m benchmarks.run --suite {self.suite} --only {name}{seeds}"

    def entry(self, name: str, commands: list[str], **fields) -> dict:
        """A figure as stored: suite, date, status, commands, rerun line, provenance, then ``fields``."""
        return {"suite": self.suite, "date": now(), "status": "ok", "commands": commands, "rerun": self.rerun(name),
                **self.stamp, **fields}


# ----------------------------------------------------------------------------- the results file

def load_results(path: Path) -> dict:
    """The results file at ``path``, or a new empty one (missing, not JSON, or another schema)."""
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and data.get("schema") == SCHEMA:
                data.setdefault("figures", {})
                return data
        except json.JSONDecodeError:
            log.warning("%s is not valid JSON; starting a new results file", path)
    return {"schema": SCHEMA, "figures": {}}


def store(results: dict, name: str, entry: dict) -> None:
    """Put ``entry`` in ``results``: accuracy rows under ``figures.accuracy.runs.<name>``, the rest under ``figures.<name>``."""
    if name in ACCURACY:
        results["figures"].setdefault("accuracy", {"runs": {}})["runs"][name] = entry
    else:
        results["figures"][name] = entry


def stored(results: dict, name: str) -> dict | None:
    """The entry :func:`store` put under ``name``, or None."""
    figures = results.get("figures", {})
    if name in ACCURACY:
        return figures.get("accuracy", {}).get("runs", {}).get(name)
    return figures.get(name)


def write_results(path: Path, results: dict) -> None:
    """Write the results file atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def plot_path(out: Path) -> Path:
    """Where the anytime plot goes: ``anytime.png`` beside ``results.json``, else ``<out>-anytime.png``."""
    return out.with_name("anytime.png") if out.name == "results.json" else out.with_name(f"{out.stem}-anytime.png")


def table_path(out: Path) -> Path:
    """Where the markdown table goes: ``RESULTS.md`` beside ``results.json``, else ``<out>.md``."""
    return out.with_name("RESULTS.md") if out.name == "results.json" else out.with_suffix(".md")
