"""Confidence intervals for accuracies: one method everywhere (the report, the benchmarks, their tables).

Wilson's score interval for a binomial proportion (Wilson 1927): ``correct`` of ``n`` test images
right. Unlike the Wald interval (acc +- 1.96 sqrt(acc(1-acc)/n)) it stays inside [0, 1] and keeps its
coverage near 0 and 1; unlike a bootstrap it is exact arithmetic, the same on every run.
"""

from __future__ import annotations

import math

CI_LEVEL = 0.95
CI_METHOD = "Wilson"  # the name tables print in their header
Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """``(low, high)`` of the 95 % Wilson score interval of ``correct / n`` (both in 0-1).

    ``correct``: number right (0..n); ``n``: number of test images (> 0).
    """
    if n <= 0:
        raise ValueError(f"n must be positive, not {n}")
    if not 0 <= correct <= n:
        raise ValueError(f"correct must be between 0 and n={n}, not {correct}")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_interval(accuracy: float, n: int) -> tuple[float, float]:
    """The Wilson interval of an accuracy measured on ``n`` images (``accuracy * n`` rounded to a count)."""
    return wilson_interval(int(round(accuracy * n)), n)
