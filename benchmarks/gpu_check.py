"""The GPU check: what fashion_tuner does on a CUDA GPU with the JAX backend, in one short run.

Run through ``bash scripts/gpu_check.sh`` (which installs the carried wheels and sets
``KERAS_BACKEND=jax``); this module assumes Keras and Keras Tuner import. Steps, each a real CLI
command in a subprocess, within ``--budget-s`` seconds in all (default 300; with start-up and the wheels under 6 minutes):

1. a CUDA device must be visible to JAX, else one line on stderr and exit 3;
2. a tiny mlp search (2 random trials, 2 epochs, 5,000 images) + ``retrain-best``;
3. the policy seen inside a trial's build under ``--mixed-precision`` (float16; bfloat16 in a
   ``--allow-cpu`` dry run) against run.json's;
4. seconds per epoch of the default CNN (10,000 images) in float32 and mixed_float16;
5. a chief + worker pair (loopback gRPC) running 2 trials;
6. as much of the default ``search --space cnn`` + ``retrain-best`` as the time left allows.

The ``gpu`` entry goes into ``--out`` (benchmarks/results.json), and, when ``$OUT`` is set (the
device tool's folder that comes back), a copy of it and of every step's log go there too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import backend_epoch, common  # noqa: E402

BUDGET_S = 300
EXIT_NO_GPU = 3
POLICY_SPACE = REPO / "tests" / "spaces" / "policy_space.py"
GRACE_S = 30  # after SIGINT, how long a search may take to write its summary
MIN_CNN_S = 60  # skip the cnn step with less time left than this
EPOCH_IMAGES, EPOCH_EPOCHS = backend_epoch.IMAGES, backend_epoch.EPOCHS  # the seconds-per-epoch workload


def cuda_devices() -> tuple[list[str], str]:
    """The CUDA devices JAX sees, and a description of every device (for the error line)."""
    import jax

    devices = jax.devices()
    gpus = [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip() for d in devices
            if d.platform in ("gpu", "cuda")]
    return gpus, f"{', '.join(f'{d.platform}:{d.id}' for d in devices)}; jax {jax.__version__}"


class Check:
    """Runs the steps against a deadline and collects their results."""

    def __init__(self, budget_s: float, work: Path, logs: Path, data_dir: str | None):
        self.deadline = time.monotonic() + budget_s
        self.work = work
        self.logs = logs
        self.data = ["--data-dir", data_dir] if data_dir else []
        self.steps: dict[str, dict] = {}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def cli(self, label: str, *args: str, timeout: float | None = None, env: dict | None = None) -> dict:
        """``python main.py ARGS`` (SIGINT at the timeout, so a search marks itself interrupted)."""
        timeout = max(5.0, min(timeout or self.left(), self.left()))
        argv = [sys.executable, str(REPO / "main.py"), *args]
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=full_env, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
            timed_out = True
        wall = time.monotonic() - started
        command = common.shown(["python", "main.py", *args])
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.logs / f"{label}.log").write_text(f"$ {command}\n# rc {proc.returncode}, {wall:.1f} s\n"
                                                f"--- stdout\n{out}\n--- stderr\n{err}\n")
        return {"rc": proc.returncode, "wall_s": round(wall, 1), "timed_out": timed_out, "command": command,
                "stdout": out, "stderr": err}

    def record(self, name: str, **fields) -> dict:
        self.steps[name] = fields
        state = fields.get("status")
        shown = {k: v for k, v in fields.items() if k not in ("commands", "status")}
        print(f"gpu_check: {name}: {state} {json.dumps(shown, default=str)[:400]}", flush=True)
        return fields


def _error(result: dict) -> str:
    lines = [ln for ln in (result["stderr"] or result["stdout"] or "").strip().splitlines() if ln.strip()]
    return ("timed out; " if result["timed_out"] else "") + (lines[-1][:300] if lines else f"rc {result['rc']}")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def step_mlp(c: Check) -> None:
    res = c.work / "results"
    s = c.cli("mlp_search", "search", "--space", "mlp", "--tuner", "random", "--max-trials", "2", "--max-epochs",
              "2", "--subset", "5000", "--results-dir", str(res), "--name", "mlp", "--overwrite",
              "--trials-per-process", "0", *c.data, timeout=120)
    if s["rc"] != 0:
        c.record("mlp", status="failed", error=_error(s), commands=[s["command"]])
        return
    r = c.cli("mlp_retrain", "retrain-best", str(res / "mlp"), "--epochs", "2", timeout=120)
    run = _read_json(res / "mlp" / "run.json")
    metrics = _read_json(res / "mlp" / "report" / "metrics.json")
    c.record("mlp", status="ok" if r["rc"] == 0 else "failed", search_s=s["wall_s"], retrain_s=r["wall_s"],
             best_val_accuracy=(run.get("best") or {}).get("score"), test_accuracy=metrics.get("test_accuracy"),
             devices=run.get("devices"), error=None if r["rc"] == 0 else _error(r),
             commands=[s["command"], r["command"]])


def step_policy(c: Check, precision: str = "float16") -> None:
    res = c.work / "results"
    seen = c.work / "policies.txt"
    seen.unlink(missing_ok=True)
    s = c.cli("policy_search", "search", "--space", str(POLICY_SPACE), "--tuner", "random", "--max-trials", "2",
              "--max-epochs", "1", "--subset", "2000", "--mixed-precision", precision, "--results-dir", str(res), "--name",
              "policy", "--overwrite", "--trials-per-process", "0", *c.data, timeout=90,
              env={"POLICY_OUT": str(seen)})
    run = _read_json(res / "policy" / "run.json")
    builds = seen.read_text().split("\n")[:-1] if seen.is_file() else []
    reported = (run.get("devices") or {}).get("policy")
    ok = s["rc"] == 0 and reported == f"mixed_{precision}" and bool(builds) and \
        all(b.split()[0] == reported for b in builds)
    c.record("policy", status="ok" if ok else "failed", reported=reported, seen_in_builds=builds,
             error=None if s["rc"] == 0 else _error(s), commands=[s["command"]])


def step_epochs(c: Check, data_dir: str | None) -> None:
    out = []
    for policy in ("float32", "mixed_float16"):
        timeout = max(10.0, min(150.0, c.left()))
        m = backend_epoch.run_one("jax", policy, EPOCH_IMAGES, EPOCH_EPOCHS, data_dir, timeout)
        out.append(m)
    ok = all(m["status"] == "ok" for m in out)
    c.record("cnn_epoch", status="ok" if ok else "failed", measurements=out,
             commands=[f"python -m benchmarks.backend_epoch --one jax {p} --images {EPOCH_IMAGES} "
                       f"--epochs {EPOCH_EPOCHS}" for p in ("float32", "mixed_float16")])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def step_chief_worker(c: Check) -> None:
    res = c.work / "results"
    address = f"127.0.0.1:{_free_port()}"
    common_args = ["search", "--space", "mlp", "--tuner", "random", "--max-trials", "2", "--max-epochs", "1",
                   "--subset", "2000", "--results-dir", str(res), "--name", "pair", *c.data]
    shutil.rmtree(res / "pair", ignore_errors=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    timeout = max(10.0, min(120.0, c.left()))
    chief = subprocess.Popen([sys.executable, str(REPO / "main.py"), *common_args, "--role", "chief",
                              "--oracle-address", address], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    w = c.cli("pair_worker", *common_args, "--role", "worker", "--oracle-address", address, "--worker-id", "1",
              timeout=timeout)
    try:
        chief_out, _ = chief.communicate(timeout=max(5.0, min(60.0, c.left())))
    except subprocess.TimeoutExpired:
        os.killpg(chief.pid, signal.SIGKILL)
        chief_out, _ = chief.communicate()
    (c.logs / "pair_chief.log").write_text(chief_out or "")
    run = _read_json(res / "pair" / "run.json")
    ok = chief.returncode == 0 and w["rc"] == 0 and (run.get("trials") or {}).get("COMPLETED") == 2
    c.record("chief_worker", status="ok" if ok else "failed", chief_rc=chief.returncode, worker_rc=w["rc"],
             trials=run.get("trials"), best=run.get("best"), wall_s=w["wall_s"],
             error=None if ok else (_error(w) if w["rc"] else (chief_out or "").strip().splitlines()[-1:]),
             commands=[common.shown(["python", "main.py", *common_args, "--role", "chief", "--oracle-address",
                                     address]), w["command"]])


def step_cnn(c: Check) -> None:
    if c.left() < MIN_CNN_S:
        c.record("cnn_default", status="skipped", error=f"only {c.left():.0f} s left")
        return
    res = c.work / "results"
    s = c.cli("cnn_search", "search", "--space", "cnn", "--results-dir", str(res), "--name", "cnn", "--overwrite",
              "--trials-per-process", "0", *c.data, timeout=c.left() - 40)
    run = _read_json(res / "cnn" / "run.json")
    fields = dict(search_s=s["wall_s"], search_finished=s["rc"] == 0, trials=run.get("trials"),
                  best=run.get("best"), commands=[s["command"]])
    if s["rc"] == 0 and c.left() > 30:
        r = c.cli("cnn_retrain", "retrain-best", str(res / "cnn"), timeout=c.left() - 5)
        metrics = _read_json(res / "cnn" / "report" / "metrics.json")
        fields.update(retrain_s=r["wall_s"], retrain_finished=r["rc"] == 0, test_accuracy=metrics.get("test_accuracy"),
                      epochs_trained=metrics.get("epochs_trained"))
        fields["commands"].append(r["command"])
    done = (run.get("trials") or {}).get("COMPLETED", 0)
    c.record("cnn_default", status="ok" if fields.get("retrain_finished") else ("partial" if done else "failed"),
             **fields, error=None if s["rc"] == 0 else _error(s))


def _relative_dir(md5: dict) -> dict:
    """The data folder relative to the repository (the GPU machine's absolute paths mean nothing here)."""
    if md5.get("dir") and Path(md5["dir"]).is_relative_to(REPO):
        md5["dir"] = os.path.relpath(md5["dir"], REPO)
    return md5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GPU check on the JAX backend (see scripts/gpu_check.sh)")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S, help="seconds for all steps (default %d)" % BUDGET_S)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results.json")
    parser.add_argument("--work-dir", type=Path, default=REPO / "results" / "gpu_check")
    parser.add_argument("--data-dir", default=os.environ.get("FASHION_TUNER_DATA"))
    parser.add_argument("--allow-cpu", action="store_true",
                        help="dry run of every step on a CPU with small epoch figures (not a GPU result)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if os.environ.get("KERAS_BACKEND") != "jax":
        print("gpu_check: KERAS_BACKEND must be jax (run it through scripts/gpu_check.sh)", file=sys.stderr)
        return 2
    gpus, seen = cuda_devices()
    if args.allow_cpu:
        global EPOCH_IMAGES, EPOCH_EPOCHS
        EPOCH_IMAGES, EPOCH_EPOCHS = 1000, 2
        gpus = gpus or [f"none ({seen}): --allow-cpu dry run"]
    elif not gpus:
        print(f"gpu_check: no CUDA device visible to JAX (devices: {seen}); run this on the GPU machine with "
              "the CUDA build of JAX (pip install 'jax[cuda12]')", file=sys.stderr)
        return EXIT_NO_GPU
    print(f"gpu_check: JAX sees {', '.join(gpus)}; {args.budget_s:.0f} s for the steps", flush=True)
    logs = args.work_dir / "logs"
    shutil.rmtree(args.work_dir, ignore_errors=True)
    check = Check(args.budget_s, args.work_dir, logs, args.data_dir)
    precision = "bfloat16" if args.allow_cpu else "float16"  # float16 is float32 on a CPU
    steps = (("mlp", step_mlp), ("policy", lambda c: step_policy(c, precision)),
             ("cnn_epoch", lambda c: step_epochs(c, args.data_dir)), ("chief_worker", step_chief_worker),
             ("cnn_default", step_cnn))
    for name, step in steps:
        if check.left() <= 5:
            check.record(name, status="skipped", error="no time left")
            continue
        try:
            step(check)
        except Exception as exc:  # one broken step must not lose the others' figures
            check.record(name, status="failed", error=f"{type(exc).__name__}: {exc}")
    statuses = {k: v.get("status") for k, v in check.steps.items()}
    entry = {"suite": "gpu" if not args.allow_cpu else "cpu dry run (--allow-cpu)", "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
             "status": "ok" if statuses and all(s == "ok" for s in statuses.values()) else "partial",
             "commands": ["bash scripts/gpu_check.sh"], "rerun": "bash scripts/gpu_check.sh",
             "machine": {**common.machine(), "jax_devices": gpus}, "versions": common.versions(),
             "data_md5": _relative_dir(common.data_md5(args.data_dir)), "data_dir": args.data_dir and
             os.path.relpath(args.data_dir, REPO), "backend": "jax",
             "steps": check.steps, "step_status": statuses, "wall_s": round(time.monotonic() - started, 1)}
    from benchmarks import run as bench

    results = bench.load_results(args.out)
    results["figures"]["gpu"] = entry
    bench.write_results(args.out, results)
    out_dir = os.environ.get("OUT")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "gpu_entry.json").write_text(json.dumps(entry, indent=2, default=str) + "\n")
        shutil.make_archive(str(Path(out_dir) / "gpu_check_logs"), "gztar", logs)
    print(f"gpu_check: {json.dumps(statuses)}; wrote the gpu entry to {args.out}", flush=True)
    return 0 if entry["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
