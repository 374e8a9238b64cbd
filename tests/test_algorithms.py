"""The search algorithms (fashion_tuner/algorithms): the registry, Hyperband's arithmetic, and the priorband
sampler through the real Keras Tuner Oracle API on synthetic objectives (no training)."""

from __future__ import annotations

import contextlib
import math
import statistics

import pytest

kt = pytest.importorskip("keras_tuner")

from fashion_tuner import algorithms  # noqa: E402
from fashion_tuner.algorithms import hyperband, priorband  # noqa: E402


def build_space(hp):
    """A 9-hyperparameter space with a conditional one, Keras-example style; its defaults are good."""
    hp.Float("learning_rate", 1e-5, 1e-1, sampling="log", default=1e-3)
    hp.Int("layers", 1, 4, default=2)
    for i in range(4):
        with hp.conditional_scope("layers", list(range(i + 1, 5))):
            hp.Int(f"units_{i}", 16, 512, step=16, default=128)
    hp.Float("dropout", 0.0, 0.6, step=0.1, default=0.2)
    hp.Choice("optimizer", ["adam", "sgd", "rmsprop"], default="adam")
    hp.Boolean("batch_norm", default=True)
    hp.Choice("batch_size", [32, 64, 128, 256], default=64)
    hp.Fixed("classes", 10)
    return hp


def synthetic_score(values: dict, epochs: int, optimum: dict) -> float:
    """A score in (0, 1) that peaks at ``optimum`` (one step from the defaults) and grows with epochs."""
    loss = (math.log10(values["learning_rate"]) - math.log10(optimum["learning_rate"])) ** 2 * 0.02
    loss += abs(values["layers"] - optimum["layers"]) * 0.02
    loss += abs(values["dropout"] - optimum["dropout"]) * 0.05
    loss += 0.0 if values["optimizer"] == optimum["optimizer"] else 0.06
    loss += 0.0 if values["batch_norm"] == optimum["batch_norm"] else 0.03
    loss += abs(math.log2(values["batch_size"]) - math.log2(optimum["batch_size"])) * 0.01
    for i in range(values["layers"]):
        loss += abs(values[f"units_{i}"] - optimum.get(f"units_{i}", 256)) / 512 * 0.02
    return 0.95 - loss - 0.2 / (1 + epochs)


GOOD_OPTIMUM = {"learning_rate": 2e-3, "layers": 2, "dropout": 0.3, "optimizer": "adam", "batch_norm": True,
                "batch_size": 64, "units_0": 256, "units_1": 192}
# Defaults far from the optimum: a good sampler recovers, a prior-only one does not.
BAD_OPTIMUM = {"learning_rate": 3e-2, "layers": 4, "dropout": 0.0, "optimizer": "rmsprop", "batch_norm": False,
               "batch_size": 256, "units_0": 448, "units_1": 448, "units_2": 448, "units_3": 448}


def new_oracle(tmp_path, name="p", tuner="priorband", seed=1, max_epochs=9, factor=3, constraint=None):
    settings = algorithms.OracleSettings(objective="score", direction="max", seed=seed, max_epochs=max_epochs,
                                         factor=factor, max_failures=3, constraint=constraint)
    oracle = algorithms.module(tuner).build_oracle(settings)
    oracle._set_project_dir(str(tmp_path), name)
    oracle.update_space(build_space(kt.HyperParameters()))
    return oracle


def run(oracle, trials: int, optimum=GOOD_OPTIMUM, tuner_id="tuner0") -> list[dict]:
    """Create, score and end up to ``trials`` trials; returns each trial's values (tuner/* included)."""
    seen = []
    for _ in range(trials):
        trial = oracle.create_trial(tuner_id)
        if trial.status != "RUNNING":
            break
        values = dict(trial.hyperparameters.values)
        seen.append(values)
        oracle.update_trial(trial.trial_id, {"score": synthetic_score(values, values.get("tuner/epochs", 9), optimum)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return seen


def config(values: dict) -> dict:
    return {k: v for k, v in values.items() if not k.startswith("tuner/")}


def defaults() -> dict:
    hp = build_space(kt.HyperParameters())
    return {p.name: p.default for p in hp.space if hp.is_active(p)}


def test_registry_names_every_algorithm_once_with_the_default_first():
    assert algorithms.names()[0] == algorithms.DEFAULT == "priorband"
    assert sorted(algorithms.names()) == ["bayesian", "hyperband", "priorband", "random"]
    assert algorithms.is_multi_fidelity("priorband") and algorithms.is_multi_fidelity("hyperband")
    assert not algorithms.is_multi_fidelity("random") and not algorithms.is_multi_fidelity("grid")
    with pytest.raises(KeyError):
        algorithms.module("grid")


@pytest.mark.parametrize("max_epochs,factor", [(6, 3), (20, 3), (4, 2), (9, 3)])
def test_hyperband_bracket_sizes_are_keras_tuners(max_epochs, factor, tmp_path):
    oracle = new_oracle(tmp_path, tuner="hyperband", max_epochs=max_epochs, factor=factor)
    sizes = hyperband.bracket_sizes(max_epochs, factor)
    assert len(sizes) == oracle._get_num_brackets()
    for b, rounds in enumerate(sizes):
        for r, size in enumerate(rounds):
            assert size == oracle._get_size(b, r)
            assert hyperband.round_epochs(max_epochs, factor, b, r) == oracle._get_epochs(b, r)
    one_sweep = run(oracle, 500)
    assert len(one_sweep) == hyperband.expected_trials(algorithms.OracleSettings(max_epochs=max_epochs, factor=factor))


def test_priorband_first_trial_is_the_defaults_and_later_draws_are_valid(tmp_path):
    oracle = new_oracle(tmp_path)
    seen = run(oracle, 40)
    assert config(seen[0]) == defaults()
    space = build_space(kt.HyperParameters())
    hashes = set()
    for values in seen:
        hp = space.copy()
        hp.values = config(values)
        for p in space.space:  # every active hyperparameter set, inactive ones absent, values in range
            active = hp.is_active(p)
            assert (p.name in values) == active, (p.name, values)
            if active and not isinstance(p, kt.engine.hyperparameters.Fixed):
                assert p.value_to_prob(values[p.name]) == pytest.approx(p.value_to_prob(values[p.name]))
                if hasattr(p, "min_value"):
                    assert p.min_value <= values[p.name] <= p.max_value
                if hasattr(p, "values") and isinstance(p.values, list):
                    assert values[p.name] in p.values
        if "tuner/trial_id" not in values:  # a new configuration, never a repeat (but the defaults at full budget)
            key = tuple(sorted(config(values).items()))
            assert key not in hashes or (config(values) == defaults() and values["tuner/epochs"] == 9)
            hashes.add(key)
    assert len(hashes) > 10


def test_priorband_local_draws_stay_near_their_centre(tmp_path):
    oracle = new_oracle(tmp_path)
    run(oracle, 60)
    modes = oracle.get_state()["priorband"]["draws"]
    by_id = {tid: trial.hyperparameters.values for tid, trial in oracle.trials.items()}
    near = [config(by_id[t]) for t, m in modes.items() if m == "prior" and t in by_id]
    uniform = [config(by_id[t]) for t, m in modes.items() if m == "uniform" and t in by_id]
    assert near and uniform
    base = defaults()

    def changed(v):
        return sum(v.get(k) != base.get(k) for k in set(v) | set(base))

    # a prior draw moves one to a few hyperparameters (plus the units of layers it adds or drops); a uniform
    # draw most of them
    assert statistics.median(changed(v) for v in near) <= 3
    assert max(changed(v) for v in near) < len(base)
    assert statistics.median(changed(v) for v in uniform) >= 5


def moved_share(oracle, draws: int = 600) -> dict[str, float]:
    """How often ``draws`` local moves around the defaults (the oracle's state held still) move each hyperparameter
    of the defaults (a value that differs; ``layers`` counted once, not through the units it adds or drops)."""
    import random

    base, rng, counts = defaults(), random.Random(7), {}
    for _ in range(draws):
        values = oracle._local(rng, base)
        for name in base:
            if values.get(name, base[name]) != base[name] and not (name.startswith("units_") and
                                                                    values.get("layers") != base["layers"]):
                counts[name] = counts.get(name, 0) + 1
    return {name: counts.get(name, 0) / draws for name in base if name != "classes"}


def test_priorband_local_moves_go_first_to_what_earlier_moves_left_alone_and_to_conditional_parents(tmp_path,
                                                                                                  monkeypatch):
    """Picked uniformly, the 1-2 hyperparameters of each of a handful of local moves repeat some and miss others
    (on the cnn space, 5 moves of poor defaults never touched the optimizer). A hyperparameter that earlier local
    draws moved is picked a quarter as often per such draw; a conditional parent (``layers``, with 4 units below
    it) about sqrt(5) times as often as a plain one. (Uniform draws off, so that the first draws are local.)"""
    for name in ("UNIFORM_LOW", "UNIFORM_HIGH", "UNIFORM_PRIOR_BEATEN"):
        monkeypatch.setattr(priorband, name, 0.0)
    oracle = new_oracle(tmp_path)
    run(oracle, 1)  # the defaults
    fresh = moved_share(oracle)
    assert fresh["layers"] > 1.6 * statistics.mean(fresh[k] for k in ("dropout", "batch_norm", "optimizer"))
    run(oracle, 2)  # two local draws
    counts = {}
    for tid, mode in oracle.get_state()["priorband"]["draws"].items():
        if mode in ("prior", "incumbent", "model"):
            values = config(oracle.trials[tid].hyperparameters.values)
            for name in ("learning_rate", "dropout", "optimizer", "batch_norm", "batch_size"):
                counts[name] = counts.get(name, 0) + (values.get(name) != defaults()[name])
    moved, left = [k for k, n in counts.items() if n], [k for k, n in counts.items() if not n]
    assert moved and left, counts
    later = moved_share(oracle)
    assert statistics.mean(later[k] for k in moved) < 0.6 * statistics.mean(later[k] for k in left), (counts, later)
    assert statistics.mean(later[k] for k in left) > statistics.mean(fresh[k] for k in left)


def test_priorband_wide_moves_reach_the_far_end_of_a_range(tmp_path):
    """A local move of the learning rate is usually a step (sd 0.15 of the log range: beyond 0.3 of it about 1 in
    20), but :data:`priorband.WIDE_SHARE` of the moves re-draw it anywhere (from the middle of the range, 40 % of
    those land beyond 0.3): poor defaults can be far from good values."""
    import random

    from keras_tuner.src.engine import hyperparameters as hp_module

    hp = build_space(kt.HyperParameters())._hps["learning_rate"][0]
    rng = random.Random(3)
    moves = [priorband._move(hp, 1e-3, rng, hp_module) for _ in range(400)]
    far = sum(abs(hp.value_to_prob(v) - hp.value_to_prob(1e-3)) > 0.3 for v in moves) / len(moves)
    assert 0.09 < far < 0.3, far  # steps only: ~0.05
    assert all(v != 1e-3 for v in moves)


def test_priorband_reload_continues_the_same_sequence(tmp_path):
    straight = run(new_oracle(tmp_path / "a"), 24)
    first = new_oracle(tmp_path / "b")
    half = run(first, 12)
    first.save()
    again = new_oracle(tmp_path / "b")
    again.reload()
    rest = run(again, 12)
    assert half + rest == straight


@pytest.mark.parametrize("tuner", ["priorband", "hyperband"])
def test_seed_0_is_a_seed(tmp_path, tuner):
    """Keras Tuner reads a seed of 0 as "none" and draws a random one: two searches at --seed 0 proposed different
    trials. Both runs here must propose the same configurations."""
    first = run(new_oracle(tmp_path / "a", tuner=tuner, seed=0), 12, BAD_OPTIMUM)
    again = run(new_oracle(tmp_path / "b", tuner=tuner, seed=0), 12, BAD_OPTIMUM)
    assert first == again
    assert len({tuple(sorted(config(v).items())) for v in first}) > 3


def test_keras_tuner_oracles_at_nearby_seeds_draw_independently(tmp_path):
    """Plain Keras Tuner at seeds 5 and 6 on a one-value space: the second search's draws are the first's, shifted
    by one (random.Random(seed + k) per value). Ours, through the same Keras Tuner oracle, share none."""
    def draws(oracle, n=8):
        oracle._set_project_dir(str(tmp_path), f"o{id(oracle)}")
        hp = kt.HyperParameters()
        hp.Float("x", 0.0, 1.0)
        oracle.update_space(hp)
        out = []
        for _ in range(n):
            trial = oracle.create_trial("t0")
            out.append(trial.hyperparameters.values["x"])
            oracle.update_trial(trial.trial_id, {"score": 0.5})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
        return out

    plain = [draws(kt.oracles.RandomSearchOracle(objective=kt.Objective("score", "max"), max_trials=20, seed=s))
             for s in (5, 6)]
    assert plain[0][2:] == plain[1][1:-1]  # trial 0 is the default; then the same stream, one value apart
    def ours(tuner, seed):
        return draws(algorithms.module(tuner).build_oracle(algorithms.OracleSettings(objective="score", seed=seed)))

    for tuner in ("random", "hyperband"):
        five, six = ours(tuner, 5), ours(tuner, 6)
        assert len(set(five[1:])) == 7 and not set(five[1:]) & set(six[1:]), (tuner, five, six)
        assert ours(tuner, 5) == five  # a seed still gives the same search


def best_of(tmp_path, tuner, seed, optimum, trials):
    oracle = new_oracle(tmp_path / f"{tuner}{seed}", tuner=tuner, seed=seed)
    seen = run(oracle, trials, optimum)
    return max(synthetic_score(config(v), 9, optimum) for v in seen)


@pytest.mark.slow
@pytest.mark.parametrize("optimum,margin", [(GOOD_OPTIMUM, 0.0005), (BAD_OPTIMUM, 0.005)], ids=["good", "bad"])
def test_priorband_beats_uniform_hyperband_near_good_defaults_and_recovers_from_bad_ones(tmp_path, optimum, margin):
    """Over 7 seeds and one Hyperband sweep and a half (25 trials): the best configuration's full-budget score
    is higher with priorband than with Keras Tuner's uniform draws (which, at this budget, never beat good
    defaults), and when the defaults are poor it moves away from them (measured: +0.0010 and +0.026; +0.0018 and
    +0.016 before the lowest bracket became all uniform draws)."""
    ours = [best_of(tmp_path, "priorband", s, optimum, 25) for s in range(7)]  # seed 0 included: it is a seed
    theirs = [best_of(tmp_path, "hyperband", s, optimum, 25) for s in range(7)]
    assert statistics.median(ours) - statistics.median(theirs) > margin, (ours, theirs)
    if optimum is BAD_OPTIMUM:  # it left the defaults' neighbourhood
        assert statistics.median(ours) > synthetic_score(defaults(), 9, optimum) + 0.05


def test_priorband_constraint_rejects_without_training_and_does_not_spin(tmp_path):
    rejected = []

    def small_only(values):
        size = sum(values.get(f"units_{i}", 0) for i in range(values["layers"]))
        if size > 300:
            rejected.append(size)
            return f"{size} units > 300"
        return None

    oracle = new_oracle(tmp_path / "c", constraint=small_only)
    seen = run(oracle, 20)
    assert rejected and len(seen) == 20
    assert all(sum(v.get(f"units_{i}", 0) for i in range(v["layers"])) <= 300 for v in seen)
    assert oracle.get_state()["priorband"]["rejected"] == len(rejected)

    nothing = new_oracle(tmp_path / "d", constraint=lambda values: "too big")
    assert run(nothing, 5) == []  # STOPPED at once, not an endless loop
    assert "rejected" in nothing.exhausted and "--max-params" in nothing.exhausted


def test_priorband_weighting_moves_to_the_incumbent_when_it_explains_the_top(tmp_path):
    probs = {"a": lambda v: v, "b": None}
    prior, incumbent = {"a": 0.1, "b": "x"}, {"a": 0.9, "b": "y"}
    near_incumbent = [{"a": 0.85, "b": "y"}, {"a": 0.95, "b": "y"}]
    near_prior = [{"a": 0.12, "b": "x"}, {"a": 0.05, "b": "x"}]
    assert priorband.prior_weight(near_incumbent, prior, incumbent, probs) == pytest.approx(0.1)
    assert priorband.prior_weight(near_prior, prior, incumbent, probs) == pytest.approx(0.9)
    assert priorband.prior_weight([], prior, prior, probs) == 1.0
    assert priorband.uniform_share(1, 27) > priorband.uniform_share(27, 27)


def proposal_modes(oracle, first_epochs: int, draws: int = 300) -> dict[str, float]:
    """The share of each mode among ``draws`` proposals for a bracket starting at ``first_epochs`` (state held)."""
    import random

    rng, counts = random.Random(11), {}
    for _ in range(draws):
        mode = oracle._propose(rng, first_epochs)[0]
        counts[mode] = counts.get(mode, 0) + 1
    return {mode: n / draws for mode, n in counts.items()}


def test_priorband_distrusts_defaults_that_a_trial_beat_beyond_the_noise(tmp_path):
    """The lowest bracket (1 epoch of 9) is all uniform draws besides the defaults. Where the defaults are the
    optimum nothing beats them: the middle bracket (3 epochs) draws uniformly ~57 % of the time, mostly around the
    defaults otherwise, and the full-budget bracket starts with the defaults. Where they are poor, a uniform draw beats
    them beyond the noise of 6,000 images: the middle bracket draws uniformly ~80 %, its local draws go around the
    incumbent, and the defaults get no full-budget trial of their own (fails with ``UNIFORM_PRIOR_BEATEN = 0``)."""
    results = {}
    for name, optimum in (("good", {**defaults(), "units_2": 256, "units_3": 256}), ("poor", BAD_OPTIMUM)):
        settings = algorithms.OracleSettings(objective="score", direction="max", seed=2, max_epochs=9, factor=3,
                                             max_failures=3, validation_images=6000)
        oracle = priorband.build_oracle(settings)
        oracle._set_project_dir(str(tmp_path / name), name)
        oracle.update_space(build_space(kt.HyperParameters()))
        seen = run(oracle, 9, optimum)
        assert [v["tuner/epochs"] for v in seen] == [1] * 9
        assert set(oracle.get_state()["priorband"]["draws"].values()) == {"defaults", "uniform"}
        prior = oracle._defaults()
        results[name] = (oracle._prior_beaten(oracle._scored_by_budget(), prior), proposal_modes(oracle, 3),
                         oracle._propose(__import__("random").Random(1), 9)[0])
    beaten, middle, full = results["good"]
    assert not beaten and 0.45 < middle["uniform"] < 0.7 and middle.get("prior", 0) > 0.2 and full == "defaults"
    beaten, middle, full = results["poor"]
    assert beaten and middle["uniform"] > 0.7 and middle.get("prior", 0) < 0.06 and full != "defaults"


def test_review_recognizes_each_algorithms_oracle_state(tmp_path):
    for tuner in ("priorband", "hyperband", "bayesian"):
        oracle = new_oracle(tmp_path / tuner, tuner=tuner)
        run(oracle, 6)
        name, detail = algorithms.recognize(oracle.get_state())
        assert name == tuner
        if tuner == "priorband":
            assert "defaults" in detail and "draws" in detail


def test_priorband_scores_the_defaults_at_the_full_budget_once(tmp_path):
    oracle = new_oracle(tmp_path)
    seen = run(oracle, 23)  # one sweep of max_epochs 9, factor 3
    full = [v for v in seen if v["tuner/epochs"] == 9 and config(v) == defaults()]
    assert len(full) == 1  # continued there by Hyperband, or drawn again in the full-budget bracket


def ranked(*rows):
    """trial.json dicts, best score first: (trial_id, score, epochs, values)."""
    out = [{"trial_id": tid, "score": score, "status": "COMPLETED",
            "hyperparameters": {"values": {**values, "tuner/epochs": epochs}}} for tid, score, epochs, values in rows]
    return sorted(out, key=lambda t: -t["score"])


def test_pick_order_keeps_the_defaults_unless_beaten_beyond_the_validation_noise():
    state = {"priorband": {"draws": {"0000": "defaults", "0001": "prior", "0002": "prior", "0007": "defaults"}}}
    d, a, b = {"lr": 1e-3}, {"lr": 2e-3}, {"lr": 5e-4}
    trials = ranked(("0000", 0.83, 2, d), ("0007", 0.850, 6, d), ("0001", 0.853, 6, a), ("0002", 0.84, 6, b))
    order, note = priorband.pick_order(state, trials, 6000)  # noise: sqrt(2 * .85 * .15 / 6000) = 0.65 pp, x 1.5
    assert [t["trial_id"] for t in order] == ["0007", "0001", "0002", "0000"]
    assert "stay the pick" in note and "0.98 pp" in note
    trials = ranked(("0000", 0.83, 2, d), ("0007", 0.850, 6, d), ("0001", 0.858, 6, a), ("0002", 0.84, 6, b))
    assert priorband.pick_order(state, trials, 6000)[0][0]["trial_id"] == "0007"  # 0.8 pp: over one SE, not 1.5
    trials = ranked(("0000", 0.83, 2, d), ("0007", 0.850, 6, d), ("0001", 0.860, 6, a), ("0002", 0.84, 6, b))
    order, note = priorband.pick_order(state, trials, 6000)
    assert order[0]["trial_id"] == "0001" and "beat the space's defaults" in note
    assert [t["trial_id"] for t in priorband.pick_order(state, trials, 600)[0]][:1] == ["0007"]  # 600 images: noisier
    # the defaults never reached the highest budget: the scores decide
    trials = ranked(("0000", 0.83, 2, d), ("0001", 0.853, 6, a))
    assert priorband.pick_order(state, trials, 6000) == (trials, None)
    # the time budget cut the defaults' 6-epoch trial at 4 epochs: not compared with 6-epoch scores
    trials = ranked(("0000", 0.83, 2, d), ("0007", 0.8535, 6, d), ("0005", 0.8675, 6, a))
    assert "beat the space's defaults" in priorband.pick_order(state, trials, 6000)[1]  # as if it had 6 epochs
    assert priorband.pick_order(state, trials, 6000, reached={"0007": 4}) == (trials, None)


def test_a_trial_of_fewer_epochs_that_beats_the_defaults_full_budget_score_is_the_pick():
    """Seed 12 of search_value: trial 0008 (the defaults without augmentation), cut by the time budget at 5 of its
    6 epochs, scored 0.8943 against the defaults' 0.8765 at 6 epochs: beating them with a handicap counts (it
    retrained +2.20 pp over them). Within the noise, or below, it does not; the defaults' own lower-rung trial
    never does."""
    state = {"priorband": {"draws": {"0000": "defaults", "0008": "prior"}}}
    d, no_aug = {"augment": True}, {"augment": False}
    trials = ranked(("0000", 0.8202, 2, d), ("0005", 0.8765, 6, d), ("0008", 0.8943, 6, no_aug))
    order, note = priorband.pick_order(state, trials, 6000, reached={"0008": 5})
    assert order[0]["trial_id"] == "0008" and "(0.8943 at 5 epochs) beat the space's defaults" in note
    trials = ranked(("0000", 0.8202, 2, d), ("0005", 0.8765, 6, d), ("0008", 0.8800, 6, no_aug))
    order, note = priorband.pick_order(state, trials, 6000, reached={"0008": 5})
    assert order[0]["trial_id"] == "0005" and "(0008, 0.8800) is within the validation noise" in note
    trials = ranked(("0000", 0.8202, 2, d), ("0005", 0.8765, 6, d), ("0008", 0.8500, 2, no_aug))
    order, note = priorband.pick_order(state, trials, 6000)
    assert order[0]["trial_id"] == "0005" and note.endswith("no other trial scored higher")


def test_pick_order_reads_the_budget_stops_of_the_run_folder(tmp_path):
    from fashion_tuner import budget

    for tid, text in (("0007", '{"epochs_done": 4}'), ("0008", '{"epochs_done": "x"}'), ("0009", "[1]")):
        (tmp_path / f"trial_{tid}").mkdir()
        (tmp_path / f"trial_{tid}" / budget.BUDGET_STOP_FILE).write_text(text)
    (tmp_path / "trial_0010").mkdir()
    (tmp_path / "trial_0010" / budget.BUDGET_STOP_FILE).symlink_to(tmp_path / "trial_0007" / budget.BUDGET_STOP_FILE)
    trials = [{"trial_id": t} for t in ("0007", "0008", "0009", "0010", "0011", "../x")]
    assert algorithms.budget_stopped_epochs(tmp_path, trials) == {"0007": 4}


# ----------------------------------------------------------------------------- spaces the sampler was not tuned on

def tiny_space(hp):
    """Four configurations in all: duplicates run out fast."""
    hp.Boolean("flag", default=False)
    hp.Choice("kind", ["a", "b"], default="b")


def fixed_space(hp):
    """Nothing to search."""
    hp.Fixed("units", 32)
    hp.Fixed("activation", "relu")


def no_defaults_space(hp):
    """No default given anywhere (Keras Tuner's: the minimum, the first choice), log and stepped ranges."""
    hp.Int("filters", 8, 256, sampling="log")
    hp.Int("depth", 1, 7, step=2)
    hp.Float("rate", 1e-6, 1.0, sampling="log")
    hp.Float("drop", 0.05, 0.95, step=0.15)
    hp.Choice("act", ["relu", "gelu", "tanh", "elu", "selu"])
    hp.Choice("width", [3, 5, 7])


def nested_space(hp):
    """A condition under a condition, and a parent whose default switches the whole branch off."""
    hp.Choice("model", ["linear", "tree"], default="linear")
    with hp.conditional_scope("model", ["tree"]):
        hp.Int("trees", 1, 100, default=10)
        hp.Boolean("boost", default=False)
        with hp.conditional_scope("boost", [True]):
            hp.Float("shrink", 0.01, 1.0, sampling="log", default=0.1)
    with hp.conditional_scope("model", ["linear"]):
        hp.Float("l2", 1e-8, 1e-1, sampling="log", default=1e-4)


def hashed_score(values: dict, epochs: int) -> float:
    """A deterministic score in [0.3, 0.9] with no structure the sampler could be tuned to."""
    import hashlib

    key = repr(sorted((k, v) for k, v in values.items() if not k.startswith("tuner/")))
    return 0.3 + 0.5 * int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF + 0.1 * epochs / 9


def odd_oracle(folder, declared, seed=5):
    oracle = priorband.build_oracle(algorithms.OracleSettings(objective="score", direction="max", seed=seed,
                                                              max_epochs=9, factor=3, max_failures=3))
    oracle._set_project_dir(str(folder), "odd")
    oracle.update_space(declared)
    return oracle


def run_hashed(oracle, trials: int) -> list[dict]:
    """Like :func:`run`, scored by :func:`hashed_score`."""
    seen = []
    for _ in range(trials):
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        values = dict(trial.hyperparameters.values)
        seen.append(values)
        oracle.update_trial(trial.trial_id, {"score": hashed_score(values, values.get("tuner/epochs", 9))})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return seen


def assert_valid(declared, values: dict) -> None:
    """Every value in range (on its step), Fixed ones fixed, and active exactly where its conditions hold."""
    hp = declared.copy()
    hp.values = config(values)
    for p in declared.space:
        assert (p.name in values) == hp.is_active(p), (p.name, values)
        if p.name not in values:
            continue
        value = values[p.name]
        if hasattr(p, "min_value"):
            assert p.min_value <= value <= p.max_value, (p.name, value)
            if getattr(p, "step", None) and p.sampling == "linear":
                assert (value - p.min_value) / p.step == pytest.approx(round((value - p.min_value) / p.step))
        elif isinstance(p, kt.engine.hyperparameters.Fixed):
            assert value == p.value
        elif hasattr(p, "values"):
            assert value in p.values


@pytest.mark.parametrize("space", [tiny_space, fixed_space, no_defaults_space, nested_space],
                         ids=lambda f: f.__name__)
def test_priorband_on_spaces_it_was_not_tuned_on_stays_valid_and_never_spins(tmp_path, space):
    """Two Hyperband sweeps' worth of trials on odd spaces: trial 0 is the space's defaults, every value is
    valid and active exactly where its conditions hold, and a space with few or no configurations ends
    (or repeats one) instead of looping; the whole run takes seconds."""
    import signal
    import time

    declared = kt.HyperParameters()
    space(declared)
    oracle = odd_oracle(tmp_path, declared)

    def too_slow(*_):
        raise AssertionError("the sampler spun for 60 s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(60)
    try:
        started = time.monotonic()
        seen = run_hashed(oracle, 50)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert seen and time.monotonic() - started < 30
    assert config(seen[0]) == {p.name: p.default for p in declared.space if declared.is_active(p)}
    for values in seen:
        assert_valid(declared, values)
    distinct = {tuple(sorted(config(v).items())) for v in seen}
    if space is no_defaults_space or space is nested_space:
        assert len(distinct) >= 10  # it explores
    if space is nested_space:
        assert any(v.get("model") == "tree" and v.get("boost") for v in seen)  # reaches the inner branch


def random_space(draw):
    """A Keras Tuner space drawn by Hypothesis: 1-8 hyperparameters of every kind, some conditional on an
    earlier Choice or Boolean, defaults given or not."""
    from hypothesis import strategies as st

    hp = kt.HyperParameters()
    parents = []
    for i in range(draw(st.integers(1, 8))):
        name = f"h{i}"
        parent = draw(st.sampled_from([None, *parents])) if parents else None
        scope = hp.conditional_scope(parent[0], [parent[1]]) if parent else contextlib.nullcontext()
        kind = draw(st.sampled_from(["int", "float", "choice", "bool", "fixed"]))
        with scope:
            if kind == "int":
                low = draw(st.integers(1, 50))
                high = low + draw(st.integers(1, 200))
                log = draw(st.booleans())
                step = None if log else draw(st.sampled_from([None, 1, 2, 5]))
                default = draw(st.one_of(st.none(), st.integers(low, high)))
                if step and default is not None:
                    default = low + (default - low) // step * step
                hp.Int(name, low, high, step=step, sampling="log" if log else "linear", default=default)
            elif kind == "float":
                low = draw(st.sampled_from([1e-6, 1e-3, 0.0, 0.1]))
                high = low + draw(st.sampled_from([0.5, 1.0, 10.0]))
                log = low > 0 and draw(st.booleans())
                default = draw(st.one_of(st.none(), st.floats(low, high)))
                hp.Float(name, low, high, sampling="log" if log else "linear", default=default)
            elif kind == "choice":
                values = draw(st.sampled_from([["a", "b"], ["x", "y", "z", "w"], [16, 32, 64], [0.1, 0.5]]))
                hp.Choice(name, values, default=draw(st.sampled_from([None, *values])))
                if parent is None:
                    parents.append((name, values[-1]))
            elif kind == "bool":
                hp.Boolean(name, default=draw(st.booleans()))
                if parent is None:
                    parents.append((name, True))
            else:
                hp.Fixed(name, draw(st.sampled_from([1, "same", 0.5])))
    return hp


def test_priorband_on_random_spaces_never_crashes_or_proposes_an_invalid_value(tmp_path):
    """Hypothesis draws spaces (FASHION_TUNER_FUZZ_EXAMPLES of them, default 10): 30 trials each through the real
    oracle, every value valid and active exactly where its conditions hold."""
    import os

    from hypothesis import HealthCheck, given, settings, strategies as st

    examples = int(os.environ.get("FASHION_TUNER_FUZZ_EXAMPLES", "10"))
    runs, created = iter(range(10**6)), []

    @settings(max_examples=examples, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.data(), st.integers(0, 2**16))
    def check(data, seed):
        declared = random_space(data.draw)
        seen = run_hashed(odd_oracle(tmp_path / str(next(runs)), declared, seed=seed), 30)
        for values in seen:
            assert_valid(declared, values)
        created.extend(seen)

    check()
    assert len(created) >= 10 * examples  # the spaces were searched, not stopped at once


def test_priorband_redraws_configurations_far_costlier_than_the_defaults_and_the_incumbent(tmp_path):
    """A cost function (here: the units of the active layers) makes draws over COST_CAP x the larger of the
    defaults' and the incumbent's cost be redrawn, counted in ``costly``; none of the search's configurations
    is over the cap unless every attempt was; the sequence still runs to its end."""
    def units(values):
        return sum(values.get(f"units_{i}", 0) for i in range(values["layers"]))

    settings = algorithms.OracleSettings(objective="score", direction="max", seed=3, max_epochs=9, factor=3,
                                         max_failures=3, cost=units)
    oracle = priorband.build_oracle(settings)
    oracle._set_project_dir(str(tmp_path / "cost"), "cost")
    oracle.update_space(build_space(kt.HyperParameters()))
    seen = run(oracle, 23, BAD_OPTIMUM)  # one sweep; the optimum is costly: 4 layers of 448 units
    base = units(defaults())  # 2 x 128
    assert len(seen) == 23 and oracle.get_state()["priorband"]["costly"] > 0
    for i, values in enumerate(seen):  # the incumbent is one of the earlier configurations: the cap is at most
        earlier = max([base] + [units(config(v)) for v in seen[:i]])  # COST_CAP x the costliest of them
        assert units(config(values)) <= priorband.COST_CAP * earlier, (i, values)
    assert "compute redrawn" in priorband.describe(oracle.get_state())
    incumbent = oracle._incumbent(oracle._scored_by_budget())
    assert oracle._cost_cap() == priorband.COST_CAP * max(base, units(incumbent))
    # near good defaults the incumbent stays cheap, so the cap stays near COST_CAP x the defaults' cost: without a
    # cost function a sweep draws several configurations over it (8-11 of 23 at seeds 3-5), with one none
    capped = priorband.build_oracle(settings)
    capped._set_project_dir(str(tmp_path / "capped"), "capped")
    capped.update_space(build_space(kt.HyperParameters()))
    over = priorband.COST_CAP * base
    assert not [v for v in run(capped, 23) if units(config(v)) > over]
    assert len([v for v in run(new_oracle(tmp_path / "free", seed=3), 23) if units(config(v)) > over]) >= 4
    cheap = priorband.build_oracle(algorithms.OracleSettings(objective="score", direction="max", seed=3, max_epochs=9,
                                                             factor=3, max_failures=3, cost=lambda v: 1e9 if v["layers"] > 2 else 1))
    cheap._set_project_dir(str(tmp_path / "cheap"), "cheap")
    cheap.update_space(build_space(kt.HyperParameters()))
    assert all(config(v)["layers"] <= 2 for v in run(cheap, 25))  # 1e9 is over any cap the incumbent can set
