"""benchmarks/sampler_synthetic.py: the samplers' picks on synthetic objectives (real Keras Tuner oracles, no
training)."""

from __future__ import annotations

import json
import statistics

import pytest

pytest.importorskip("keras_tuner")

from benchmarks import render_extra, sampler_synthetic  # noqa: E402


def test_every_case_builds_a_space_whose_defaults_score_as_the_case_says():
    import keras_tuner as kt

    scores = {}
    for case in [c for c in sampler_synthetic.CASES if not c.startswith("random")]:
        hp = sampler_synthetic.build_space(kt.HyperParameters(), case)
        defaults = {p.name: p.default for p in hp.space if hp.is_active(p)}
        names = {p.name for p in hp.space}
        assert ("lr_sgd" in names) == case.startswith("nested") and len(defaults) == 25
        scores[case] = sampler_synthetic.true_score(defaults, 6)
    assert scores["flat-good"] - scores["flat-poor"] > 0.04 and scores["nested-good"] == scores["flat-good"]


def test_random_spaces_differ_by_seed_and_their_poor_defaults_score_lower():
    """Each seed draws another space (sizes, kinds, conditional parts); its defaults are valid values, and the poor
    variant's score lower than the good one's wherever the most important term is active at them (every seed)."""
    import keras_tuner as kt

    from fashion_tuner import kt_compat

    shapes, gaps = set(), []
    for seed in range(1, 21):
        scores = []
        for case in ("random-good", "random-poor"):
            build, score = sampler_synthetic.objective(case, seed)
            hp = build(kt.HyperParameters())
            values = kt_compat.default_values(hp)
            for p in hp.space:  # each default is a value its hyperparameter can take
                if p.name in values and type(p).__name__ == "Choice":
                    assert values[p.name] in p.values
            scores.append(score(values, 6))
        shapes.add(tuple(sorted((p.name, type(p).__name__) for p in hp.space)))
        gaps.append(scores[0] - scores[1])
    assert len(shapes) == 20 and min(gaps) > 0.01, gaps  # measured: 1.2-6.0 pp


def test_priorband_leaves_poor_defaults_and_the_table_shows_each_arm(capsys):
    gains = [sampler_synthetic.one_search("priorband", "nested-poor", seed, 10) for seed in (1, 2, 3)]
    assert statistics.median(gains) > 1.0, gains  # its optimizer and learning rate are wrong by ~6 pp
    assert sampler_synthetic.main(["--seeds", "1", "--trials", "4"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out["cases"]) == set(sampler_synthetic.CASES)
    assert all(set(arms) == set(sampler_synthetic.ARMS) for arms in out["cases"].values())
    lines = render_extra.sampler_synthetic_lines({**out, "status": "ok", "suite": "smoke", "rerun": "x"})
    assert sum(line.startswith("| nested-poor | ") for line in lines) == len(sampler_synthetic.ARMS)
    assert sampler_synthetic.main(["--seeds", "0"]) == 2
