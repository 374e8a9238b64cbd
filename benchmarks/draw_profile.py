"""How far each sampler's new configurations are from the space's defaults, on a real space, without training.

    python -m benchmarks.draw_profile [--space cnn] [--seeds 3] [--trials 20]

For each sampler (priorband, Keras Tuner's Hyperband), ``--trials`` trials per seed through the real oracle
API, scored by a synthetic objective that, as on the built-in spaces, favours the defaults' neighbourhood
(0.88 - 0.01 per top-level hyperparameter changed, plus noise). Prints per sampler: how many top-level
hyperparameters a new configuration changes from the defaults, and its model's parameters against the
defaults' (a proxy for its cost). Nothing is trained; a few seconds per configuration to build the models.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import statistics
import tempfile

SAMPLERS = ("priorband", "hyperband")


def profile(space_name: str, seeds: int, trials: int) -> dict:
    import keras
    import keras_tuner as kt

    from fashion_tuner import algorithms, spaces, tables

    module = spaces.load_space(space_name)
    spaces.set_data_context(spaces.DataContext())
    space = kt.HyperParameters()
    module.build_model(space)
    top = [p.name for p in space.space if not p.conditions]
    defaults = {p.name: p.default for p in space.space}

    def parameters(values: dict) -> int:
        hp = space.copy()
        hp.values = tables.hp_values(values)
        keras.backend.clear_session()
        return module.build_model(hp).count_params()

    base = parameters(defaults)
    out = {}
    for sampler in SAMPLERS:
        changed, ratios = [], []
        for seed in range(seeds):
            oracle = algorithms.module(sampler).build_oracle(
                algorithms.OracleSettings(objective="score", seed=seed, max_epochs=6, factor=3))
            oracle._set_project_dir(tempfile.mkdtemp(), "profile")
            oracle.update_space(space.copy())
            oracle.hyperband_iterations = 100  # sweep on for --trials trials
            rng = random.Random(seed)
            for _ in range(trials):
                with contextlib.redirect_stdout(io.StringIO()):  # Keras Tuner's per-trial display
                    trial = oracle.create_trial("profile")
                    if trial.status != "RUNNING":
                        break
                    values = trial.hyperparameters.values
                    moved = sum(values.get(k) != defaults[k] for k in top)
                    if "tuner/trial_id" not in values:
                        changed.append(moved)
                        ratios.append(parameters(values) / base)
                    oracle.update_trial(trial.trial_id, {"score": 0.88 - 0.01 * moved + 0.005 * rng.random()})
                    trial.status = "COMPLETED"
                    oracle.end_trial(trial)
        n = len(changed)
        out[sampler] = {"configurations": n, "top_level": len(top), "changed_mean": round(statistics.mean(changed), 2),
                        "changed_le_3": round(sum(c <= 3 for c in changed) / n, 3),
                        "params_over_2x": round(sum(r > 2 for r in ratios) / n, 3),
                        "params_ratio_median": round(statistics.median(ratios), 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.draw_profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="cnn")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args(argv)
    for sampler, p in profile(args.space, args.seeds, args.trials).items():
        print(f"{sampler}: {p['configurations']} new configurations; top-level hyperparameters changed from the "
              f"defaults (of {p['top_level']}): mean {p['changed_mean']:.1f}, <= 3 in {p['changed_le_3']:.0%}; "
              f"parameters > 2x the defaults' in {p['params_over_2x']:.0%}, median ratio {p['params_ratio_median']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
