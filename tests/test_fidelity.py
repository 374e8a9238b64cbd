"""benchmarks/fidelity.py: the rank correlation of low-fidelity scores with a reference fit."""

from __future__ import annotations

import json

import pytest

from benchmarks import fidelity


def test_spearman_interval_brackets_rho_and_detects_a_reversed_ranking():
    up = [0.1 * i for i in range(12)]
    same = fidelity.with_interval(up, [v * 2 + 1 for v in up], seed=1)
    assert same["rho"] == 1.0 and same["low"] > 0.9
    noisy = fidelity.with_interval(up, [0.3, 0.1, 0.5, 0.2, 0.9, 0.4, 0.6, 1.1, 0.7, 0.8, 1.0, 1.2], seed=1)
    assert noisy["low"] <= noisy["rho"] <= noisy["high"] and 0.5 < noisy["rho"] < 1.0
    reversed_ = fidelity.with_interval(up, up[::-1], seed=1)
    assert reversed_["rho"] == -1.0 and reversed_["high"] < -0.9


def test_configurations_are_the_defaults_then_local_and_uniform_draws():
    pytest.importorskip("keras_tuner")
    from fashion_tuner import spaces

    with spaces.using_data_context(spaces.DataContext()):
        configs = fidelity.draw_configurations("mlp", 7, seed=3)
    kinds = [k for k, _ in configs]
    assert kinds == ["defaults", "local", "uniform", "local", "uniform", "local", "uniform"]
    defaults = configs[0][1]
    assert defaults["hidden_layers"] == 2 and defaults["units_0"] == 256
    # hyperparameters a local move changed (those it activates or drops with a parent, e.g. units_3 when
    # hidden_layers goes 2 -> 4, are not moves of their own)
    moved = [sum(v[k] != defaults[k] for k in set(v) & set(defaults)) for kind, v in configs if kind == "local"]
    assert all(1 <= m <= 4 for m in moved), moved
    assert len({json.dumps(v, sort_keys=True) for _, v in configs}) == 7


@pytest.mark.benchmark
@pytest.mark.slow
def test_fidelity_smoke_on_the_mlp_space(data_source, capsys):
    args = ["--space", "mlp", "--configs", "3", "--subset", "600", "--val-size", "0.05", "--low", "1", "--mid", "2",
            "--ref", "2", "--data-dir", str(data_source["dir"])] + (["--skip-md5"] if data_source["skip_md5"] else [])
    assert fidelity.main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["kind"] for r in out["configurations"]] == ["defaults", "local", "uniform"]
    # the defaults learned (chance: 0.1); a uniform draw need not (measured: SGD at 1.5e-4, 0.15 after 2 epochs)
    assert out["configurations"][0]["reference"] > 0.5 and all(0 < r["reference"] <= 1 for r in out["configurations"])
    assert out["low_vs_reference"]["n"] == 3 and 1 <= out["defaults_rank_at_reference"] <= 3
