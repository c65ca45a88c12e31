"""No lost and no doubled actions after a kill mid-stream (issue 5, item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import crash
from tests.campaign_worker import CAMPAIGN_WORKER, campaign_feed

pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def undisturbed(log_dir: Path) -> tuple[tuple[list[crash.Record], int], crash.RunReport]:
    # Friendships and first profiles are taken before anything else (see crash.run's warmup).
    feed, warmup = campaign_feed(seed=3, customers=150, steps=4000)
    return (feed, warmup), crash.run(CAMPAIGN_WORKER, feed, log_dir, kills=0, seed=3, warmup=warmup)


def test_the_undisturbed_run_acts_and_suppresses(undisturbed) -> None:
    _, calm = undisturbed
    records = [r for key, rs in calm.state.items() if key.endswith(":actions") for r in rs]
    outcomes = {(r["campaign_id"], r["outcome"], r["reason"]) for r in records}
    assert ("hot-lead-to-dealer", "sent", None) in outcomes
    assert ("xpeng-high-intent-group", "suppressed", "holdout") in outcomes
    assert any(reason == "no_consent" for _, _, reason in outcomes)
    assert any(key.split(":")[-2] == "converted" or ":converted:" in key for key in calm.state)
    assert calm.published, "community posts earn points: grants on the events topic"


def test_a_killed_and_restarted_campaign_worker_decides_exactly_the_same(undisturbed, log_dir: Path) -> None:
    (feed, warmup), calm = undisturbed
    crashed = crash.run(CAMPAIGN_WORKER, feed, log_dir, kills=2, seed=3, expect=calm.state, warmup=warmup)
    crash.assert_same_state(calm, crashed)
    # Points granted: the same grants, by event id, as the undisturbed run — a grant published
    # again by a replay has the same id, which scoring credits once (tests/integration/test_points.py).
    assert crashed.published == calm.published
