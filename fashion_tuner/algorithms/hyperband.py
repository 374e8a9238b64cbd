"""Keras Tuner's own Hyperband (``--tuner hyperband``): brackets of successive halving, every new
configuration a uniform draw (after the space's defaults as trial 0)."""

from __future__ import annotations

import math

NAME = "hyperband"
SUMMARY = "Keras Tuner's Hyperband: successive halving over uniform random draws"
IDENTITY_ARGS = ("factor",)
MULTI_FIDELITY = True
SWEEPS = True
CONSTRAINTS = False  # honours OracleSettings.constraint (search --max-params)


def build_oracle(settings):
    """A Keras Tuner ``HyperbandOracle`` (one sweep; a time budget adds sweeps: ``algorithms.set_sweeps``)."""
    from fashion_tuner.algorithms import keras_tuner_oracle

    return keras_tuner_oracle("HyperbandOracle", settings, max_epochs=settings.max_epochs, factor=settings.factor,
                              hyperband_iterations=1)


def bracket_sizes(max_epochs: int, factor: int) -> list[list[int]]:
    """``[[trials in each round] for each bracket]``, bracket 0 first (Keras Tuner 1.4.8's formulas:
    ``HyperbandOracle._get_num_brackets`` and ``_get_size``)."""
    brackets, epochs = 0, max_epochs
    while epochs >= 1:
        epochs /= factor
        brackets += 1
    end_size = math.ceil(1 + math.log(max_epochs, factor))
    return [[math.ceil(end_size / (b + 1) * factor ** (b - r)) for r in range(b + 1)] for b in range(brackets)]


def round_epochs(max_epochs: int, factor: int, bracket_num: int, round_num: int) -> int:
    """Cumulative epochs a trial of round ``round_num`` of bracket ``bracket_num`` trains to (``_get_epochs``)."""
    return math.ceil(max_epochs / factor ** (bracket_num - round_num))


def expected_trials(settings) -> int:
    """Trials in one sweep of brackets."""
    return sum(sum(rounds) for rounds in bracket_sizes(settings.max_epochs, settings.factor))


def needed_checkpoints(oracle_state: dict, trials: list[dict]) -> dict[str, str]:
    """Trials of round r of a bracket whose round r+1 is not yet full: the oracle may still continue them."""
    why: dict[str, str] = {}
    try:
        sizes = bracket_sizes(int(oracle_state["max_epochs"]), int(oracle_state["factor"]))
    except (KeyError, TypeError, ValueError):
        return why
    for bracket in oracle_state.get("brackets") or []:
        if not isinstance(bracket, dict):
            continue
        rounds, num = bracket.get("rounds") or [], bracket.get("bracket_num")
        if not isinstance(num, int) or not 0 <= num < len(sizes):
            continue
        for r in range(min(len(rounds), len(sizes[num])) - 1):
            if len(rounds[r + 1]) < sizes[num][r + 1]:
                for info in rounds[r]:
                    if isinstance(info, dict):
                        why.setdefault(str(info.get("id")), f"Hyperband may continue it (bracket {num}, round {r + 1})")
    return why


def recognizes(oracle_state: dict) -> bool:
    return "brackets" in oracle_state


def describe(oracle_state: dict) -> str:
    return (f"max_epochs {oracle_state.get('max_epochs')}, factor {oracle_state.get('factor')}, "
            f"{oracle_state.get('hyperband_iterations')} iteration(s)")
