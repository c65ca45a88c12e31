"""Replays after SIGKILL must not double any count or change any profile (issue 4, item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import crash
from tests.tagging_worker import TAGGING_WORKER, replay_in_domain, tagging_feed

pytestmark = pytest.mark.timeout(400)

CUSTOMERS, MERGES = 300, 12


@pytest.fixture(scope="module")
def undisturbed(log_dir: Path) -> tuple[list[crash.Record], crash.RunReport]:
    feed = tagging_feed(seed=5, events=6000, customers=CUSTOMERS, merges=MERGES, owners=40)
    return feed, crash.run(TAGGING_WORKER, feed, log_dir, kills=0, seed=5)


def profiles(state: dict) -> dict:
    return {key: value for key, value in state.items() if not key.startswith("segment ")}


def test_an_undisturbed_worker_ends_where_the_domain_alone_does(undisturbed) -> None:
    feed, calm = undisturbed
    expected = replay_in_domain(feed)
    assert len(expected) == CUSTOMERS
    assert sum(1 for p in expected.values() if p.get("merged_into")) == MERGES
    assert {p.get("layer") for p in expected.values()} >= {"prospect", "intent", "owner"}
    got = profiles(calm.state)
    different = [c for c in expected if got.get(c) != expected[c]]
    assert got.keys() == expected.keys() and not different, (
        f"{len(different)} differ, e.g. {different[:1]}: {[(got.get(c), expected[c]) for c in different[:1]]}"
    )
    # The segment sets agree with the profiles.
    live = [p for p in expected.values() if not p.get("merged_into")]
    assert len(calm.state["segment pd:tagging:seg:all"]) == len(live)
    owners = sorted(p["customer_id"] for p in live if p["layer"] == "owner")
    assert calm.state["segment pd:tagging:seg:layer:owner"] == owners


def test_a_killed_and_restarted_tagging_worker_ends_where_an_undisturbed_one_does(
    undisturbed, log_dir: Path
) -> None:
    feed, calm = undisturbed
    crashed = crash.run(TAGGING_WORKER, feed, log_dir, kills=2, seed=5, expect=calm.state)
    crash.assert_same_state(calm, crashed)
