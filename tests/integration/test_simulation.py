"""The simulator against the session's real stack (issue 17, item 7): what the platform's funnel
API reports for the simulated customers agrees with the ground truth they were generated from:
friend → deal, lead → deal and the recall rates within 0.3 percentage points.
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
                # Counts are of distinct customers to ±0.8% (one standard error): lead_capture,
                # ~800 of 1,500 customers, carries ~0.6 pp of it, so it gets 5 of those; the
                # issue's rates have small numerators, near exact, and get the 0.3 pp.
                allowed = 3.0 if rate == "lead_capture" else 0.3
                assert got is not None and generated is not None and abs(got - generated) <= allowed, (
                    rate,
                    got,
                    generated,
                )

        eventually(agrees, timeout=90, interval=1)  # within pytest-timeout's 120 s: its own message
