"""Does the search earn its minutes? Each arm alone for the same wall time, its pick retrained at a reference
fidelity and compared with the space's defaults retrained the same way (issue 26).

    python -m benchmarks.run --suite full --only search_value [--seeds 42 7 123] [--approaches priorband defaults]
    python -m benchmarks.search_value staircase --space cnn --seed 42 --budget 900 --progress FILE
    python -m benchmarks.search_value reference --space cnn --seed 42 --values PICK.json --epochs 10 --train-seeds 2

Arms (:data:`ARMS`), each given ``budget_s`` of wall time per seed on the same split (``--subset``, seed):
``defaults`` (no search: the space's defaults trained for the whole budget, one cosine schedule laid out over
the epochs that fit; its anytime curve is the "defaults-only staircase"), ``priorband`` (our default sampler),
``hyperband`` (Keras Tuner's), ``random`` (plain Keras Tuner RandomSearch, benchmarks/random_cnn.py) and
``optuna`` (TPE + median pruner, benchmarks/optuna_cnn.py). Each arm's pick (its best trial's
hyperparameters; the defaults for ``defaults``) is retrained from scratch by :func:`reference_fit`: ``epochs``
epochs (the ablation protocol: 10 on the 10,000-image subset) at ``train_seeds`` training seeds, scored on the
validation images. ``delta_ref`` = pick's mean reference accuracy minus the defaults', paired by seed: a
search's winner's curse (a lucky low-fidelity score) does not count. The test images are never read.

Variants (:data:`VARIANTS`): ``search_value`` (cnn), ``search_value_bad`` (the cnn space with poor defaults,
``benchmarks/spaces/cnn_bad_defaults.py``: a sampler that only trusts the prior does not recover),
``search_value_mlp`` (the mlp space at its own epochs). The random and Optuna arms search the cnn space and
are left out of the other variants.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

from benchmarks import common
from benchmarks.common import emit, load_split_data

log = logging.getLogger(__name__)

ARMS = ("defaults", "priorband", "hyperband", "random", "optuna")
VARIANTS = {
    "search_value": dict(space="cnn", arms=ARMS),
    "search_value_bad": dict(space="benchmarks/spaces/cnn_bad_defaults.py", arms=("defaults", "priorband", "hyperband")),
    "search_value_mlp": dict(space="mlp", arms=("defaults", "priorband", "hyperband")),
}
# Per-suite sizes: full is the protocol (900 s an arm, the cnn search's 10,000-image subset and 6 epochs,
# reference fits of 10 epochs at 2 training seeds).
SETTINGS = {"smoke": dict(budget_s=40, subset=600, val_size=0.05, max_epochs=2, ref_epochs=1, train_seeds=1),
            "quick": dict(budget_s=180, subset=2000, val_size=0.05, max_epochs=2, ref_epochs=3, train_seeds=1),
            "full": dict(budget_s=900, subset=10000, val_size=None, max_epochs=6, ref_epochs=10, train_seeds=2)}
MLP_EPOCHS = 20  # the mlp space's own max_epochs (fashion_tuner.spaces.SPACE_DEFAULTS)
SAME_AS_DEFAULTS = "defaults"  # a reference accuracy recorded as "the defaults' at this seed" (measured in another run)
ESTIMATE_IMAGES = 2000  # the staircase times an epoch on this many training images, then scales it
SAME_FIGURE = ("suite", "budget_s", "subset", "max_epochs", "ref_epochs", "train_seeds", "space")


# ----------------------------------------------------------------------------- one arm

def run_name(variant: str, arm: str, seed: int) -> str:
    """The run folder's name of our search ``arm`` at ``seed``: ``sv-ARM-sSEED`` for ``search_value`` (the name its
    rows were measured under), ``VARIANT-ARM-sSEED`` for the others, so no variant overwrites another's runs."""
    return f"sv-{arm}-s{seed}" if variant == "search_value" else f"{variant}-{arm}-s{seed}"


def arm_command(arm: str, space: str, seed: int, p: dict, work: str, progress: str, data: list[str],
                variant: str = "search_value") -> list[str]:
    """The command of ``arm`` at ``seed`` (``python`` = this interpreter); ``progress``: the peers' and the
    staircase's JSON-lines file; ``data``: --data-dir/--skip-md5 flags; ``variant``: names our runs
    (:func:`run_name`)."""
    split = ["--subset", str(p["subset"]), "--seed", str(seed),
             *(["--val-size", str(p["val_size"])] if p["val_size"] else []), *data]
    epochs = ["--max-epochs", str(p["max_epochs"])]
    if arm == "defaults":
        return ["python", "-m", "benchmarks.search_value", "staircase", "--space", space, "--budget",
                str(p["budget_s"]), "--progress", progress, *split]
    if arm in ("priorband", "hyperband"):
        return ["python", "main.py", "search", "--space", space, "--tuner", arm, "--name", run_name(variant, arm, seed),
                "--results-dir", work, "--overwrite", "--time-budget", f"{p['budget_s']}s", "--no-tensorboard",
                *(["--small-budget", "search"] if arm == "priorband" else []), *epochs, *split]
    module = {"random": "benchmarks.random_cnn", "optuna": "benchmarks.optuna_cnn"}[arm]
    budget = ["--epoch-budget", "1000000"] if arm == "optuna" else []
    return ["python", "-m", module, *budget, "--progress", progress, "--work-dir", work, *epochs, *split]


def pick_of(arm: str, run_dir: Path, progress: Path) -> dict | None:
    """The hyperparameters an arm would hand to retrain-best: ours' best trial (best_hyperparameters.json, else
    the best completed trial.json), a peer's best progress line; None for ``defaults`` (the space's own)."""
    if arm == "defaults":
        return None
    if arm in ("priorband", "hyperband"):
        best = run_dir / "best_hyperparameters.json"
        if best.is_file():
            return _strip(json.loads(best.read_text()))
        trials = []
        for path in run_dir.glob("trial_*/trial.json"):
            try:
                t = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if t.get("status") == "COMPLETED" and isinstance(t.get("score"), (int, float)):
                trials.append(t)
        if not trials:
            return None
        return _strip(max(trials, key=lambda t: t["score"])["hyperparameters"]["values"])
    lines = []
    if progress.is_file():
        for line in progress.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    lines = [ln for ln in lines if isinstance(ln.get("hyperparameters"), dict)]
    return _strip(max(lines, key=lambda ln: ln["score"])["hyperparameters"]) if lines else None


def _strip(values: dict) -> dict:
    from fashion_tuner.tables import hp_values

    return hp_values(values)


# ----------------------------------------------------------------------------- training (in a child process)

def _space_and_data(space_name: str, seed: int, subset: int, val_size: float | None, max_epochs: int,
                    data_dir: str | None, skip_md5: bool):
    from fashion_tuner import runs, spaces

    dataset, (x_tr, y_tr), (x_val, y_val), _ = load_split_data(subset, seed, data_dir, skip_md5, val_size=val_size)
    x_tr, x_val = runs.to_model_input(x_tr), runs.to_model_input(x_val)
    space = spaces.load_space(space_name)
    spaces.set_data_context(spaces.DataContext.from_data(dataset, x_tr, str(common.REPO / "results"), seed,
                                                         max_epochs=max_epochs))
    return space, (x_tr, y_tr), (x_val, y_val)


def _fit(space, hp, model, x, y, **kwargs):
    """The space's own fit when it has one (MixUp batches, ...), else Keras'."""
    batch_size = int(hp.values.get("batch_size") or 128)
    fit = getattr(space, "fit", None)
    if fit is not None:
        return fit(hp, model, x, y, batch_size=batch_size, **kwargs)
    return model.fit(x, y, batch_size=batch_size, **kwargs)


def reference_fit(space_name: str, values: dict | None, seed: int, train_seed: int, p: dict,
                  data_dir: str | None = None, skip_md5: bool = False) -> dict:
    """Train ``values`` (None: the space's defaults) from scratch for ``p["ref_epochs"]`` epochs on the split of
    ``seed`` with training seed ``train_seed``; ``{"val_accuracy" (after the last epoch), "fit_s", "epoch_s"}``."""
    import keras
    import keras_tuner as kt
    import numpy as np

    keras.backend.clear_session()
    space, (x_tr, y_tr), (x_val, y_val) = _space_and_data(space_name, seed, p["subset"], p["val_size"],
                                                            p["ref_epochs"], data_dir, skip_md5)
    keras.utils.set_random_seed(train_seed)
    hp = kt.HyperParameters()
    space.build_model(hp)  # registers the space (and its defaults)
    if values:
        hp.values.update(values)
    keras.backend.clear_session()
    keras.utils.set_random_seed(train_seed)
    model = space.build_model(hp)
    started = time.perf_counter()
    _fit(space, hp, model, x_tr, y_tr, epochs=p["ref_epochs"], verbose=0)
    fit_s = time.perf_counter() - started
    predictions = model.predict(x_val, batch_size=512, verbose=0)
    active = {h.name: hp.values[h.name] for h in hp.space if hp.is_active(h) and h.name in hp.values}
    return {"val_accuracy": float(np.mean(predictions.argmax(1) == y_val)), "fit_s": round(fit_s, 1),
            "epoch_s": round(fit_s / p["ref_epochs"], 2), "values": active}


def _EpochTimer():  # noqa: N802 (a Keras callback class, defined when Keras is loaded)
    """A callback whose ``epoch_s`` and ``val_s`` are the wall seconds of the last epoch and of its validation pass."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        epoch_s = val_s = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_test_begin(self, logs=None):
            self.test_started = time.perf_counter()

        def on_test_end(self, logs=None):
            self.val_s = time.perf_counter() - self.test_started

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_s = time.perf_counter() - self.started

    return EpochTimer()


def staircase(args: argparse.Namespace) -> int:
    """The ``defaults`` arm: the space's defaults trained for the whole ``--budget`` (one schedule laid out over
    the epochs that fit, estimated from a second epoch on ``ESTIMATE_IMAGES`` images, after one that traces: with the
    first, an mlp staircase planned 136 epochs of 0.65 s for a 900 s budget and ended after 116 s), one progress line
    ``{"time", "score"}`` per epoch."""
    import keras
    import keras_tuner as kt

    from benchmarks.random_cnn import append_progress

    started = time.time()
    deadline = started + args.budget
    space, (x_tr, y_tr), (x_val, y_val) = _space_and_data(args.space, args.seed, args.subset, args.val_size, 1,
                                                            args.data_dir, args.skip_md5)
    hp = kt.HyperParameters()
    space.build_model(hp)
    keras.utils.set_random_seed(args.seed)
    timer = _EpochTimer()  # the second of two epochs on 2,000 images: the first traces (seconds for a small model)
    _fit(space, hp, space.build_model(hp), x_tr[:ESTIMATE_IMAGES], y_tr[:ESTIMATE_IMAGES], epochs=2,
         validation_data=(x_val, y_val), callbacks=[timer], verbose=0)
    epoch_s = (timer.epoch_s - timer.val_s) * len(x_tr) / ESTIMATE_IMAGES + timer.val_s
    epochs = max(1, int((deadline - time.time()) * 0.9 / max(epoch_s, 1e-3)))
    space, (x_tr, y_tr), (x_val, y_val) = _space_and_data(args.space, args.seed, args.subset, args.val_size, epochs,
                                                            args.data_dir, args.skip_md5)
    keras.backend.clear_session()
    keras.utils.set_random_seed(args.seed)
    model = space.build_model(hp)

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            score = (logs or {}).get("val_accuracy")
            if score is not None:
                append_progress(args.progress, score, epoch=epoch + 1)
            if time.time() + (time.time() - started) / (epoch + 2) > deadline:  # the next epoch would overrun
                self.model.stop_training = True

    _fit(space, hp, model, x_tr, y_tr, epochs=epochs, validation_data=(x_val, y_val), callbacks=[Progress()],
         verbose=0)
    return 0


def reference(args: argparse.Namespace) -> int:
    values = json.loads(Path(args.values).read_text()) if args.values else None
    p = dict(subset=args.subset, val_size=args.val_size, ref_epochs=args.epochs)
    fits = [reference_fit(args.space, values, args.seed, args.seed * 100 + k, p, args.data_dir, args.skip_md5)
            for k in range(args.train_seeds)]
    emit({"val_accuracy": statistics.mean(f["val_accuracy"] for f in fits), "values": fits[0]["values"],
          "fits": [{k: v for k, v in f.items() if k != "values"} for f in fits]})
    return 0


# ----------------------------------------------------------------------------- the figure

def delta_summary(reference_acc: dict[str, dict[str, float]]) -> dict:
    """``{arm: {"delta_ref": {seed: pp}, "median_pp", "min_pp", "seeds"}}`` from ``{arm: {seed: accuracy}}``, each
    arm's accuracy minus the ``defaults`` arm's at the same seed, in percentage points (seeds without a
    defaults figure are left out)."""
    base = reference_acc.get("defaults", {})
    out = {}
    for arm, by_seed in reference_acc.items():
        deltas = {s: round((acc - base[s]) * 100, 3) for s, acc in by_seed.items()
                  if s in base and acc is not None and base[s] is not None}
        values = list(deltas.values())
        out[arm] = {"delta_ref": deltas, "seeds": len(values),
                    "median_pp": round(statistics.median(values), 3) if values else None,
                    "min_pp": round(min(values), 3) if values else None}
    return out


def bench_search_value(ctx, name: str = "search_value") -> dict:
    """Every chosen arm (``--approaches``) at every seed, alone, then the reference fits; merged with the seeds
    and arms an earlier invocation measured (:func:`merge`)."""
    from benchmarks.anytime import best_so_far, ours_points, progress_points, run_for

    variant = VARIANTS[name]
    p = dict(SETTINGS[ctx.suite])
    if variant["space"] == "mlp":
        p["max_epochs"] = MLP_EPOCHS if ctx.suite == "full" else p["max_epochs"]
    arms = [a for a in variant["arms"] if not ctx.approaches or a in ctx.approaches]
    seeds = list(ctx.seeds or (42,))
    runs, curves, picks, ref = ({a: {} for a in arms} for _ in range(4))
    defaults_used: dict[str, dict | None] = {}  # seed -> the defaults' active values, from their reference fit
    for seed in seeds:
        for arm in arms:
            progress = ctx.work / f"{name}-{arm}-s{seed}.progress.jsonl"
            progress.unlink(missing_ok=True)
            argv = arm_command(arm, variant["space"], seed, p, ctx.rel(ctx.work), ctx.rel(progress), ctx.data_args(),
                                variant=name)
            log.info("%s %s seed %s: %s s of %s", name, arm, seed, p["budget_s"], common.shown(argv))
            result = run_for(argv, p["budget_s"] + 30, ctx.logs / f"{name}-{arm}-s{seed}.log")
            run_dir = ctx.work / run_name(name, arm, seed)
            points = ours_points(run_dir) if arm in ("priorband", "hyperband") else progress_points(progress)
            curves[arm][str(seed)] = best_so_far(points, result["started"], p["budget_s"])
            picks[arm][str(seed)] = pick_of(arm, run_dir, progress)
            runs[arm][str(seed)] = {"command": common.shown(argv), **result, "trials_completed": len(points),
                                    "git_commit": common._git_commit()}
        if str(seed) not in defaults_used:  # trial 0 of our searches is the space's defaults
            defaults_used[str(seed)] = trial0_values(ctx.work, seed, arms, name)
        for arm in arms:  # the reference fits, after the searches (each alone)
            values = picks[arm][str(seed)]
            values_file = ctx.work / f"{name}-{arm}-s{seed}.pick.json"
            values_file.write_text(json.dumps(values))
            argv = ["python", "-m", "benchmarks.search_value", "reference", "--space", variant["space"], "--seed",
                    str(seed), "--epochs", str(p["ref_epochs"]), "--train-seeds", str(p["train_seeds"]),
                    "--subset", str(p["subset"]), *(["--val-size", str(p["val_size"])] if p["val_size"] else []),
                    *(["--values", ctx.rel(values_file)] if values is not None or arm == "defaults" else []),
                    *ctx.data_args()]
            if values is None and arm != "defaults":
                ref[arm][str(seed)] = None
                continue
            if arm != "defaults" and is_defaults(values, defaults_used.get(str(seed))):
                # the same model, seeds and data as the defaults' reference fit: delta_ref is 0 by construction
                log.info("%s %s seed %s: the pick is the defaults; their reference fit is reused", name, arm, seed)
                ref[arm][str(seed)] = ref.get("defaults", {}).get(str(seed), SAME_AS_DEFAULTS)
                continue
            out = ctx.run(argv, f"{name}-{arm}-s{seed}-reference")
            line = common.last_json_line(out["stdout"] or "") or {}
            ref[arm][str(seed)] = line.get("val_accuracy")
            if arm == "defaults":
                defaults_used[str(seed)] = line.get("values")
    entry = ctx.entry(name, [r["command"] for by in runs.values() for r in by.values()], space=variant["space"],
                      seeds=seeds, runs=runs, curves=curves, picks=picks, reference=ref,
                      defaults_values=defaults_used, **p)
    return entry


def trial0_values(work: Path, seed: int, arms: list[str], variant: str = "search_value") -> dict | None:
    """The values of trial 0 (the space's defaults) of this seed's priorband or hyperband run, or None."""
    for arm in ("priorband", "hyperband"):
        if arm not in arms:
            continue
        try:
            trial = json.loads((work / run_name(variant, arm, seed) / "trial_0000" / "trial.json").read_text())
            return _strip(trial["hyperparameters"]["values"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def is_defaults(pick: dict | None, defaults: dict | None) -> bool:
    """Whether ``pick`` builds the same model as ``defaults`` (the defaults' active values): equal on every one
    of them (then the conditions hold alike, so no other value is active)."""
    return changed_knobs(pick, defaults) == 0


def changed_knobs(pick: dict | None, defaults: dict | None) -> int | None:
    """How many of the defaults' active values ``pick`` changes (0: the defaults); None when unknown."""
    if pick is None or not defaults:
        return None
    return sum(pick.get(k) != v for k, v in defaults.items())


def with_summary(entry: dict) -> dict:
    from benchmarks.anytime import summarize as anytime_summary

    entry = dict(entry)
    reference = entry.get("reference") or {}
    base = reference.get("defaults") or {}
    resolved = {arm: {s: base.get(s) if acc == SAME_AS_DEFAULTS else acc for s, acc in by_seed.items()}
                for arm, by_seed in reference.items()}
    entry["delta"] = delta_summary(resolved)
    defaults = entry.get("defaults_values") or {}
    entry["changed"] = {arm: {s: changed_knobs(v, defaults.get(s)) for s, v in by_seed.items()}
                        for arm, by_seed in (entry.get("picks") or {}).items() if arm != "defaults"}
    entry["anytime"] = {a: anytime_summary(c, entry["budget_s"], 0.0) for a, c in (entry.get("curves") or {}).items()}
    return entry


def merge(old: dict | None, new: dict) -> dict:
    """``new`` plus the (arm, seed) results of ``old`` it did not rerun, when both measured the same thing
    (:data:`SAME_FIGURE`); the summary is recomputed over all of them."""
    if not old or any(old.get(k) != new.get(k) for k in SAME_FIGURE):
        return with_summary(new)
    merged = {**old, **new}  # records added to the figure by hand (full_retrain, race) outlive a rerun
    for key in ("runs", "curves", "picks", "reference"):
        merged[key] = {a: {**(old.get(key) or {}).get(a, {}), **(new.get(key) or {}).get(a, {})}
                       for a in set(old.get(key) or {}) | set(new.get(key) or {})}
    merged["seeds"] = sorted({*old.get("seeds", []), *new.get("seeds", [])})
    # a run of arms without a Hyperband one finds no trial 0 to read the defaults from (None): keep the earlier ones
    merged["defaults_values"] = {**(old.get("defaults_values") or {}),
                                 **{k: v for k, v in (new.get("defaults_values") or {}).items() if v is not None}}
    if old.get("superseded") and not new.get("superseded"):  # earlier figures a later run or rule replaced
        merged["superseded"] = old["superseded"]
    return with_summary(merged)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_value", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("staircase", "reference"):
        s = sub.add_parser(name)
        s.add_argument("--space", default="cnn")
        s.add_argument("--seed", type=int, default=42)
        s.add_argument("--subset", type=int, default=10000)
        s.add_argument("--val-size", type=float, default=None)
        s.add_argument("--data-dir", default=None)
        s.add_argument("--skip-md5", action="store_true")
    stair, ref = sub.choices["staircase"], sub.choices["reference"]
    stair.add_argument("--budget", type=float, required=True, help="seconds")
    stair.add_argument("--progress", required=True)
    ref.add_argument("--values", default=None, help="JSON file of the pick's hyperparameters (none: the defaults)")
    ref.add_argument("--epochs", type=int, default=10)
    ref.add_argument("--train-seeds", type=int, default=2)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    return staircase(args) if args.command == "staircase" else reference(args)


if __name__ == "__main__":
    raise SystemExit(main())
