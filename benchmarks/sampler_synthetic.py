"""The search algorithms on synthetic objectives (no training, seconds): what a 10-trial search picks, against
the defaults, on spaces none of them was written for.

    python -m benchmarks.sampler_synthetic [--seeds 60] [--trials 10]

Four fixed cases are a space of 27-30 hyperparameters, 25 active at the defaults (an optimizer and its learning
rate, up to 4 conditional blocks of two, 8 booleans, 6 floats, two choices) with a noise-free score that peaks near
the defaults ("good") or far from them ("poor": the optimizer and learning rate of the defaults are wrong), the
learning rate either one hyperparameter ("flat") or one per optimizer under a conditional scope ("nested", as the
cnn space has it). Two more ("random-good", "random-poor") draw a new space per seed (:class:`RandomSpace`: 8-40
hyperparameters of every kind, importances and optima at random), so that no sampler can be fitted to them. A
trial's observed score adds the binomial noise of 6,000 validation images (sd 0.46 pp) and grows with its epochs.
Each arm runs ``--trials`` trials through the real Keras Tuner oracle API (max_epochs 6, factor 3: a 15-minute cnn
search's shape) and picks as the search itself does (``algorithms.pick_order``: priorband keeps the defaults unless
beaten beyond the validation noise; Hyperband's pick is its best score); the figure is the pick's noise-free score
minus the defaults', in percentage points, per seed. Arms: ``priorband`` (the default sampler),
``priorband_543f038`` (the sampler before its uniform share and the distrust of beaten defaults changed:
:data:`PAST_SAMPLERS`) and ``hyperband`` (Keras Tuner's own: uniform draws). Prints one JSON line.
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

ARMS = ("priorband", "priorband_543f038", "hyperband")
# earlier versions of the priorband sampler, as constants of fashion_tuner/algorithms/priorband.py at that commit
PAST_SAMPLERS = {"priorband_543f038": {"UNIFORM_HIGH": 0.5, "SHARE_BY_RUNG": False, "UNIFORM_PRIOR_BEATEN": 0.0,
                                       "PRIOR_BEATEN_WEIGHT": 1.0, "BEATEN_NO_FULL": False, "PICK_MARGIN": 1.0}}
CASES = ("flat-good", "flat-poor", "nested-good", "nested-poor", "random-good", "random-poor")
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


class RandomSpace:
    """A space drawn from ``seed`` (cases ``random-good|poor``), so that no sampler can be fitted to it: 6-24 plain
    hyperparameters of every kind Keras Tuner has (linear and log Floats, Ints, Booleans, Choices of strings and of
    numbers), half the time a branch (a Choice whose values each activate their own log-scaled Float, the best of
    which depends on the branch: an optimizer and its learning rate) and half the time a depth (an Int 1-4 whose
    levels each activate two Choices/Floats). Each term of the score gets an importance from a heavy-tailed ladder
    (``0.06 / rank ** 1.3``: a few matter, most hardly) in random order. Good defaults sit at the best value of
    the three most important terms active at them and of about half the rest; poor ones also miss the most
    important active term by at least half its range."""

    def __init__(self, seed: int, poor: bool):
        rng = random.Random(f"space:{seed}")
        self.knobs: list[dict] = []  # name, kind, best, default (+ values/penalty of choices), weight
        for i in range(rng.randint(6, 24)):
            self.knobs.append(self._knob(rng, f"k{i}", rng.choice(["float", "log", "int", "bool", "str", "num"])))
        self.branch = self._knob(rng, "branch", "str") if rng.random() < 0.5 else None
        self.rates = {v: self._knob(rng, f"rate_{v}", "log") for v in self.branch["values"]} if self.branch else {}
        self.depth = {"name": "depth", "kind": "depth", "best": rng.randint(1, 4)} if rng.random() < 0.5 else None
        self.levels = [[self._knob(rng, f"width_{i}", "num"), self._knob(rng, f"drop_{i}", "float")]
                       for i in range(4)] if self.depth else []
        terms = self.knobs + ([self.branch, *self.rates.values()] if self.branch else []) + (
            [self.depth, *[k for level in self.levels for k in level]] if self.depth else [])
        order = list(range(len(terms)))
        rng.shuffle(order)
        for rank, i in enumerate(order):
            terms[i]["weight"] = 0.06 / (rank + 1) ** 1.3
        for i in order:
            terms[i]["default"] = self._value(terms[i], rng, near=rng.random() < 0.5)
        active = [terms[i] for i in order if self._active(terms[i])]  # at the defaults, most important first
        for knob in active[:3]:
            knob["default"] = self._value(knob, rng, near=True)
        if poor:
            active[0]["default"] = self._value(active[0], rng, far=True)

    def _active(self, knob: dict) -> bool:
        """Whether ``knob`` is active at the defaults (decided for the branch and the depth already)."""
        if knob["name"].startswith("rate_"):
            return knob is self.rates[self.branch["default"]]
        if knob["name"].startswith(("width_", "drop_")):
            return int(knob["name"].split("_")[1]) < self.depth["default"]
        return True

    @staticmethod
    def _knob(rng: random.Random, name: str, kind: str) -> dict:
        knob = {"name": name, "kind": kind}
        if kind in ("str", "num"):
            n = rng.randint(3, 5)
            knob["values"] = [f"v{j}" for j in range(n)] if kind == "str" else [16 * 2 ** j for j in range(n)]
            best = rng.randrange(n)
            knob["best"] = knob["values"][best]
            knob["penalty"] = {v: (0.0 if j == best else rng.uniform(0.2, 1.0)) if kind == "str"
                               else abs(j - best) / (n - 1) for j, v in enumerate(knob["values"])}
        elif kind == "bool":
            knob["best"] = rng.random() < 0.5
        elif kind == "int":
            knob["best"] = rng.randint(1, 8)
        else:
            knob["best"] = rng.random()  # on the unit scale (log: of 1e-4 .. 1e-1)
        return knob

    @staticmethod
    def _value(knob: dict, rng: random.Random, near: bool = False, far: bool = False):
        kind, best = knob["kind"], knob["best"]
        if kind in ("str", "num"):
            pool = [v for v in knob["values"] if (knob["penalty"][v] >= 0.5 if far else True)] or knob["values"]
            return best if near else rng.choice(pool)
        if kind == "bool":
            return best if near else (not best if far else rng.random() < 0.5)
        if kind in ("int", "depth"):
            top = 4 if kind == "depth" else 8
            if far:
                return 1 if best > (top + 1) / 2 else top
            return best if near else rng.randint(1, top)
        if far:
            u = rng.uniform(0.0, 0.25) if best > 0.5 else rng.uniform(0.75, 1.0)
        else:
            u = min(max(best + rng.gauss(0.0, 0.05), 0.0), 1.0) if near else rng.random()
        return 10 ** (-4 + 3 * u) if kind == "log" else u

    def build(self, hp):
        """The space on a Keras Tuner ``HyperParameters``; returns it."""
        for knob in self.knobs:
            self._declare(hp, knob)
        if self.branch:
            self._declare(hp, self.branch)
            for value, rate in self.rates.items():
                with hp.conditional_scope("branch", [value]):
                    self._declare(hp, rate)
        if self.depth:
            hp.Int("depth", 1, 4, default=self.depth["default"])
            for i, level in enumerate(self.levels):
                with hp.conditional_scope("depth", list(range(i + 1, 5))):
                    for knob in level:
                        self._declare(hp, knob)
        return hp

    @staticmethod
    def _declare(hp, knob: dict) -> None:
        kind, name, default = knob["kind"], knob["name"], knob["default"]
        if kind in ("str", "num"):
            hp.Choice(name, knob["values"], default=default)
        elif kind == "bool":
            hp.Boolean(name, default=default)
        elif kind == "int":
            hp.Int(name, 1, 8, default=default)
        elif kind == "log":
            hp.Float(name, 1e-4, 1e-1, sampling="log", default=default)
        else:
            hp.Float(name, 0.0, 1.0, default=default)

    def score(self, values: dict, epochs: int) -> float:
        """The noise-free score after ``epochs``: 0.92 minus each term's importance x its distance from its best
        (0 to 1), minus the same epochs curve as the fixed cases."""
        loss = sum(k["weight"] * self._distance(k, values[k["name"]]) for k in self.knobs)
        if self.branch:
            branch = values["branch"]
            rate = self.rates[branch]
            loss += self.branch["weight"] * self.branch["penalty"][branch] + rate["weight"] * self._distance(
                rate, values[rate["name"]])
        if self.depth:
            depth = values["depth"]
            loss += self.depth["weight"] * abs(depth - self.depth["best"]) / 3
            for i, level in enumerate(self.levels):
                for knob in level:
                    loss += knob["weight"] * (self._distance(knob, values[knob["name"]]) if i < depth else 0.5)  # absent: half
        return 0.92 - loss - 0.25 / (1 + epochs)

    @staticmethod
    def _distance(knob: dict, value) -> float:
        kind, best = knob["kind"], knob["best"]
        if kind in ("str", "num"):
            return knob["penalty"][value]
        if kind == "bool":
            return float(value != best)
        if kind == "int":
            return abs(value - best) / 7
        u = (math.log10(value) + 4) / 3 if kind == "log" else value
        return min(abs(u - best) / max(best, 1.0 - best), 1.0) ** 2


def objective(case: str, seed: int):
    """``(build, score)`` of ``case`` at ``seed``: ``build(hp)`` declares the space on a ``HyperParameters``,
    ``score(values, epochs)`` is the noise-free score (the fixed cases ignore the seed)."""
    if case.startswith("random"):
        space = RandomSpace(seed, poor=case.endswith("poor"))
        return space.build, space.score
    return (lambda hp: build_space(hp, case)), true_score


@contextlib.contextmanager
def arm_settings(arm: str):
    """Sets :data:`PAST_SAMPLERS`' constants of ``arm`` on the priorband module for the block (no-op otherwise)."""
    from fashion_tuner.algorithms import priorband

    changes = PAST_SAMPLERS.get(arm, {})
    saved = {name: getattr(priorband, name) for name in changes}
    for name, value in changes.items():
        setattr(priorband, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(priorband, name, value)


def one_search(arm: str, case: str, seed: int, trials: int) -> float:
    """The pick's noise-free score minus the defaults', in percentage points, of one ``trials``-trial search."""
    import keras_tuner as kt

    from fashion_tuner import algorithms, kt_compat

    settings = algorithms.OracleSettings(objective="score", direction="max", seed=seed, max_epochs=MAX_EPOCHS,
                                         factor=FACTOR, max_failures=3, validation_images=VAL_IMAGES)
    tuner = "hyperband" if arm == "hyperband" else "priorband"
    build, score = objective(case, seed)
    noise = random.Random(f"noise:{case}:{seed}")
    seen: list[dict] = []  # trial.json-like: trial_id, score, hyperparameters.values (tuner/epochs included)
    with tempfile.TemporaryDirectory() as folder, arm_settings(arm), contextlib.redirect_stdout(io.StringIO()):
        oracle = algorithms.module(tuner).build_oracle(settings)
        oracle._set_project_dir(folder, "synthetic")
        oracle.update_space(build(kt.HyperParameters()))
        defaults = kt_compat.default_values(oracle.hyperparameters)
        for _ in range(trials):
            trial = oracle.create_trial("tuner0")
            if trial.status != "RUNNING":
                break
            values = dict(trial.hyperparameters.values)
            observed = score(values, int(values.get("tuner/epochs", MAX_EPOCHS))) + noise.gauss(0.0, NOISE_SD)
            seen.append({"trial_id": trial.trial_id, "score": observed, "hyperparameters": {"values": values}})
            oracle.update_trial(trial.trial_id, {"score": observed})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
        ranked = sorted(seen, key=lambda t: -t["score"])
        pick_order = getattr(algorithms.module(tuner), "pick_order", None)
        order = pick_order(oracle.get_state(), ranked, VAL_IMAGES)[0] if pick_order else ranked
    return 100 * (score(config_of(order[0]), MAX_EPOCHS) - score(defaults, MAX_EPOCHS))


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
