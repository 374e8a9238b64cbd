"""Keras Tuner's random search (``--tuner random``): uniform draws over the space (the defaults first)."""

from __future__ import annotations

NAME = "random"
SUMMARY = "Keras Tuner's random search: uniform draws"
IDENTITY_ARGS: tuple[str, ...] = ()
MULTI_FIDELITY = False
SWEEPS = False
CONSTRAINTS = False  # honours OracleSettings.constraint (search --max-params)


def build_oracle(settings):
    import keras_tuner as kt

    from fashion_tuner import kt_compat

    oracle = kt.oracles.RandomSearchOracle(
        objective=kt.Objective(settings.objective, settings.direction), max_trials=settings.max_trials,
        seed=settings.seed, max_consecutive_failed_trials=settings.max_failures)
    kt_compat.defaults_first(oracle)
    return oracle


def expected_trials(settings) -> int:
    return settings.max_trials


def needed_checkpoints(oracle_state: dict, trials: list[dict]) -> dict[str, str]:
    return {}


def recognizes(oracle_state: dict) -> bool:
    return False  # a RandomSearchOracle adds nothing to the base Oracle's state: review.infer tells it from grid


def describe(oracle_state: dict) -> str:
    return "no oracle state beyond the base Oracle's"
