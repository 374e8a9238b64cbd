"""fashion_tuner.stats: the one confidence-interval method, against known values."""

import pytest

from fashion_tuner.stats import accuracy_interval, wilson_interval


def test_wilson_matches_the_textbook_value():
    # 81 of 263 (Wilson 1927 / Newcombe 1998, table I: 0.2553-0.3662)
    lo, hi = wilson_interval(81, 263)
    assert lo == pytest.approx(0.2553, abs=1e-4) and hi == pytest.approx(0.3662, abs=1e-4)


def test_wilson_stays_inside_zero_and_one_where_wald_does_not():
    lo, hi = wilson_interval(4000, 4000)
    assert hi == 1.0 and 0.998 < lo < 1.0
    lo, hi = wilson_interval(0, 50)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.05 < hi < 0.08


def test_accuracy_interval_of_a_typical_test_split():
    lo, hi = accuracy_interval(0.9405, 4000)
    assert lo < 0.9405 < hi and hi - lo == pytest.approx(0.0146, abs=0.001)
    with pytest.raises(ValueError):
        wilson_interval(5, 0)
