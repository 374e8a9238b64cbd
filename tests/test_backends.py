"""Keras backends (``--backend``), the mixed-precision policy inside every trial's build, and
models that move between backends.

The JAX tests run the real CLI in subprocesses with TensorFlow hidden (an import of it fails), as
on a GPU machine that has JAX but no TensorFlow. torch is optional: its tests run where it is
installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys

import keras  # loaded on this process's backend (tensorflow) before any test changes KERAS_BACKEND
import numpy as np
import pytest

from conftest import REPO, run_cli

from fashion_tuner import backend, devices
from fashion_tuner.cli import build_parser
from fashion_tuner.errors import UserError

POLICY_SPACE = REPO / "tests" / "spaces" / "policy_space.py"
HAS_TORCH = importlib.util.find_spec("torch") is not None
# The non-default backends: on TensorFlow the same flow (search resumed across processes, retrain-best --top-k,
# predict, a mixed-precision policy) is what the rest of the suite runs (test_resume, test_precision, test_predict).
BACKEND_PARAMS = ["jax",
                  pytest.param("torch", marks=pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed"))]


@pytest.fixture
def no_tensorflow(tmp_path) -> dict:
    """Environment in which ``import tensorflow`` fails (a shadowing package raises)."""
    shim = tmp_path / "hide_tf" / "tensorflow"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'tensorflow' (hidden by the test)\", name='tensorflow')\n")
    return {"PYTHONPATH": f"{shim.parent}:{REPO}"}


def env_for(name: str, hidden: dict) -> dict:
    return {} if name == "tensorflow" else dict(hidden)


# ----------------------------------------------------------------------------- fast checks, this process

def test_backend_choice_is_validated_before_keras_loads(monkeypatch):
    with pytest.raises(UserError, match="choose one of tensorflow, jax, torch"):
        backend.requested("mxnet")
    monkeypatch.setenv("KERAS_BACKEND", "theano")
    with pytest.raises(UserError, match="KERAS_BACKEND 'theano'"):
        backend.requested()
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backend.requested() == "jax" and backend.requested("torch") == "torch"
    # this test process runs on TensorFlow: Keras cannot switch any more
    assert keras.backend.backend() == "tensorflow"
    with pytest.raises(UserError, match="already loaded in this process on tensorflow"):
        backend.select("jax")
    assert backend.select("tensorflow") == "tensorflow"


def test_cli_rejects_an_unknown_backend_in_one_line():
    proc = run_cli("list", "--backend", "mxnet")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "invalid choice: 'mxnet'" in proc.stderr
    proc = run_cli("list", env={"KERAS_BACKEND": "theano"})
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: KERAS_BACKEND 'theano': choose one of tensorflow, jax, torch")


@pytest.mark.skipif(HAS_TORCH, reason="torch is installed here")
def test_a_missing_backend_is_one_line(tmp_path):
    proc = run_cli("search", "--backend", "torch", "--results-dir", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "torch is not installed; pip install torch" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_backend_flag_before_or_after_the_command_and_mixed_precision_values():
    parser = build_parser()
    assert parser.parse_args(["--backend", "jax", "search"]).backend == "jax"
    assert parser.parse_args(["search", "--backend", "torch"]).backend == "torch"
    assert not hasattr(parser.parse_args(["search"]), "backend")  # then $KERAS_BACKEND or tensorflow
    assert parser.parse_args(["search"]).mixed_precision == "auto"
    assert parser.parse_args(["search", "--mixed-precision", "float32"]).mixed_precision == "float32"
    assert parser.parse_args(["search", "--mixed-precision"]).mixed_precision == "float16"
    assert parser.parse_args(["search", "--mixed-precision", "bfloat16"]).mixed_precision == "bfloat16"
    with pytest.raises(UserError, match="invalid choice: 'int8'"):
        parser.parse_args(["search", "--mixed-precision", "int8"])


def test_policy_per_device(capsys):
    assert devices.policy_for("bfloat16", on_gpu=False) == "mixed_bfloat16"
    assert devices.policy_for("float16", on_gpu=True) == "mixed_float16"
    assert devices.policy_for(True, on_gpu=True) == "mixed_float16"  # run.json of runs before the flag took a value
    assert devices.policy_for(None, on_gpu=True) == devices.policy_for(False, on_gpu=False) == "float32"
    assert capsys.readouterr().out == ""
    assert devices.policy_for("float16", on_gpu=False) == "float32"
    assert "float16 needs a GPU" in capsys.readouterr().out


def test_the_policy_survives_clear_session():
    saved = dict(devices._STATE)
    try:
        devices._STATE.update(policy="mixed_bfloat16", distribution=None)
        devices.apply_trial_settings()
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        keras.backend.clear_session()  # what Keras Tuner does before every trial's build
        assert keras.config.dtype_policy().name == "float32"
        devices.apply_trial_settings()
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    finally:
        devices._STATE.update(saved)
        keras.config.set_dtype_policy("float32")


# ----------------------------------------------------------------------------- the CLI on each backend

@pytest.mark.slow
@pytest.mark.parametrize("name", BACKEND_PARAMS)
def test_search_resume_retrain_predict_keep_the_policy(name, tmp_path, data_args, fashion, no_tensorflow):
    """search (two processes: the second resumes) + retrain-best --top-k 2 + predict, under
    --mixed-precision bfloat16: every model is built under the policy run.json reports."""
    seen = tmp_path / "policies.txt"
    env = {"POLICY_OUT": str(seen), **env_for(name, no_tensorflow)}
    results = tmp_path / "results"
    proc = run_cli("search", "--backend", name, "--space", str(POLICY_SPACE), "--tuner", "random",
                   "--max-trials", "2", "--max-epochs", "1", "--subset", "600", "--batch-size", "64",
                   "--results-dir", str(results), "--name", "run", "--mixed-precision", "bfloat16",
                   "--trials-per-process", "1", *data_args, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = json.loads((results / "run" / "run.json").read_text())
    assert run["resumed"], "the second process should have resumed the run"
    assert run["trials"] == {"COMPLETED": 2}
    dist = "tensorflow-cpu" if name == "tensorflow" else name
    assert run["backend"] == {"name": name, "version": importlib.metadata.version(dist)}
    assert run["versions"]["backend"] == name and run["versions"][name] == importlib.metadata.version(dist)
    if name != "tensorflow":
        assert "tensorflow" not in run["versions"]
    assert run["devices"]["policy"] == "mixed_bfloat16" and run["args"]["mixed_precision"] == "bfloat16"
    search_builds = seen.read_text().splitlines()
    assert len(search_builds) >= 2 and set(search_builds) == {f"mixed_bfloat16 {name}"}

    proc = run_cli("retrain-best", "--backend", name, str(results / "run"), "--epochs", "1", "--top-k", "2",
                   "--space", str(POLICY_SPACE), env=env)  # a space file runs only when named (safe loading)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    builds = seen.read_text().splitlines()
    assert len(builds) == len(search_builds) + 2 and set(builds) == {f"mixed_bfloat16 {name}"}
    metrics = json.loads((results / "run" / "report" / "metrics.json").read_text())
    assert metrics["backend"]["name"] == name and metrics["backend"]["policy"] == "mixed_bfloat16"
    assert metrics["ensemble"]["test_accuracy"] > 0.2  # chance is 0.1; 600 images, 1 epoch

    image = tmp_path / "image.npy"
    label = int(fashion.y_test[0])
    np.save(image, fashion.x_test[0])
    proc = run_cli("predict", "--backend", name, "--model", str(results / "run" / "report" / "model_1" /
                                                               "best_model.keras"), str(image), "--top", "10",
                   env=env_for(name, no_tensorflow))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln.split() for ln in proc.stdout.splitlines() if ln.strip()[:1].isdigit()]
    assert len(lines) == 10 and fashion.class_names[label].split("/")[0] in proc.stdout


@pytest.mark.slow
def test_mixup_and_cutmix_batches_on_jax(no_tensorflow, data_source):
    """The CNN space's MixUp/CutMix path without TensorFlow: soft labels, full batches, a fit that
    learns; tf.data is refused and no TensorFlow strategy is made."""
    script = """
import json, sys
import keras, keras_tuner as kt, numpy as np
from fashion_tuner import data, runs, spaces
ds = data.load_dataset("fashion_mnist", sys.argv[1], verify_md5=False)
x, y = runs.to_model_input(ds.x_train[:512]), ds.y_train[:512]
cnn = spaces.load_space("cnn")
from fashion_tuner.mixing import mixed_dataset
out = {"backend": keras.backend.backend()}
from fashion_tuner import devices
from fashion_tuner.errors import UserError
try:
    out["tfdata"] = devices.resolve_input_pipeline("tfdata")
except UserError as exc:
    out["tfdata"] = str(exc)
out["auto"] = devices.resolve_input_pipeline("auto")
out["strategy"] = devices.strategy_for("auto")
for mixing in ("mixup", "cutmix"):
    batches = mixed_dataset(x, y, 64, mixing, 0.5, 10, 0)
    images, labels = batches[0]
    hp = kt.HyperParameters(); hp.Fixed("mixing", mixing); hp.Fixed("conv_blocks", 1)
    keras.utils.set_random_seed(0)
    model = cnn.build_model(hp)
    history = cnn.fit(hp, model, x, y, validation_data=(x[:256], y[:256]), epochs=2, batch_size=64, verbose=0)
    out[mixing] = {"type": type(batches).__name__, "batches": len(batches), "images": list(images.shape),
                   "label_sums": np.round(labels.sum(axis=1), 4).tolist(),
                   "soft": int((labels.max(axis=1) < 0.999).sum()), "history": history.history}
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", script, str(data_source["dir"])], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": "jax",
                                                       **no_tensorflow})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax" and out["auto"] == "arrays" and out["strategy"] is None
    assert out["tfdata"].startswith("--input-pipeline tfdata needs the tensorflow backend (this is jax)")
    for mixing in ("mixup", "cutmix"):
        got = out[mixing]
        assert got["type"] == "MixedBatches" and got["batches"] == 8 and got["images"] == [64, 28, 28, 1]
        assert all(abs(s - 1.0) < 1e-3 for s in got["label_sums"])  # each target is a distribution
        assert got["soft"] > 32, mixing  # most images are mixed with another
        history = got["history"]
        assert np.isfinite(history["loss"]).all() and history["val_accuracy"][-1] > 0.3, (mixing, history)


@pytest.mark.slow
def test_a_model_saved_on_tensorflow_predicts_the_same_on_jax(tmp_path, fashion, no_tensorflow):
    """The default CNN (augmentation, batch norm, the registered loss) trained for an epoch on
    TensorFlow, saved, loaded on JAX without TensorFlow: the same probabilities."""
    import keras_tuner as kt

    from fashion_tuner import runs, spaces

    x = runs.to_model_input(fashion.x_train[:512])
    y = fashion.y_train[:512]
    keras.utils.set_random_seed(0)
    cnn = spaces.load_space("cnn")
    hp = kt.HyperParameters()
    hp.Fixed("label_smoothing", 0.1)  # compiled with LabelCrossentropy: a registered custom object
    model = cnn.build_model(hp)
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", x[:64])
    expected = model.predict(x[:64], verbose=0)

    script = """
import sys
import numpy as np
from fashion_tuner.predict import load_model
import keras
model = load_model(sys.argv[1])
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
print(keras.backend.backend())
"""
    out = tmp_path / "jax.npy"
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model.keras"), str(tmp_path / "x.npy"),
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": "jax", **no_tensorflow})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "jax"
    got = np.load(out)
    assert got.shape == expected.shape == (64, 10)
    assert np.abs(got - expected).max() < 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()


# ----------------------------------------------------------------------------- the GPU check

def test_gpu_check_without_a_cuda_device_stops_with_one_line(tmp_path):
    """scripts/gpu_check.sh on this CPU machine (installed Keras, no wheels): JAX sees no CUDA device."""
    env = {**os.environ, "GPU_CHECK_WHEELS": str(tmp_path / "no-wheels"), "PYTHON": sys.executable}
    env.pop("KERAS_BACKEND", None)
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--out", str(tmp_path / "results.json")], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("gpu_check: no CUDA device visible to JAX")
    assert not (tmp_path / "results.json").exists()


def test_benchmark_table_has_backend_and_gpu_rows():
    from benchmarks import run as bench

    machine = {"device": "CPU only (2 cores)", "cpu": "EPYC"}
    cpu = {"suite": "full", "date": "2026-01-01", "status": "ok", "machine": machine, "versions": {"python": "3.11"},
           "rerun": "python -m benchmarks.backend_epoch",
           "measurements": [{"backend": "tensorflow", "policy": "float32", "epoch_s": 4.2, "images": 10000,
                             "status": "ok"},
                            {"backend": "jax", "policy": "float32", "epoch_s": 25.0, "images": 10000, "status": "ok"},
                            {"backend": "torch", "status": "failed", "error": "not installed"}]}
    gpu = {"suite": "gpu", "date": "2026-02-01", "status": "partial", "rerun": "bash scripts/gpu_check.sh",
           "machine": {"device": "NVIDIA H100", "cpu": "Xeon"}, "versions": {"python": "3.12"},
           "step_status": {"mlp": "ok", "cnn_default": "partial"},
           "steps": {"cnn_epoch": {"measurements": [{"policy": "float32", "epoch_s": 1.5, "status": "ok"},
                                                    {"policy": "mixed_float16", "epoch_s": 0.9, "status": "ok"}]}}}
    table = bench.render({"schema": bench.SCHEMA, "figures": {"backends": cpu, "gpu": gpu}})
    assert ("| seconds per epoch, default CNN, 10000 images, by Keras backend (one run; CPU only (2 cores)) | "
            "tensorflow 4.2 s (float32), jax 25.0 s (float32) |") in table
    assert ("| GPU check on JAX (NVIDIA H100): mlp ok, cnn_default partial | CNN s/epoch: float32 1.50 s, "
            "mixed_float16 0.90 s |") in table
    assert "Machine: CPU only (2 cores), EPYC" in table  # the machine line stays the CPU's


def test_strategy_names_per_backend():
    assert devices.strategy_name("auto", 2, "tensorflow") == "mirrored"
    assert devices.strategy_name("auto", 2, "jax") == devices.strategy_name("mirrored", 1, "jax") == "data_parallel"
    assert devices.strategy_name("auto", 4, "torch") == "none"  # one device, said once by setup()
    assert devices.strategy_name("auto", 1, "jax") == "none"
    assert devices.strategy_replicas("auto", 4, "jax") == 4 and devices.strategy_replicas("auto", 4, "torch") == 1


def test_jax_data_parallel_survives_clear_session_and_fits(no_tensorflow):
    """Two XLA host devices stand in for two GPUs: the DataParallel distribution is set again after
    clear_session (as before every trial's build), the global batch is per-device batch x 2, and a
    model fits under it."""
    script = """
import json
import keras, keras_tuner as kt, numpy as np
from fashion_tuner import backend, devices, spaces
backend.import_quietly()
devices._STATE.update(policy="float32", distribution=devices._make_distribution("data_parallel", "jax"))
devices.apply_trial_settings()
keras.backend.clear_session()
cleared = keras.distribution.distribution()
devices.apply_trial_settings()
dist = keras.distribution.distribution()
model = spaces.load_space("mlp").build_model(kt.HyperParameters())
replicas = devices.replicas_of(model)
rng = np.random.default_rng(0)
x = rng.integers(0, 255, (256, 28, 28, 1)).astype("float32"); y = rng.integers(0, 10, 256)
history = model.fit(x, y, batch_size=32 * replicas, epochs=1, verbose=0)
print(json.dumps({"cleared": repr(cleared), "distribution": type(dist).__name__, "replicas": replicas,
                  "devices": len(np.ravel(dist.device_mesh.devices)), "loss": history.history["loss"]}))
"""
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           **no_tensorflow}
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["cleared"] == "None"  # what Keras Tuner's clear_session leaves
    assert out["distribution"] == "DataParallel" and out["devices"] == out["replicas"] == 2
    assert np.isfinite(out["loss"]).all()
