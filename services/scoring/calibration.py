"""What a candidate scoring plan does to the paper's reference customers, before anyone saves it.

Pure: the customers are replayed through `intent.apply_event`, the same step the worker takes,
and read as the score endpoint reads them, so the check cannot drift from what the plan would
really do. Two reference customers (docs/contract.md, "Scoring"):
- calibration: new, with 5 `content.click` and 1 `content.favorite` within a day — the default
  plan puts them at 70 ± 5 (high);
- test drive: new, with a single `test_drive.booked` — the default plan puts them at 85.5 (hot).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from shared.events import Source

from .inputs import ScoringEvent
from .intent import Band, CustomerScore, apply_event, intent_at
from .plan import ScoringPlan

# Decay depends on time differences only: any moment serves as the start of the day.
_DAY_STARTS = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
# Over a working day, the favourite last (hours after the day starts); the same day the unit
# test of the default plan replays (tests/unit/test_scoring_domain.py).
CALIBRATION_DAY: tuple[tuple[str, float], ...] = (
    *(("content.click", 2.0 * n) for n in range(5)),
    ("content.favorite", 11.0),
)
TEST_DRIVE: tuple[tuple[str, float], ...] = (("test_drive.booked", 0.0),)
# The private domain's own channel: a plan that weighs one source up or down shows it here.
REFERENCE_SOURCE = Source.wecom


class Reached(BaseModel):
    intent_pct: float
    band: Band


class PlanCheck(BaseModel):
    """POST /v1/scoring-plan/check: where the reference customers land under a plan."""

    calibration: Reached
    test_drive: Reached


def check_plan(plan: ScoringPlan) -> PlanCheck:
    return PlanCheck(calibration=reached(CALIBRATION_DAY, plan), test_drive=reached(TEST_DRIVE, plan))


def reached(behaviours: tuple[tuple[str, float], ...], plan: ScoringPlan) -> Reached:
    """A new customer's intent right after their last behaviour (type, hours into the day)."""
    state = CustomerScore(customer_id="reference")
    for n, (event_type, hours) in enumerate(behaviours):
        at = _DAY_STARTS + timedelta(hours=hours)
        event = ScoringEvent(
            event_id=f"reference-{n}",
            customer_id=state.customer_id,
            type=event_type,
            source=REFERENCE_SOURCE,
            occurred_at=at,
            received_at=at,
        )
        state = apply_event(state, event, plan)
    last = _DAY_STARTS + timedelta(hours=max(hours for _, hours in behaviours))
    pct, band = intent_at(state, last, plan)
    return Reached(intent_pct=pct, band=band)
