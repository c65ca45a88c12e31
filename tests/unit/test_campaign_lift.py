"""Lift and its 95 % interval (services/campaign/lift.py), against published figures.

Newcombe's hybrid score interval is method 10 of R. G. Newcombe, "Interval estimation for the
difference between independent proportions: comparison of eleven methods", Statistics in
Medicine 17 (1998) 873-890. Its Table II gives each method's limits for eight examples, (a) to
(h), to four decimals: those for method 10 are below. The single-proportion figures are Wilson's
score interval for 81/263 from the companion paper, R. G. Newcombe, "Two-sided confidence
intervals for the single proportion: comparison of seven methods", Statistics in Medicine 17
(1998) 857-872, Table I (method 3).
"""

from __future__ import annotations

import pytest

from services.campaign.lift import Z95, lift_of, wilson_interval
from services.campaign.stats import stats_of

NEWCOMBE_TABLE_II_METHOD_10 = [
    # (x1, n1, x2, n2, low, high)
    (56, 70, 48, 80, 0.0524, 0.3339),  # (a)
    (9, 10, 3, 10, 0.1705, 0.8090),  # (b)
    (6, 7, 2, 7, 0.0582, 0.8062),  # (c)
    (5, 56, 0, 29, -0.0381, 0.1926),  # (d)
    (0, 10, 0, 20, -0.1611, 0.2775),  # (e)
    (0, 10, 0, 10, -0.2775, 0.2775),  # (f)
    (10, 10, 0, 20, 0.6791, 1.0000),  # (g)
    (10, 10, 0, 10, 0.6075, 1.0000),  # (h)
]


@pytest.mark.parametrize(("x1", "n1", "x2", "n2", "low", "high"), NEWCOMBE_TABLE_II_METHOD_10)
def test_the_interval_is_newcombes_method_10(
    x1: int, n1: int, x2: int, n2: int, low: float, high: float
) -> None:
    lift = lift_of(x1, n1, x2, n2)
    assert lift is not None
    assert lift.lift == pytest.approx(x1 / n1 - x2 / n2)
    assert (round(lift.low, 4), round(lift.high, 4)) == (low, high)
    assert -1.0 <= lift.low <= lift.lift <= lift.high <= 1.0


def test_the_wilson_interval_for_one_group() -> None:
    assert round(Z95, 6) == 1.959964
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    # By hand, 0 of n: the lower limit is 0 and the upper z²/(n + z²).
    assert wilson_interval(0, 10) == pytest.approx((0.0, Z95**2 / (10 + Z95**2)), abs=1e-12)


def test_no_lift_without_customers_in_either_group() -> None:
    assert lift_of(3, 10, 0, 0) is None
    assert lift_of(0, 0, 3, 10) is None
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_stats_give_each_variant_its_lift_over_the_holdout() -> None:
    figures = {
        "entered:a": 70,
        "converted:a": 56,
        "entered:b": 10,
        "entered:holdout": 80,
        "converted:holdout": 48,
    }
    groups = stats_of("c", figures).groups
    assert groups["a"].lift == pytest.approx(0.2)
    assert groups["a"].lift_ci95 == (pytest.approx(0.0524, abs=5e-5), pytest.approx(0.3339, abs=5e-5))
    assert groups["b"].lift == pytest.approx(-0.6) and groups["b"].lift_ci95 is not None
    assert (groups["holdout"].lift, groups["holdout"].lift_ci95) == (None, None)
    body = stats_of("c", figures).model_dump(mode="json")["groups"]["a"]
    assert isinstance(body["lift_ci95"], list) and len(body["lift_ci95"]) == 2


def test_stats_without_a_holdout_group_have_no_lift() -> None:
    groups = stats_of("c", {"entered:default": 10, "converted:default": 2}).groups
    assert (groups["default"].lift, groups["default"].lift_ci95) == (None, None)


def test_more_conversions_than_customers_after_a_merge_do_not_break_the_stats() -> None:
    # A survivor's conversion is counted under its own id, its entry under the merged customer's.
    groups = stats_of("c", {"entered:a": 1, "converted:a": 2, "entered:holdout": 2}).groups
    assert groups["a"].lift == pytest.approx(1.0)
    assert (groups["a"].converted, groups["a"].conversion_rate) == (1, 1.0)  # never over 100 %
