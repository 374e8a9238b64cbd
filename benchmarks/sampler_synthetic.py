"""The search algorithms on synthetic objectives (no training, seconds): what a 10-trial search picks, against
the defaults, on spaces none of them was written for.

    python -m benchmarks.sampler_synthetic [--seeds 60] [--trials 10]

Each case is a space of 27-30 hyperparameters, 25 active at the defaults (an optimizer and its learning rate, up to
4 conditional blocks of two, 8 booleans, 6 floats, two choices) with a noise-free score that peaks near the
defaults ("good") or far from them ("poor": the optimizer and learning rate of the defaults are wrong), the
learning rate either one hyperparameter ("flat") or one per optimizer under a conditional scope ("nested", as the
cnn space has it). A trial's observed score adds the binomial noise of 6,000 validation images (sd 0.46 pp) and
grows with its epochs. Each arm runs ``--trials`` trials through the real Keras Tuner oracle API (max_epochs 6,
factor 3: a 15-minute cnn search's shape) and picks as the search itself does (``algorithms.pick_order``: priorband
keeps the defaults unless beaten beyond the validation noise; Hyperband's pick is its best score); the figure is
the pick's noise-free score minus the defaults', in percentage points, per seed. Arms: ``priorband`` (the default
sampler), ``priorband_2026-12-05`` (its local moves as measured by search_value seeds 11-15: hyperparameters picked
uniformly, steps only) and ``hyperband`` (Keras Tuner's own: uniform draws). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import random
import statistics
import sys
import tempfile
import time

ARMS = ("priorband", "priorband_2026-12-05", "hyperband")
CASES = ("flat-good", "flat-poor", "nested-good", "nested-poor")
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
BEST_LR = {"adam": 1e-3, "adamw": 1e-3, "rmsprop": 5e-4, "sgd": 3e-2}
VAL_IMAGES = 6000  # an observed score is an accuracy on this many validation images (the cnn search's split)
NOISE_SD = math.sqrt(0.85 * 0.15 / VAL_IMAGES)  # its binomial sd near 0.85: 0.46 pp
MAX_EPOCHS, FACTOR = 6, 3
LOSS_PP = -0.1  # a seed whose pick is this much below the defaults counts as a loss


def build_space(hp, case: str):
    """The synthetic space of ``case`` (``flat|nested``-``good|poor``) on a Keras Tuner ``HyperParameters``."""
    nested, poor = case.startswith("nested"), case.endswith("poor")
    hp.Choice("optimizer", list(OPTIMIZERS), default="sgd" if poor else "adam")
    if nested:
        for name in OPTIMIZERS:
            with hp.conditional_scope("optimizer", [name]):
                hp.Float(f"lr_{name}", 1e-4, 1e-1, sampling="log", default=2e-3 if poor and name == "sgd" else 1e-3)
    else:
        hp.Float("learning_rate", 1e-4, 1e-1, sampling="log", default=2e-3 if poor else 1e-3)
    hp.Int("blocks", 1, 4, default=3)
    for i in range(4):
        with hp.conditional_scope("blocks", list(range(i + 1, 5))):
            hp.Int(f"filters_{i}", 16, 128, step=16, default=32)
            hp.Float(f"dropout_{i}", 0.0, 0.5, step=0.1, default=0.1)
    for j in range(8):
        hp.Boolean(f"flag_{j}", default=False)
    for j in range(6):
        hp.Float(f"x_{j}", 0.0, 1.0, default=0.5)
    hp.Choice("activation", ["relu", "gelu", "swish", "elu"], default="relu")
    hp.Choice("batch_size", [32, 64, 128, 256], default=64)
    return hp


def true_score(values: dict, epochs: int) -> float:
    """The noise-free score of a configuration after ``epochs``: the optimizer and its learning rate dominate
    (up to ~6 pp), many small effects (0.2-1 pp each) leave the good defaults near, not at, the best."""
    lr = values.get("learning_rate", values.get(f"lr_{values['optimizer']}"))
    loss = 0.03 * (math.log10(lr) - math.log10(BEST_LR[values["optimizer"]])) ** 2
    loss += 0.02 if values["optimizer"] == "sgd" else 0.0
    loss += sum((0.004 if j < 6 else -0.006) * values[f"flag_{j}"] for j in range(8))
    loss += sum(0.02 * (values[f"x_{j}"] - (0.5 if j < 5 else 0.8)) ** 2 for j in range(6))
    loss += {"relu": 0.0, "gelu": -0.003, "swish": 0.002, "elu": 0.01}[values["activation"]]
    loss += abs(math.log2(values["batch_size"]) - 6) * 0.004 + abs(values["blocks"] - 3) * 0.008
    for i in range(values["blocks"]):
        loss += abs(values[f"filters_{i}"] - 48) / 128 * 0.01 + abs(values[f"dropout_{i}"] - 0.1) * 0.02
    return 0.92 - loss - 0.25 / (1 + epochs)


@contextlib.contextmanager
def arm_settings(arm: str):
    """``priorband_2026-12-05``: the sampler's local moves before coverage, parent weights and wide re-draws."""
    from fashion_tuner.algorithms import priorband

    saved = priorband.COVERAGE, priorband.WIDE_SHARE
    if arm == "priorband_2026-12-05":
        priorband.COVERAGE, priorband.WIDE_SHARE = False, 0.0
    try:
        yield
    finally:
        priorband.COVERAGE, priorband.WIDE_SHARE = saved


def one_search(arm: str, case: str, seed: int, trials: int) -> float:
    """The pick's noise-free score minus the defaults', in percentage points, of one ``trials``-trial search."""
    import keras_tuner as kt

    from fashion_tuner import algorithms

    settings = algorithms.OracleSettings(objective="score", direction="max", seed=seed, max_epochs=MAX_EPOCHS,
                                         factor=FACTOR, max_failures=3)
    tuner = "hyperband" if arm == "hyperband" else "priorband"
    noise = random.Random(f"noise:{case}:{seed}")
    seen: list[dict] = []  # trial.json-like: trial_id, score, hyperparameters.values (tuner/epochs included)
    with tempfile.TemporaryDirectory() as folder, arm_settings(arm), contextlib.redirect_stdout(io.StringIO()):
        oracle = algorithms.module(tuner).build_oracle(settings)
        oracle._set_project_dir(folder, "synthetic")
        oracle.update_space(build_space(kt.HyperParameters(), case))
        for _ in range(trials):
            trial = oracle.create_trial("tuner0")
            if trial.status != "RUNNING":
                break
            values = dict(trial.hyperparameters.values)
            observed = true_score(values, int(values.get("tuner/epochs", MAX_EPOCHS))) + noise.gauss(0.0, NOISE_SD)
            seen.append({"trial_id": trial.trial_id, "score": observed, "hyperparameters": {"values": values}})
            oracle.update_trial(trial.trial_id, {"score": observed})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
        state = oracle.get_state()
    ranked = sorted(seen, key=lambda t: -t["score"])
    pick_order = getattr(algorithms.module(tuner), "pick_order", None)
    order = pick_order(state, ranked, VAL_IMAGES)[0] if pick_order else ranked
    return 100 * (true_score(config_of(order[0]), MAX_EPOCHS) - true_score(config_of(seen[0]), MAX_EPOCHS))


def config_of(trial: dict) -> dict:
    return {k: v for k, v in trial["hyperparameters"]["values"].items() if not k.startswith("tuner/")}


def summary(gains: list[float]) -> dict:
    return {"median_pp": round(statistics.median(gains), 3), "mean_pp": round(statistics.mean(gains), 3),
            "losses": sum(g < LOSS_PP for g in gains), "gains_over_1pp": sum(g > 1.0 for g in gains),
            "seeds": len(gains)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=60, help="searches per arm and case (seeds 1..N)")
    parser.add_argument("--trials", type=int, default=10, help="trials per search (a 15-minute cnn search: 9-10)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.trials < 1:
        print("sampler_synthetic: --seeds and --trials must be at least 1", file=sys.stderr)
        return 2
    logging.disable(logging.WARNING)
    started = time.time()
    figures = {case: {arm: summary([one_search(arm, case, seed, args.trials) for seed in range(1, args.seeds + 1)])
                      for arm in ARMS} for case in CASES}
    print(json.dumps({"seeds": args.seeds, "trials": args.trials, "max_epochs": MAX_EPOCHS, "factor": FACTOR,
                      "noise_sd": round(NOISE_SD, 5), "val_images": VAL_IMAGES, "cases": figures,
                      "wall_s": round(time.time() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
