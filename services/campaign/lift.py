"""Lift: how much better a variant converts than the holdout, with a 95 % confidence interval.

Pure. The interval is Newcombe's hybrid score interval for the difference of two independent
proportions (R. G. Newcombe, "Interval estimation for the difference between independent
proportions: comparison of eleven methods", Statistics in Medicine 17, 873-890, 1998: method
10): each group's conversion rate gets its Wilson score interval, and the difference's limits
combine the distances from each rate to its own limits. Chosen over the Wald interval because
conversions (store visits, orders) are rare and a campaign's groups start small: there Wald's
interval is too narrow, can leave [-1, 1] and collapses to a point at a rate of 0, while
Newcombe's keeps close to 95 % coverage.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt
from statistics import NormalDist

Z95 = NormalDist().inv_cdf(0.975)  # 1.95996...: two-sided 95 %


@dataclass(frozen=True, slots=True)
class Lift:
    """A variant's conversion rate minus the holdout's, as a fraction, and its 95 % interval."""

    lift: float
    low: float
    high: float


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for the proportion successes / trials (trials > 0)."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0, not {successes}/{trials}")
    rate = successes / trials
    shrink = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / shrink
    half = z / shrink * sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def lift_of(converted: int, entered: int, holdout_converted: int, holdout_entered: int) -> Lift | None:
    """The group's rate minus the holdout's with Newcombe's interval; None when either group is
    empty (there is no rate to compare)."""
    if entered == 0 or holdout_entered == 0:
        return None
    rate, baseline = converted / entered, holdout_converted / holdout_entered
    low1, high1 = wilson_interval(converted, entered)
    low2, high2 = wilson_interval(holdout_converted, holdout_entered)
    lift = rate - baseline
    low = lift - sqrt((rate - low1) ** 2 + (high2 - baseline) ** 2)
    high = lift + sqrt((high1 - rate) ** 2 + (baseline - low2) ** 2)
    # The limits lie in [-1, 1] by construction; clamping only removes rounding at the edges
    # (a rate of 1 against 0 gives 1.0000000000000002).
    return Lift(lift, max(-1.0, low), min(1.0, high))
