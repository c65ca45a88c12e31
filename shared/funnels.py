"""Funnel figures by cohort, as the services keep them and the tagging API reads them: the
milestones, the rates the paper reports, what an input counts, and where the counts live.

A **cohort** is a China day and a **group** one of `by`: customers by acquisition `source` and
by `dealer` are counted by tagging (the cohort: the day of their first input;
services/tagging/funnel_figures.py); customers by `campaign` by campaign (the cohort: the day the
campaign first acted for them, its holdout left out; services/campaign/journey.py). Counts are
of distinct customers (shared/distinct_counts.py), so counting again changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from shared.redis import KEY_PREFIX

MILESTONES = ("entered", "friend_added", "lead", "store_visit", "test_drive", "order", "defeated", "recalled")
By = Literal["source", "campaign", "dealer"]
# The service whose key space holds a group's counts.
_KEEPER: dict[str, str] = {"source": "tagging", "dealer": "tagging", "campaign": "campaign"}

# The rates the paper reports: (name, numerator, denominator), numerator a pair or a milestone.
RATES: tuple[tuple[str, str, str], ...] = (
    ("lead_capture", "entered>lead", "entered"),  # 留资率
    ("store_visit", "lead>store_visit", "lead"),  # 到店率
    ("friend_to_deal", "friend_added>order", "friend_added"),  # paper: 3.15%
    ("lead_to_deal", "lead>order", "lead"),  # paper: 6.91%
    ("recall", "defeated>recalled", "defeated"),  # paper: 15%
    ("recall_to_order", "recalled>order", "recalled"),  # paper: 40% of the recalled
)
PAIRS = frozenset(numerator for _, numerator, _ in RATES if ">" in numerator)
FIGURES = (*MILESTONES, *sorted(PAIRS))


@dataclass(frozen=True, slots=True)
class FunnelTouch:
    """A customer counted for a figure (a milestone or a pair) of a cohort day and group."""

    day: str
    by: By
    value: str
    figure: str
    customer_id: str


def newly_counted(new: Collection[str], held: Collection[str]) -> list[str]:
    """The figures reaching the `new` milestones counts, holding `held` (the new ones included):
    each new milestone, and each pair it completes."""
    pairs = []
    for pair in sorted(PAIRS):
        first, second = pair.split(">")
        if first in held and second in held and (first in new or second in new):
            pairs.append(pair)
    return [*(m for m in MILESTONES if m in new), *pairs]


def figure_key(day: str, by: By, value: str, figure: str) -> str:
    return f"{KEY_PREFIX}{_KEEPER[by]}:funnel:{day}:{by}:{value}:{figure}"


def values_key(by: By) -> str:
    """The set of a kind's groups seen (sources, dealers, campaigns), so a query never scans."""
    return f"{KEY_PREFIX}{_KEEPER[by]}:funnel:values:{by}"


def touch_members(touches: Iterable[FunnelTouch]) -> list[tuple[str, str]]:
    """(count's key, customer) of each touch: what shared/distinct_counts.py adds."""
    return [(figure_key(t.day, t.by, t.value, t.figure), t.customer_id) for t in touches]


def group_names(touches: Iterable[FunnelTouch]) -> list[tuple[str, str]]:
    """The groups the touches name, to remember."""
    return [(values_key(t.by), t.value) for t in touches]
