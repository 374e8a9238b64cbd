"""Distributed search: one chief serving the Keras Tuner oracle, workers running trials.

``search --role chief --oracle-address HOST:PORT`` makes the split, writes ``run.json`` and
serves the oracle over gRPC (Keras Tuner's protocol, no authentication: use it on a trusted
network only); ``search --role worker --oracle-address HOST:PORT --worker-id ID`` (same search
arguments, same results directory, e.g. a shared file system) waits for the chief's
``run.json`` and ``split.npz``, then asks the chief for trials and writes them into the run
directory. The chief returns when the budget is spent and the workers have finished, then
writes the summary and ``best_hyperparameters.json``.

Keras Tuner reads three environment variables; the flags are mapped onto them, and setting
them by hand (without ``--role``) keeps working:

- ``KERASTUNER_TUNER_ID``: "chief" for the chief, "tuner<ID>" for a worker;
- ``KERASTUNER_ORACLE_IP`` / ``KERASTUNER_ORACLE_PORT``: where the chief listens.

A worker that dies keeps its trial reserved under its id: rerunning it with the same
``--worker-id`` takes that trial back and runs it from the start.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from fashion_tuner.errors import UserError

ROLES = ("chief", "worker")
ENV_ID, ENV_IP, ENV_PORT = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"
CHIEF_ID = "chief"
WORKER_PREFIX = "tuner"
# How long a worker waits for the chief's run.json/split.npz (seconds; env overrides).
CHIEF_WAIT_S = float(os.environ.get("FASHION_TUNER_CHIEF_WAIT_S", 600))
POLL_S = 0.5


@dataclass(frozen=True)
class Role:
    """This process's part in a distributed search."""

    role: str  # "chief" | "worker"
    host: str
    port: int
    tuner_id: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_chief(self) -> bool:
        return self.role == "chief"

    def environment(self) -> dict[str, str]:
        return {ENV_ID: self.tuner_id, ENV_IP: self.host, ENV_PORT: str(self.port)}

    def as_dict(self) -> dict:
        return {"role": self.role, "oracle_address": self.address, "tuner_id": self.tuner_id}


def parse_address(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; raises UserError when it is not one."""
    host, sep, port = (text or "").strip().rpartition(":")
    host = host.strip("[]")  # [::1]:8000
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--oracle-address {text!r}: expected HOST:PORT, e.g. 10.0.0.5:8000 or 127.0.0.1:8000")
    return host, int(port)


def resolve_role(role: str | None, oracle_address: str | None, worker_id: str | None,
                 environ: dict | None = None) -> Role | None:
    """The role from the flags, else from the KERASTUNER_* environment, else None (one process)."""
    environ = os.environ if environ is None else environ
    if role is None:
        if oracle_address or worker_id:
            raise UserError("--oracle-address and --worker-id need --role chief or --role worker")
        if ENV_IP not in environ:
            return None
        tuner_id, port = environ.get(ENV_ID), environ.get(ENV_PORT)
        if not tuner_id or not port:
            raise UserError(f"{ENV_IP} is set but {ENV_PORT if not port else ENV_ID} is not; set all three "
                            f"KERASTUNER_* variables or use --role/--oracle-address instead")
        host, port_n = parse_address(f"{environ[ENV_IP]}:{port}")
        return Role("chief" if CHIEF_ID in tuner_id else "worker", host, port_n, tuner_id)
    if role not in ROLES:
        raise UserError(f"--role {role!r}: choose chief or worker")
    if not oracle_address:
        raise UserError(f"--role {role} needs --oracle-address HOST:PORT (where the chief serves the oracle)")
    host, port = parse_address(oracle_address)
    if role == "chief":
        if worker_id:
            raise UserError("--worker-id is for --role worker; the chief's id is always 'chief'")
        return Role("chief", host, port, CHIEF_ID)
    worker_id = str(worker_id if worker_id is not None else os.getpid())
    if not worker_id.replace("-", "").replace("_", "").isalnum():
        raise UserError(f"--worker-id {worker_id!r}: use letters, digits, '-' or '_'")
    if CHIEF_ID in worker_id.lower():
        raise UserError(f"--worker-id {worker_id!r} must not contain 'chief' (Keras Tuner would take it for the chief)")
    return Role("worker", host, port, f"{WORKER_PREFIX}{worker_id}")


@contextlib.contextmanager
def role_environment(role: Role | None):
    """Set the KERASTUNER_* variables for ``role`` (Keras Tuner reads them when the tuner is
    built and searches), restoring the previous environment afterwards."""
    if role is None:
        yield
        return
    from fashion_tuner.kt_compat import quiet_condition_protos

    quiet_condition_protos()
    saved = {k: os.environ.get(k) for k in (ENV_ID, ENV_IP, ENV_PORT)}
    os.environ.update(role.environment())
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_port_free(role: Role) -> None:
    """The chief must be able to listen on its address: fail early instead of serving nothing."""
    family = socket.AF_INET6 if ":" in role.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((role.host, role.port))
        except OSError as exc:
            raise UserError(f"the chief cannot listen on {role.address} ({exc.strerror or exc}); pick another "
                            "--oracle-address port, or a host address of this machine (0.0.0.0 for all)") from None


def wait_for_chief(run_dir: Path, role: Role, timeout_s: float = CHIEF_WAIT_S, poll_s: float = POLL_S) -> dict:
    """Block until the chief of ``role.address`` has written ``run.json`` (status running) and
    ``split.npz`` in ``run_dir``; return run.json. Raises UserError after ``timeout_s``."""
    from fashion_tuner import runs

    deadline = time.monotonic() + timeout_s
    seen = None
    while True:
        manifest = _read_json(run_dir / runs.RUN_JSON)
        if manifest is not None:
            seen = manifest
            dist = manifest.get("distributed") or {}
            if (manifest.get("status") == "running" and (run_dir / runs.SPLIT_FILE).is_file()
                    and dist.get("oracle_address") in (None, role.address)):
                return manifest
        if time.monotonic() > deadline:
            state = (f"its run.json says status {seen.get('status')!r}" if seen else "there is no run.json yet")
            raise UserError(f"no running chief for {run_dir} after {timeout_s:g} s ({state}); start "
                            f"`search --role chief --oracle-address {role.address}` with the same arguments "
                            "and results directory first")
        time.sleep(poll_s)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
