"""The simulator against the session's real stack (issue 17, item 7): what the platform's funnel
API reports for the simulated customers agrees with the ground truth they were generated from,
each rate within what counting distinct customers (±0.8%) allows at this scale.
(`pd-simulate --customers 50000 --compare` does the same at the issue's scale; the README has a
run.)"""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from stack.simulate import CHINA, ground_truth, paths, post, reported
from tests.conftest import OPS_TOKEN, RunningService
from tests.factories import unique
from tests.harness import eventually

pytestmark = pytest.mark.integration


def test_the_funnel_api_agrees_with_the_simulators_ground_truth(
    client: httpx.Client, tagging: RunningService
) -> None:
    simulated = paths(1500, seed=11)
    truth = ground_truth(simulated)
    defeated = [p for p in simulated if "lead.defeated" in p.steps]
    wholes = {  # each rate's denominator, in customers
        "lead_capture": len(simulated),
        "friend_to_deal": sum("wecom.friend_added" in p.steps for p in simulated),
        "lead_to_deal": sum("ad.lead_form" in p.steps for p in simulated),
        "recall": len(defeated),
        "recall_to_order": sum("test_drive.booked" in p.steps for p in defeated),
    }
    dealer = unique("d-sim")
    day = datetime.now(CHINA).date()
    post(client, simulated, dealer, rate=0)
    headers = {"Authorization": f"Bearer {OPS_TOKEN}"}
    with httpx.Client(base_url=tagging.api_url, headers=headers, timeout=30) as api:

        def agrees() -> None:
            group = reported(api, dealer, day)
            assert group is not None
            for rate, generated in truth.items():
                got = group["rates"][rate]
                assert got is not None and generated is not None
                assert abs(got - generated) <= allowed(generated, wholes[rate]), (rate, got, generated)

        eventually(agrees, timeout=90, interval=1)  # within pytest-timeout's 120 s: its own message


def allowed(rate_pct: float, whole: int) -> float:
    """How far a reported rate may be from the generated one at this test's small scale: three
    standard errors of the distinct counts (±0.8% each of numerator and denominator) and one
    customer. At the issue's 50,000 customers that is within its 0.3 pp for friend → deal, lead →
    deal and recall (`pd-simulate --customers 50000 --compare`, README)."""
    return 3 * rate_pct * 0.0081 * 2**0.5 + 100 / whole
