"""Hyperband that starts from the space's defaults and searches near what works (``--tuner priorband``, the
default): after PriorBand (Mallik et al., NeurIPS 2023) with a TPE-style model as in BOHB.

Keras Tuner's Hyperband draws every new configuration uniformly; over a space of ~30 hyperparameters a
draw changes most of them at once, and 10-30 trials never get near the defaults' neighbourhood, where
the good configurations of a well-chosen space are. This oracle keeps Hyperband's brackets, rounds and
continuations, and draws each new configuration from a mixture:

- ``uniform``: a uniform draw (Keras Tuner's own): every new configuration of the bracket that starts lowest
  (:data:`UNIFORM_HIGH`; cheap to try, and Hyperband discards the bad ones), falling log-linearly to
  :data:`UNIFORM_LOW` in the bracket that starts at ``max_epochs``;
- ``prior``: the defaults with one to a few hyperparameters moved (a step of about a sixth of the range, or,
  :data:`WIDE_SHARE` of the time, anywhere in it), picked among those earlier local draws moved least and, among
  those, by the part of the space each controls (the square root of a conditional parent's children + 1): with
  ~30 hyperparameters and a handful of local draws, uniform picks left the optimizer of poor defaults unmoved;
- ``incumbent``: the same around the best configuration at the highest rung (epoch budget) reached;
- ``model``: once :data:`MODEL_MIN_POINTS` configurations were scored at one epoch budget, a
  Parzen-estimator ratio of good to bad ones there (TPE) picks the best of several local candidates.

Prior and incumbent share their part by which of the two better explains the top configurations so far
(the likelihood of the top ones under a local kernel around each). Once a trial beats the defaults beyond the
validation noise where both were scored, the defaults are distrusted: uniform draws take at least
:data:`UNIFORM_PRIOR_BEATEN` below the full budget, the prior at most :data:`PRIOR_BEATEN_WEIGHT` of the local
draws, and the defaults get no full-budget trial of their own (on synthetic spaces with poor defaults, 10 trials
of local moves around them found less than Keras Tuner's uniform draws; with good defaults, uniform draws cost
only cheap low-rung trials, since the pick keeps the defaults unless beaten).
Trial 0 is the defaults, and the first new configuration of a bracket that starts at ``max_epochs`` is the
defaults again when they have not reached that budget, are not beaten, and rank in the top half where they were
scored (or within the validation noise of the best there): the search's pick (:func:`pick_order`) is the defaults
unless a trial beats them there by more than :data:`PICK_MARGIN` x the validation noise. Conditional hyperparameters stay valid (a value is set only where active);
duplicates are redrawn; a ``constraint`` (``search --max-params``) rejects a configuration before it
trains, counted in ``rejected``, and a run of :data:`MAX_ATTEMPTS` rejected draws ends the search instead of
spinning. With a ``cost`` (the search passes each configuration's forward FLOPs per image), a draw costing over
:data:`COST_CAP` x the larger of the defaults' and the incumbent's compute is redrawn (counted in ``costly``; when
every attempt is over, the cheapest is taken): a uniform draw of the cnn space four blocks deep at 64 base
filters ran past the 300 s trial timeout in 2 epochs and spent a third of a 15-minute search. Every draw is seeded from ``seed`` and the oracle's saved ``seed_state``, and the mixture state
lives in oracle.json, so a resumed or killed search continues the same sequence.
"""

from __future__ import annotations

import functools
import logging
import math
import random

from fashion_tuner import kt_compat, tables
from fashion_tuner.algorithms import hyperband, noise

NAME = "priorband"
SUMMARY = "Hyperband drawing near the defaults and the best so far (PriorBand-style), with a TPE model later"
IDENTITY_ARGS = ("factor",)
MULTI_FIDELITY = True
SWEEPS = True
CONSTRAINTS = True  # honours OracleSettings.constraint (search --max-params)
COST_AWARE = True  # redraws configurations over COST_CAP x the compute of the defaults and of the incumbent

STEP_SD = 0.15  # a local move's standard deviation, as a fraction of the hyperparameter's (log-)range
MORE_CHANGES = 0.35  # probability of changing one more hyperparameter in a local move (1 + geometric)
WIDE_SHARE = 0.3  # of a local move's changes of an Int or Float: re-drawn over the whole range instead of a step
CHOICE_WIDE_SHARE = 0.3  # likewise for a Choice of numbers (else a neighbouring value); other Choices: any other
COVERAGE = True  # a local move weighs hyperparameters by coverage and conditional reach (else uniformly, as before)
COVERAGE_DECAY = 0.25  # a hyperparameter's weight in that pick, per earlier local draw that moved it
UNIFORM_LOW, UNIFORM_HIGH = 0.15, 1.0  # uniform share in the bracket starting at max_epochs .. in the lowest one
SHARE_BY_RUNG = True  # the share falls log-linearly from the lowest bracket's first rung (else: linearly in epochs)
UNIFORM_PRIOR_BEATEN = 0.8  # below the full budget, the uniform share once a trial beat the defaults beyond noise
PRIOR_BEATEN_WEIGHT = 0.1  # then the prior's share of the local draws (at most): the rest go around the incumbent
BEATEN_NO_FULL = True  # and beaten defaults get no full-budget trial of their own
MODEL_SHARE = 0.35  # of the non-uniform draws, once the model is available
MODEL_MIN_POINTS = 8  # configurations scored at one epoch budget before the model proposes
MODEL_CANDIDATES = 24
GOOD_FRACTION = 0.3  # the top share of a budget's configurations that the model calls good
DEFAULTS_KEEP_FRACTION = 0.5  # defaults in the top half where they were scored get a full-budget trial
PICK_MARGIN = 1.5  # standard errors of a difference by which a trial must beat the defaults to be the pick
MAX_ATTEMPTS = 50  # draws (duplicates or rejected) before giving up for this trial
COST_CAP = 2.0  # a new configuration may cost up to this many times the larger of the defaults' and the incumbent's
STATE_KEY = "priorband"

log = logging.getLogger(__name__)


def build_oracle(settings):
    """A :class:`PriorBandOracle` (one sweep; a time budget adds sweeps: ``algorithms.set_sweeps``)."""
    import keras_tuner as kt

    cls = oracle_class()
    return cls(objective=kt.Objective(settings.objective, settings.direction), max_epochs=settings.max_epochs,
               factor=settings.factor, hyperband_iterations=1, seed=settings.oracle_seed,
               max_consecutive_failed_trials=settings.max_failures, constraint=settings.constraint,
               validation_images=settings.validation_images, cost=settings.cost)


def expected_trials(settings) -> int:
    return hyperband.expected_trials(settings)


def needed_checkpoints(oracle_state: dict, trials: list[dict]) -> dict[str, str]:
    return hyperband.needed_checkpoints(oracle_state, trials)


def recognizes(oracle_state: dict) -> bool:
    return STATE_KEY in oracle_state


def pick_order(oracle_state: dict, ranked: list[dict], n_val: int,
               reached: dict[str, int] | None = None) -> tuple[list[dict], str | None]:
    """The space's defaults stay the pick unless a trial beats their score at the highest epoch budget reached by
    more than :data:`PICK_MARGIN` x the validation noise (a trial of fewer epochs counts too: it won with a
    handicap); the noise is one standard error of the difference of two accuracies measured on ``n_val`` images,
    ``sqrt(2 p (1 - p) / n_val)`` at the defaults' accuracy ``p`` (0.65 pp at 0.85 on 6,000), and 1.5 of them
    because ~9 trials compete for the pick: the best of several noisy near-equals clears one standard error more
    often than not (on synthetic spaces with good defaults, picks that lost over 0.1 pp: 2-6 seeds of 100 at 1.5, 4-10 at 1).
    Scores of many near-equal configurations are a race of noise (the winner's curse: measured, a pick a few
    tenths of a point above the defaults retrained worse than them); the defaults are the prior the search
    must beat. ``ranked``: completed trial.json dicts, best score first; ``reached``: ``{trial id: epochs}`` of
    trials a time budget stopped short of their epoch budget (they count at the epochs they reached, so a
    defaults' trial cut at 4 of 6 epochs is not compared with 6-epoch scores). Returns ``(order, note)``; the
    order as it is (note None) when the defaults have no score at the highest epoch budget reached."""
    reached = reached or {}

    def epochs_of(t: dict) -> int:
        return min(_epochs_of(t), reached.get(str(t.get("trial_id")), _epochs_of(t)))

    draws = (oracle_state.get(STATE_KEY) or {}).get("draws") or {}
    if not isinstance(draws, dict) or not ranked:
        return ranked, None
    by_id = {str(t.get("trial_id")): t for t in ranked}
    firsts = sorted(tid for tid, mode in draws.items() if mode == "defaults" and str(tid) in by_id)
    if not firsts:
        return ranked, None
    defaults = _config_of(by_id[firsts[0]])
    top = max(epochs_of(t) for t in ranked)
    at_top = [t for t in ranked if epochs_of(t) == top]
    champion = next((t for t in at_top if _config_of(t) == defaults), None)
    score = champion.get("score") if champion else None
    if not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
        return ranked, None
    margin = PICK_MARGIN * noise(score, n_val)
    # a trial with fewer epochs (a lower rung, or cut by the time budget) that still beats the defaults' score at
    # the highest budget has beaten them with a handicap: it counts too (measured: a budget-cut trial at seed 12
    # of search_value, +1.78 pp at 5 epochs, retrained +2.20 pp over the defaults)
    others = [t for t in ranked if t is not champion and _config_of(t) != defaults]  # best first
    beat = [t for t in others if t["score"] > score + margin]
    ahead = {id(t) for t in beat} | {id(champion)}
    order = beat + [champion] + [t for t in ranked if id(t) not in ahead]
    if beat:
        won = beat[0]
        fewer = f" at {epochs_of(won)} epochs" if epochs_of(won) < top else ""
        note = (f"trial {won['trial_id']} ({won['score']:.4f}{fewer}) beat the space's defaults (trial "
                f"{champion['trial_id']}, {score:.4f} at {top} epochs) by {100 * (won['score'] - score):.2f} pp, "
                f"more than the validation noise allows ({100 * margin:.2f} pp on {n_val:,} images)")
    else:
        closest = others[0] if others and others[0]["score"] > score else None
        note = (f"the space's defaults (trial {champion['trial_id']}, {score:.4f} at {top} epochs) stay the pick: "
                + (f"the best other trial ({closest['trial_id']}, {closest['score']:.4f}) is within the validation "
                   f"noise ({100 * margin:.2f} pp on {n_val:,} images)" if closest else "no other trial scored higher"))
    return order, note


def _config_of(trial: dict) -> dict:
    return tables.hp_values((trial.get("hyperparameters") or {}).get("values"))


def _epochs_of(trial: dict) -> int:
    epochs = ((trial.get("hyperparameters") or {}).get("values") or {}).get("tuner/epochs")
    return int(epochs) if isinstance(epochs, (int, float)) and not isinstance(epochs, bool) else 0


def describe(oracle_state: dict) -> str:
    state = oracle_state.get(STATE_KEY) or {}
    draws = state.get("draws") or {}
    counts = {}
    for mode in draws.values():
        counts[mode] = counts.get(mode, 0) + 1
    mix = ", ".join(f"{n} {m}" for m, n in sorted(counts.items())) or "no draws yet"
    rejected, costly = state.get("rejected") or 0, state.get("costly") or 0
    return (hyperband.describe(oracle_state) + f"; draws: {mix}"
            + (f"; {rejected} configuration(s) rejected by the constraint" if rejected else "")
            + (f"; {costly} draw(s) over {COST_CAP:g}x the defaults' or the best's compute redrawn" if costly else ""))


# --- the sampler's arithmetic, on plain values (no Keras Tuner objects): testable on its own -------------

def uniform_share(first_epochs: int, max_epochs: int, lowest: int | None = None) -> float:
    """The uniform draws' share in a bracket whose first round trains ``first_epochs`` of ``max_epochs``:
    :data:`UNIFORM_HIGH` in the bracket that starts lowest (``lowest`` epochs), :data:`UNIFORM_LOW` in the one
    that starts at ``max_epochs``, log-linear between (without ``lowest``: linear in ``first_epochs / max_epochs``,
    as before)."""
    if lowest is not None and SHARE_BY_RUNG:
        span = math.log(max(max_epochs, 1) / max(lowest, 1))
        fraction = math.log(max(first_epochs, 1) / max(lowest, 1)) / span if span > 0 else 1.0
    else:
        fraction = first_epochs / max(max_epochs, 1)
    fraction = min(max(fraction, 0.0), 1.0)
    return UNIFORM_HIGH - (UNIFORM_HIGH - UNIFORM_LOW) * fraction


def kernel_log_likelihood(point: dict, centre: dict, probs: dict) -> float:
    """Log-likelihood of ``point`` under a local kernel around ``centre``: per hyperparameter, a Gaussian of
    sd :data:`STEP_SD` on the [0, 1] scale of ordered ones (``probs[name](value)`` gives it, None for an
    unordered choice), else 0.7 for the same value and 0.3 for another. Names missing on either side count 0."""
    total = 0.0
    for name, to_unit in probs.items():
        if name not in point or name not in centre:
            continue
        a, b = point[name], centre[name]
        if to_unit is None:
            total += math.log(0.7 if a == b else 0.3)
        else:
            d = (to_unit(a) - to_unit(b)) / STEP_SD
            total += -0.5 * d * d
    return total


def prior_weight(top: list[dict], prior: dict, incumbent: dict, probs: dict) -> float:
    """Share of the local draws that go around the prior (the rest: around the incumbent): the prior's
    share of the two kernels' likelihood of the ``top`` configurations (PriorBand's dynamic weighting)."""
    if not top or incumbent == prior:
        return 1.0 if incumbent == prior else 0.5
    lp = [kernel_log_likelihood(t, prior, probs) for t in top]
    li = [kernel_log_likelihood(t, incumbent, probs) for t in top]
    m = max(lp + li)
    sp, si = sum(math.exp(v - m) for v in lp), sum(math.exp(v - m) for v in li)
    return min(max(sp / (sp + si), 0.1), 0.9)  # neither side is ever dropped entirely


def parzen_score(values: dict, good: list[dict], bad: list[dict], probs: dict) -> float:
    """TPE's acquisition: sum over hyperparameters of log l(x) - log g(x), where l and g are Parzen
    estimators (Gaussian kernels on the [0, 1] scale, smoothed counts for unordered choices, each mixed with
    a uniform prior component) of the good and the bad configurations."""
    score = 0.0
    for name, to_unit in probs.items():
        if name not in values:
            continue
        score += math.log(_parzen(values[name], [g[name] for g in good if name in g], to_unit)) - math.log(
            _parzen(values[name], [b[name] for b in bad if name in b], to_unit))
    return score


def _parzen(value, observed: list, to_unit) -> float:
    n = len(observed)
    if to_unit is None:
        return (sum(v == value for v in observed) + 0.5) / (n + 1.0)
    x = to_unit(value)
    bandwidth = max(STEP_SD, 1.0 / (n + 1))
    density = sum(math.exp(-0.5 * ((x - to_unit(v)) / bandwidth) ** 2) / (bandwidth * math.sqrt(2 * math.pi))
                  for v in observed)
    return (density + 1.0) / (n + 1.0)  # the uniform density on [0, 1] as one more observation


# --- the Keras Tuner oracle -----------------------------------------------------------------------------

@functools.cache
def oracle_class():
    """The oracle class (defined on first use: importing Keras Tuner loads TensorFlow)."""
    return _define_oracle()


def _define_oracle():
    import keras_tuner as kt
    from keras_tuner.src.engine import hyperparameters as hp_module

    class PriorBandOracle(kt.oracles.HyperbandOracle):
        """Keras Tuner's ``HyperbandOracle`` with :func:`_random_values` replaced by the mixture above."""

        def __init__(self, *args, constraint=None, validation_images=None, cost=None, **kwargs):
            self.constraint = constraint  # not saved: the tuner sets it again on every start
            self.validation_images = validation_images  # likewise: the images that score a trial (None: unknown)
            self.cost = cost  # likewise: values -> compute (FLOPs per image) or None
            self._draws: dict[str, str] = {}  # trial id -> how its configuration was drawn
            self._rejected = 0
            self._costly = 0
            self._pending_id, self._pending_bracket = None, None
            self.exhausted = None  # why the last trial could not be drawn (None: it could)
            super().__init__(*args, **kwargs)

        # -- state in oracle.json --
        def get_state(self):
            state = super().get_state()
            state[STATE_KEY] = {"draws": dict(self._draws), "rejected": self._rejected, "costly": self._costly}
            return state

        def set_state(self, state):
            super().set_state(state)
            own = state.get(STATE_KEY) or {}
            self._draws = {str(k): str(v) for k, v in (own.get("draws") or {}).items()}
            self._rejected = int(own.get("rejected") or 0)
            self._costly = int(own.get("costly") or 0)

        def _compute_values_hash(self, values):
            return super()._compute_values_hash(tables.hp_values(values))

        def _random_trial(self, trial_id, bracket):
            self._pending_id, self._pending_bracket = trial_id, bracket
            try:
                return super()._random_trial(trial_id, bracket)
            finally:
                self._pending_id = None

        # -- the draw --
        def _random_values(self):
            rng = random.Random(f"{self.seed}:{self._seed_state}")  # str seeds hash the same in every process
            self._seed_state += 1
            first_epochs = (self._get_epochs(self._pending_bracket["bracket_num"], 0) if self._pending_bracket
                            else self.max_epochs)
            cap, cheapest = self._cost_cap(), None  # cheapest: (cost, mode, values) of the over-cap draws
            for _ in range(MAX_ATTEMPTS):
                mode, values = self._propose(rng, first_epochs)
                if values is None or (self._duplicate(values) and mode != "defaults"):
                    continue
                reason = self.constraint(values) if self.constraint else None
                if reason:
                    self._rejected += 1
                    log.info("configuration rejected before training (%s)", reason)
                    continue
                cost = self._cost(values) if cap is not None and mode != "defaults" else None
                if cost is not None and cost > cap:
                    self._costly += 1
                    if cheapest is None or cost < cheapest[0]:
                        cheapest = (cost, mode, values)
                    continue
                return self._chosen(mode, values)
            if cheapest is not None:  # the cap is a preference: every draw over it, take the cheapest
                return self._chosen(cheapest[1], cheapest[2])
            self.exhausted = (f"{MAX_ATTEMPTS} draws in a row were duplicates or rejected"
                              + (" by the constraint (search --max-params): raise it" if self.constraint else ""))
            log.warning("no new configuration: %s", self.exhausted)
            return None

        def _chosen(self, mode: str, values: dict) -> dict:
            self.exhausted = None
            if self._pending_id is not None:
                self._draws[self._pending_id] = mode
            return values

        # -- compute --
        def _cost(self, values: dict) -> float | None:
            try:
                cost = self.cost(values)
            except Exception as exc:  # a configuration that does not build: its trial will say why
                log.debug("no cost for a configuration (%s)", exc)
                return None
            return float(cost) if cost else None

        def _cost_cap(self) -> float | None:
            """:data:`COST_CAP` x the larger of the defaults' and the incumbent's compute (so a search whose
            better configurations are bigger may grow); None without a cost function or a countable default."""
            if self.cost is None:
                return None
            base = self._cost(self._defaults())
            if base is None:
                return None
            incumbent = self._incumbent(self._scored_by_budget())
            best = self._cost(incumbent) if incumbent else None
            return COST_CAP * max(base, best or 0.0)

        def _propose(self, rng: random.Random, first_epochs: int) -> tuple[str, dict | None]:
            prior = self._defaults()
            if not self.trials and not self._duplicate(prior):
                return "defaults", prior
            scored = self._scored_by_budget()
            beaten = self._prior_beaten(scored, prior)
            if (first_epochs >= self.max_epochs and not self._has_run(prior, self.max_epochs)
                    and not (beaten and BEATEN_NO_FULL) and self._competitive(prior, scored)):
                return "defaults", prior  # the defaults at the full budget: what a pick must beat (pick_order)
            share = uniform_share(first_epochs, self.max_epochs, self._get_epochs(self._get_num_brackets() - 1, 0))
            if beaten and first_epochs < self.max_epochs:  # cheap rungs: explore; the full budget: refine
                share = max(share, UNIFORM_PRIOR_BEATEN)
            if rng.random() < share:
                return "uniform", self._uniform(rng)
            incumbent = self._incumbent(scored) or prior
            model_points = max(scored.values(), key=len) if scored else []
            if len(model_points) >= MODEL_MIN_POINTS and rng.random() < MODEL_SHARE:
                return "model", self._model_draw(rng, model_points)
            top = self._top(scored, incumbent)
            weight = prior_weight(top, prior, incumbent, self._probs())
            if rng.random() < (min(weight, PRIOR_BEATEN_WEIGHT) if beaten else weight):
                return "prior", self._local(rng, prior)
            return "incumbent", self._local(rng, incumbent)

        def _defaults(self) -> dict:
            return kt_compat.default_values(self.hyperparameters)

        def _has_run(self, config: dict, epochs: int) -> bool:
            """True when a trial of ``config`` trains (or trained) to ``epochs``, failed ones aside."""
            for trial in self.trials.values():
                values = trial.hyperparameters.values
                if (trial.status not in ("FAILED", "INVALID") and int(values.get("tuner/epochs") or 0) == epochs
                        and tables.hp_values(values) == config):
                    return True
            return False

        def _competitive(self, config: dict, scored: dict) -> bool:
            """True when ``config``, at the highest epoch budget it reached, ranks in the top half of the
            configurations scored there or is within the validation noise of the best (``algorithms.noise``; known
            when ``validation_images`` is): defaults that are clearly poor are not worth a full-budget trial."""
            levels = [e for e, points in scored.items() if any(c == config for _, c in points)]
            if not levels:
                return False
            points = scored[max(levels)]
            rank, score = next((i, sc) for i, (sc, c) in enumerate(points) if c == config)
            if rank < max(2, math.ceil(len(points) * DEFAULTS_KEEP_FRACTION)):
                return True
            margin = self._noise_at(score)
            return margin is not None and points[0][0] - score <= margin

        def _prior_beaten(self, scored: dict, prior: dict) -> bool:
            """True when, at an epoch budget where the defaults were scored, another configuration beat them by
            more than the validation noise (by any margin when ``validation_images`` is unknown): evidence that the
            defaults are poor, so the search leans on uniform draws and the incumbent (PriorBand's answer to a
            misleading prior; measured on synthetic spaces with poor defaults, where local moves around them lost to
            uniform draws)."""
            for points in scored.values():
                mine = next((sc for sc, c in points if c == prior), None)
                if mine is not None and points[0][1] != prior and points[0][0] - mine > (self._noise_at(mine) or 0.0):
                    return True
            return False

        def _noise_at(self, score: float) -> float | None:
            """The validation noise (``algorithms.noise``) at ``score`` (higher-is-better, as ``_scored_by_budget``
            gives it); None when ``validation_images`` is unknown or the score is not an accuracy."""
            accuracy = score if self.objective.direction == "max" else -score
            if not self.validation_images or not 0.0 <= accuracy <= 1.0:
                return None
            return noise(accuracy, self.validation_images)

        def _uniform(self, rng: random.Random) -> dict:
            hps = hp_module.HyperParameters()
            for hp in self.hyperparameters.space:
                hps.merge([hp])
                if hps.is_active(hp):
                    hps.values[hp.name] = hp.random_sample(rng.randrange(2 ** 31))
            return dict(hps.values)

        def _probs(self) -> dict:
            """``{name: value -> [0, 1]}`` for ordered hyperparameters, None for unordered choices."""
            out = {}
            for hp in self.hyperparameters.space:
                if isinstance(hp, hp_module.Fixed):
                    continue
                out[hp.name] = _unit_scale(hp, hp_module)
            return out

        def _scored_by_budget(self) -> dict[int, list[tuple[float, dict]]]:
            """``{epochs: [(score, values)]}`` of completed trials, higher is better, one entry per configuration."""
            sign = 1.0 if self.objective.direction == "max" else -1.0
            out: dict[int, dict[str, tuple[float, dict]]] = {}
            for trial in self.trials.values():
                if trial.status != "COMPLETED" or trial.score is None or not math.isfinite(trial.score):
                    continue
                values = trial.hyperparameters.values
                epochs = int(values.get("tuner/epochs") or self.max_epochs)
                config = tables.hp_values(values)
                key = self._compute_values_hash(config)
                best = out.setdefault(epochs, {}).get(key)
                if best is None or sign * trial.score > best[0]:
                    out[epochs][key] = (sign * trial.score, config)
            return {e: sorted(v.values(), key=lambda sv: -sv[0]) for e, v in out.items()}

        @staticmethod
        def _incumbent(scored) -> dict | None:
            """The best configuration at the highest epoch budget any completed trial reached."""
            if not scored:
                return None
            return scored[max(scored)][0][1]

        @staticmethod
        def _top(scored, incumbent: dict) -> list[dict]:
            """The top configurations (other than the incumbent) of the best-populated epoch budget."""
            if not scored:
                return []
            points = max(scored.values(), key=len)
            k = max(2, round(len(points) * GOOD_FRACTION))
            return [c for _, c in points[:k] if c != incumbent]

        def _local(self, rng: random.Random, centre: dict, changes: int | None = None) -> dict:
            """``centre`` with 1 + Geometric(:data:`MORE_CHANGES`) active hyperparameters moved; values of
            hyperparameters that a move activates come from the centre, else their defaults."""
            hps = hp_module.HyperParameters()
            for hp in self.hyperparameters.space:
                hps.merge([hp])
            tunable = [hp for hp in self.hyperparameters.space if not isinstance(hp, hp_module.Fixed)
                       and hp.name in centre]
            if not tunable:
                return self._uniform(rng)
            if changes is None:
                changes = 1
                while rng.random() < MORE_CHANGES and changes < len(tunable):
                    changes += 1
            changes = min(changes, len(tunable))  # a centre with fewer active knobs than asked (a branch off)
            weights = self._coverage_weights() if COVERAGE else {}
            reach = self._reach() if COVERAGE else {}
            picked = weighted_sample([hp.name for hp in tunable],
                                     [weights.get(hp.name, 1.0) * math.sqrt(reach.get(hp.name, 1)) for hp in tunable],
                                     changes, rng)
            moved = {hp.name: _move(hp, centre[hp.name], rng, hp_module) for hp in tunable if hp.name in picked}
            out = hp_module.HyperParameters()
            for hp in self.hyperparameters.space:
                out.merge([hp])
                if out.is_active(hp):
                    out.values[hp.name] = moved.get(hp.name, centre.get(hp.name, hp.default))
            return dict(out.values)

        def _reach(self) -> dict[str, int]:
            """``{name: 1 + the hyperparameters whose conditions name it}``: a conditional parent (the optimizer
            whose learning rates depend on it, the number of blocks) switches a whole part of the design, so a
            local move picks it in proportion to the square root of the part it controls (on synthetic objectives:
            in proportion to the part itself wasted moves where the knobs that mattered were leaves; the root
            lost nothing there and gained where they were parents); 1 everywhere in a space without conditional
            scopes."""
            reach: dict[str, int] = {}
            for hp in self.hyperparameters.space:
                for condition in getattr(hp, "conditions", None) or []:
                    parent = getattr(condition, "name", None)
                    if parent and parent != hp.name:
                        reach[parent] = reach.get(parent, 1) + 1
            return reach

        def _coverage_weights(self) -> dict[str, float]:
            """``{name: COVERAGE_DECAY ** n}``, n: the local draws so far (prior, incumbent, model) whose configuration
            differs from the defaults in ``name``. With ~30 hyperparameters and a handful of local draws, picking
            uniformly moves some twice and most never (measured: the optimizer and learning rate of poor defaults
            never moved in 5 draws); this spreads the moves over all of them first. Read from the trials, so a
            reloaded search weighs the same."""
            base = self._defaults()
            counts: dict[str, int] = {}
            for tid, mode in self._draws.items():
                trial = self.trials.get(tid)
                if trial is None or mode not in ("prior", "incumbent", "model"):
                    continue
                values = tables.hp_values(trial.hyperparameters.values)
                for name, value in values.items():
                    if name in base and value != base[name]:
                        counts[name] = counts.get(name, 0) + 1
            return {name: COVERAGE_DECAY ** n for name, n in counts.items()}

        def _model_draw(self, rng: random.Random, points: list[tuple[float, dict]]) -> dict:
            """TPE at the best-populated budget: local candidates around good configurations, the one with the
            highest good-to-bad density ratio."""
            n_good = max(2, round(len(points) * GOOD_FRACTION))
            good, bad = [c for _, c in points[:n_good]], [c for _, c in points[n_good:]]
            probs = self._probs()
            candidates = [self._local(rng, rng.choice(good), changes=rng.randint(1, 3)) for _ in range(MODEL_CANDIDATES)]
            fresh = [c for c in candidates if not self._duplicate(c)] or candidates
            return max(fresh, key=lambda c: parzen_score(c, good, bad, probs))

    return PriorBandOracle


def weighted_sample(names: list[str], weights: list[float], k: int, rng: random.Random) -> set[str]:
    """``k`` distinct names, each pick proportional to its weight among those left (Efraimidis-Spirakis keys)."""
    keys = sorted(((rng.random() ** (1.0 / max(w, 1e-9)), n) for n, w in zip(names, weights)), reverse=True)
    return {n for _, n in keys[:k]}


def _unit_scale(hp, hp_module):
    """``value -> [0, 1]`` for an ordered hyperparameter (Int, Float, Boolean, a Choice of numbers); None for a
    Choice of strings (unordered)."""
    if isinstance(hp, hp_module.Choice):
        values = list(hp.values)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return None
        order = sorted(values)
        span = max(len(order) - 1, 1)
        return lambda v: order.index(v) / span if v in order else 0.5
    if isinstance(hp, hp_module.Boolean):
        return lambda v: 1.0 if v else 0.0

    def to_unit(v):
        try:
            return float(hp.value_to_prob(v))
        except (TypeError, ValueError, ZeroDivisionError):
            return 0.5
    return to_unit


def _move(hp, value, rng: random.Random, hp_module):
    """A local move of one hyperparameter away from ``value`` (always to another value when one exists)."""
    if isinstance(hp, hp_module.Boolean):
        return not value
    if isinstance(hp, hp_module.Choice):
        values = list(hp.values)
        others = [v for v in values if v != value]
        if not others:
            return value
        scale = _unit_scale(hp, hp_module)
        if scale is not None and value in values and rng.random() >= CHOICE_WIDE_SHARE:  # ordered: usually a neighbour
            order = sorted(values)
            i = order.index(value)
            neighbours = [order[j] for j in (i - 1, i + 1) if 0 <= j < len(order)]
            return rng.choice(neighbours)
        return rng.choice(others)
    try:
        u = float(hp.value_to_prob(value))
    except (TypeError, ValueError, ZeroDivisionError):
        return hp.random_sample(rng.randrange(2 ** 31))
    wide = rng.random() < WIDE_SHARE  # anywhere in the range: a poor default may be far from the good values
    for _ in range(8):
        v = rng.random() if wide else u + rng.gauss(0.0, STEP_SD)
        v = -v if v < 0 else (2 - v if v > 1 else v)  # reflect at the ends
        new = hp.prob_to_value(min(max(v, 0.0), 1.0 - 1e-9))
        if new != value:
            return new
    return hp.random_sample(rng.randrange(2 ** 31))
