"""Keras Tuner's random search (``--tuner random``): uniform draws over the space (the defaults first)."""

from __future__ import annotations

NAME = "random"
SUMMARY = "Keras Tuner's random search: uniform draws"
IDENTITY_ARGS: tuple[str, ...] = ()
MULTI_FIDELITY = False
SWEEPS = False
CONSTRAINTS = False  # honours OracleSettings.constraint (search --max-params)


def build_oracle(settings):
    from fashion_tuner.algorithms import keras_tuner_oracle

    return keras_tuner_oracle("RandomSearchOracle", settings, max_trials=settings.max_trials)


def expected_trials(settings) -> int:
    return settings.max_trials


def needed_checkpoints(oracle_state: dict, trials: list[dict]) -> dict[str, str]:
    return {}


def recognizes(oracle_state: dict) -> bool:
    return False  # a RandomSearchOracle adds nothing to the base Oracle's state: review.infer tells it from grid


def describe(oracle_state: dict) -> str:
    return "no oracle state beyond the base Oracle's"
