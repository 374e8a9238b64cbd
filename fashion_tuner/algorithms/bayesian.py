"""Keras Tuner's Bayesian optimisation (``--tuner bayesian``): a Gaussian process over the space after
``3 x (number of hyperparameters)`` random trials (the space's defaults first)."""

from __future__ import annotations

NAME = "bayesian"
SUMMARY = "Keras Tuner's Bayesian optimisation (Gaussian process after 3 x d random trials)"
IDENTITY_ARGS: tuple[str, ...] = ()
MULTI_FIDELITY = False
SWEEPS = False
CONSTRAINTS = False  # honours OracleSettings.constraint (search --max-params)


def build_oracle(settings):
    from fashion_tuner.algorithms import keras_tuner_oracle

    return keras_tuner_oracle("BayesianOptimizationOracle", settings, max_trials=settings.max_trials)


def expected_trials(settings) -> int:
    return settings.max_trials


def needed_checkpoints(oracle_state: dict, trials: list[dict]) -> dict[str, str]:
    return {}


def recognizes(oracle_state: dict) -> bool:
    return "num_initial_points" in oracle_state


def describe(oracle_state: dict) -> str:
    return (f"num_initial_points {oracle_state.get('num_initial_points')}, alpha {oracle_state.get('alpha')}, "
            f"beta {oracle_state.get('beta')}")
