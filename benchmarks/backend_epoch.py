"""Seconds per epoch of the default CNN (``search_spaces/cnn.py`` defaults) on each Keras backend.

One process per backend (Keras picks its backend once per process). Each fits ``--epochs`` epochs
of the default CNN on ``--images`` stratified training images (batch 64, as the space's default)
with a validation pass over 1,000 images; the first epoch includes compilation, so the figure is
the median of the later epochs, with the first epoch reported beside it.

    python -m benchmarks.backend_epoch                        # every installed backend, float32
    python -m benchmarks.backend_epoch --backends jax --policies float32 mixed_float16 --no-store
    python -m benchmarks.backend_epoch --one jax float32     # one measurement, prints one JSON line

The sweep stores a ``backends`` entry in benchmarks/results.json (``--no-store``: print only).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BACKENDS = ("tensorflow", "jax", "torch")
IMAGES = 10_000
EPOCHS = 3
VAL_IMAGES = 1_000
BATCH = 64
SEED = 42
ONE_TIMEOUT_S = 1800
TIMED_FIRST_PLAN = 2  # --seconds without --first-plan: the cosine is laid out for this many epochs at first
TIMED_MAX_EPOCHS = 1000  # --seconds: the most epochs a timed fit may run (the budget stops it long before)


@dataclass(frozen=True)
class FitOptions:
    """How :func:`measure` fits, beyond backend, policy, images, epochs and data: each field is the ``--one`` flag
    of its name (``hp_values``: ``--hp``), and only those that differ from these defaults go on a command line.

    ``seed``: the split, the weights and the shuffling; ``val_images``: the first of the split's validation images
    (None: all 6,000); ``data_format``: Keras' image data format (``channels_first`` feeds (N, 1, 28, 28) images);
    ``keras_batch_norm``: Keras' own batch norm in every case (``fashion_tuner.layers.BatchNorm`` runs
    TensorFlow's fused kernel for 16-bit inputs); ``batch_size``: images per step (the space's default: 64);
    ``learning_rate``: the Adam rate's peak (None: the space's default, 1e-3); ``input_pipeline``: "arrays"
    (NumPy arrays to ``model.fit``, what the cnn space's own ``fit`` receives) or "tfdata" (cached, shuffled,
    batched, prefetched ``tf.data``: ``fashion_tuner.devices.make_dataset``).
    ``seconds``: fit for that long instead of ``epochs`` (equal wall time): the cosine schedule is laid out for
    ``first_plan`` epochs (default ``TIMED_FIRST_PLAN``), then re-planned to the epochs that fit at the measured
    pace, the fit stopping after them (``fashion_tuner.budget.budget_guard``, as ``retrain-best --time-budget``
    does: it may lengthen the plan only in the first half of the first plan, later only shorten it, so a first plan
    near what fits leaves the least time unused; 2 epochs for 60 s left 7-25 s of it unused).
    ``space``: the space whose default model is fitted (a built-in name or a space file, e.g.
    benchmarks/spaces/cnn_cpu.py); ``hp_values``: hyperparameters set after a first build registered them
    (``{"family": "narrow"}``), strings as given, numbers parsed.
    """

    seed: int = SEED
    val_images: int | None = VAL_IMAGES
    data_format: str = "channels_last"
    keras_batch_norm: bool = False
    batch_size: int = BATCH
    learning_rate: float | None = None
    seconds: float | None = None
    first_plan: int | None = None
    input_pipeline: str = "arrays"
    space: str = "cnn"
    hp_values: dict = field(default_factory=dict)

    def argv(self) -> list[str]:
        """The ``--one`` flags for the fields that differ from the defaults (``--first-plan`` only with ``--seconds``)."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == (f.default_factory() if callable(f.default_factory) else f.default):
                continue
            flag = "--" + f.name.replace("_", "-")
            if f.name == "hp_values":
                out += [arg for k, v in value.items() for arg in ("--hp", f"{k}={v}")]
            elif f.name == "first_plan" and not self.seconds:
                continue
            elif isinstance(value, bool):
                out.append(flag)
            elif isinstance(value, float):
                out += [flag, f"{value:g}"]
            else:
                out += [flag, str(0 if value is None else value)]  # --val-images 0: all
        return out

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "FitOptions":
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if f.name != "hp_values"},
                   hp_values=parse_hp(args.hp)).normalised()

    def normalised(self) -> "FitOptions":
        """``val_images`` 0 means all (None); a falsy learning rate, the space's own."""
        return replace(self, val_images=self.val_images or None, learning_rate=self.learning_rate or None,
                       hp_values=dict(self.hp_values or {}))


def measure(name: str, policy: str, images: int | None, epochs: int, data_dir: str | None,
            options: FitOptions = FitOptions()) -> dict:
    """Fit the default CNN in this process (KERAS_BACKEND must already be ``name``); one result dict.
    ``images``: stratified training images (None: all 60,000); ``options``: the rest (:class:`FitOptions`).
    Thread limits come from TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS (fashion_tuner.devices)."""
    o = options.normalised()
    seed, val_images, data_format, batch_size, seconds = o.seed, o.val_images, o.data_format, o.batch_size, o.seconds
    os.environ["KERAS_BACKEND"] = name
    from fashion_tuner import backend, budget, data, devices, layers, runs, spaces, splits

    if o.keras_batch_norm:
        layers.FUSED_DTYPES = ()
    backend.select(name)
    backend.import_quietly()
    import keras
    import keras_tuner as kt

    dataset = data.load_dataset("fashion_mnist", data_dir)
    split = splits.make_split(dataset.y_train, dataset.y_test, subset=images, seed=seed)
    (x_tr, y_tr), (x_val, y_val), _ = splits.apply_split(dataset.x_train, dataset.y_train, dataset.x_test,
                                                          dataset.y_test, split)
    x_tr, x_val = runs.to_model_input(x_tr), runs.to_model_input(x_val[:val_images])
    y_val = y_val[:val_images]
    keras.config.set_image_data_format(data_format)
    if data_format == "channels_first":
        x_tr, x_val = x_tr.transpose(0, 3, 1, 2).copy(), x_val.transpose(0, 3, 1, 2).copy()
    mixed = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}.get(policy)
    info = devices.setup("none", mixed)
    planned = (o.first_plan or TIMED_FIRST_PLAN) if seconds else epochs
    spaces.set_data_context(spaces.DataContext.from_data(dataset, x_tr, REPO / "results", seed, None, planned))
    devices.apply_trial_settings()
    hp = kt.HyperParameters()
    hp.Fixed("batch_size", batch_size)
    space_module = spaces.load_space(o.space)
    overrides = {**o.hp_values, **({"learning_rate": float(o.learning_rate)} if o.learning_rate else {})}
    if overrides:  # conditional hyperparameters: registered by a first build, then set
        space_module.build_model(hp)
        hp.values.update(overrides)
    keras.utils.set_random_seed(seed)
    model = space_module.build_model(hp)
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    callbacks = [Clock()]
    fit_started = time.time()
    if seconds:  # the fit stops after the epochs that fit, re-planned as retrain-best --time-budget does
        callbacks.append(budget.budget_guard(budget.Deadline(fit_started + seconds), replan=True, batch_size=batch_size,
                                             validation_images=len(x_val), planned=planned))
    feed = dict(x=x_tr, y=y_tr, validation_data=(x_val, y_val), batch_size=batch_size)
    if o.input_pipeline == "tfdata":
        feed = dict(x=devices.make_dataset(x_tr, y_tr, batch_size, shuffle=True, seed=seed), y=None,
                    validation_data=devices.make_dataset(x_val, y_val, batch_size, shuffle=False))
    history = model.fit(**feed, epochs=TIMED_MAX_EPOCHS if seconds else epochs, callbacks=callbacks, verbose=0)
    fit_s = time.time() - fit_started
    later = times[1:] or times
    return {"backend": name, "version": backend.version(name), "policy": info["policy"],
            "requested_policy": policy, "gpus": info["gpus"], "images": int(len(x_tr)), "epochs": len(times),
            "seconds": seconds, "first_plan": planned if seconds else None, "fit_s": round(fit_s, 1),
            "learning_rate": float(hp.get("learning_rate")),
            "batch_size": batch_size, "seed": seed, "val_images": int(len(x_val)), "data_format": data_format,
            "batch_norm": "keras" if o.keras_batch_norm else "fashion_tuner.layers.BatchNorm",
            "input_pipeline": o.input_pipeline, "space": o.space, "hp": dict(o.hp_values),
            "parameters": int(model.count_params()),
            "threads": info["threads"], "epoch_s": round(statistics.median(later), 3),
            "first_epoch_s": round(times[0], 3), "epoch_times_s": [round(t, 3) for t in times],
            "val_accuracy": [round(float(v), 4) for v in history.history["val_accuracy"]]}


def one_argv(name: str, policy: str, images: int | None, epochs: int, data_dir: str | None,
             options: FitOptions = FitOptions()) -> list[str]:
    """The ``--one`` command line of :func:`measure` with these arguments (``python`` first)."""
    return (["python", "-m", "benchmarks.backend_epoch", "--one", name, policy, "--images", str(images or 0),
             "--epochs", str(epochs)] + (["--data-dir", data_dir] if data_dir else []) + options.argv())


def run_one(name: str, policy: str, images: int | None, epochs: int, data_dir: str | None,
            timeout: float = ONE_TIMEOUT_S, *, env: dict | None = None, options: FitOptions = FitOptions()) -> dict:
    """:func:`measure` in a fresh process on backend ``name``; the result or ``{"status": "failed"}``.
    ``env``: extra environment (thread limits)."""
    argv = [sys.executable] + one_argv(name, policy, images, epochs, data_dir, options)[1:]
    env = {**os.environ, "KERAS_BACKEND": name, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"backend": name, "requested_policy": policy, "status": "failed",
                "error": f"timed out after {timeout:g} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"backend": name, "requested_policy": policy, "status": "failed", "error": tail[:300]}
    out = json.loads(lines[-1])
    out.update(status="ok", process_s=round(time.monotonic() - started, 1))
    return out


def parse_hp(pairs: list[str]) -> dict:
    """``["family=narrow", "dropout_head=0.3"]`` -> ``{"family": "narrow", "dropout_head": 0.3}`` (numbers parsed)."""
    out = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--hp {pair!r}: expected NAME=VALUE")
        try:
            out[name] = int(text)
        except ValueError:
            try:
                out[name] = float(text)
            except ValueError:
                out[name] = text
    return out


def installed(names) -> list[str]:
    return [n for n in names if importlib.util.find_spec(n) is not None]


def store(entry: dict, out: Path) -> None:
    """Put ``entry`` under ``figures.backends`` of the results file (atomic write)."""
    from benchmarks import run as bench

    results = bench.load_results(out)
    results["figures"]["backends"] = entry
    bench.write_results(out, results)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=2, metavar=("BACKEND", "POLICY"), help="measure once in this process")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=None,
                        help="default: every installed backend")
    parser.add_argument("--policies", nargs="+", default=["float32"],
                        choices=("float32", "mixed_float16", "mixed_bfloat16"))
    parser.add_argument("--images", type=int, default=IMAGES, help="training images (0: all)")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=SEED, help="with --one: split, weights and shuffling")
    parser.add_argument("--val-images", type=int, default=VAL_IMAGES, help="with --one: validation images (0: all)")
    parser.add_argument("--data-format", default="channels_last", choices=("channels_last", "channels_first"),
                        help="with --one: Keras' image data format")
    parser.add_argument("--keras-batch-norm", action="store_true",
                        help="with --one: Keras' own batch norm (not TensorFlow's fused kernel for 16-bit inputs)")
    parser.add_argument("--batch-size", type=int, default=BATCH, help="with --one: images per step")
    parser.add_argument("--learning-rate", type=float, default=None, help="with --one: the peak rate (default: the space's)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="with --one: fit for this many seconds (the schedule laid out for what fits), not --epochs")
    parser.add_argument("--input-pipeline", default="arrays", choices=("arrays", "tfdata"),
                        help="with --one: NumPy arrays to model.fit, or a tf.data pipeline")
    parser.add_argument("--first-plan", type=int, default=None,
                        help=f"with --seconds: the epochs the schedule is first laid out for (default {TIMED_FIRST_PLAN})")
    parser.add_argument("--space", default="cnn", help="with --one: the space whose default model is fitted")
    parser.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE",
                        help="with --one: a hyperparameter of the model (repeatable; e.g. family=narrow)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results.json")
    parser.add_argument("--no-store", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.images or None, args.epochs, args.data_dir,
                                 FitOptions.from_args(args))), flush=True)
        return 0

    from benchmarks import common

    names = args.backends or installed(BACKENDS)
    started = time.monotonic()
    measurements = []
    for name in names:
        for policy in args.policies:
            result = run_one(name, policy, args.images, args.epochs, args.data_dir)
            measurements.append(result)
            shown = (f"{result['epoch_s']:.2f} s/epoch (first {result['first_epoch_s']:.1f} s)"
                     if result["status"] == "ok" else f"failed: {result['error']}")
            print(f"{name:<10} {policy:<14} {shown}", flush=True)
    ok = [m for m in measurements if m["status"] == "ok"]
    command = "python -m benchmarks.backend_epoch " + " ".join(argv if argv is not None else sys.argv[1:])
    entry = {"suite": "full", "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
             "status": "ok" if len(ok) == len(measurements) else "failed", "commands": [command.strip()],
             "rerun": command.strip(), "machine": common.machine(), "versions": common.versions(),
             "data_md5": common.data_md5(args.data_dir), "data_dir": args.data_dir,
             "workload": f"default CNN of search_spaces/cnn.py, {args.images} images, batch {BATCH}, "
                         f"{args.epochs} epochs; epoch_s = median of the epochs after the first",
             "measurements": measurements, "wall_s": round(time.monotonic() - started, 1),
             "load_average_1m_at_end": round(os.getloadavg()[0], 2)}
    if len(ok) != len(measurements):
        entry["error"] = "; ".join(f"{m['backend']}/{m['requested_policy']}: {m['error']}"
                                   for m in measurements if m["status"] != "ok")
    print(json.dumps(entry), flush=True)
    if not args.no_store:
        store(entry, args.out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
