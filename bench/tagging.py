"""Tagging worker throughput benchmark (a benchmark, not a test: it prints figures, asserts nothing).

Method (bench/worker_bench.py, shared with bench.scoring). The bench starts its own Tansu broker
and redis-server on free ports, creates the contract topics with 3 partitions and pre-loads
scored.inputs.v1 — what tagging reads, along the enrichment chain — with N contract-valid
ingested events over C customers, keyed by customer_id, each with a score as scoring passes it
on (`as_scored_input`). Then, one process at a time, each with a fresh consumer group, it lets a worker work
through that backlog and polls its /metrics every 0.2 s:
- bare: bench/bare_worker.py, Faust taking the raw bytes in batches with no state (the issue's
  second reference), so that on a shared or noisy machine tagging/bare is the figure to compare;
- tagging: ONE `python -m services.tagging.worker`, with the tests' short group timeouts, the
  rules in Redis none (the built-in tag families only).
Throughput = inputs taken between the first poll that saw any and the poll that saw all, over
the time between them; worker CPU seconds over the same window, hence events per CPU-second.
After the tagging run: Redis memory per profile = used_memory after minus before (an empty
Redis) divided by the profiles in pd:tagging:seg:all, with the mean MEMORY USAGE of a sample of
profile keys and the segment sets' total per profile; the changelog and profile.tags.v1 records
it wrote per event; and how the profiles came out (layers, orientations, stages, tags), to show
that the events formed tags.

Events: scoring's mix of every contract type (bench.worker_bench), plus what tagging reads:
content views, clicks, favourites and shares mostly carry a `value_point` (each customer leans
rational or emotional to their own degree), often `topics` (one or two from a small vocabulary,
mostly the customer's two favourites) and sometimes `price_related: true`; live watches sometimes
carry topics; their duration_s (20 s to an hour) and the amounts of mall purchases and
maintenance come with the contract's required properties.

Issue target: >= 8,000 events/s for one worker process on a 2-core machine.

Run from the repository root as `.venv/bin/python -m bench.tagging`, with bench.scoring's flags
(--events, --customers, --batch-max-events, --no-bare, --profile PATH to run the tagging worker
under cProfile; --help lists them all); the worker's other settings come from the environment.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file (python bench/tagging.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from bench.worker_bench import ReadModel, WorkerBench, main
from services.tagging.read_model import ALL, DIMENSIONS, PREFIX, TAG_NAMES, profile_key, segment_key
from services.tagging.settings import TaggingSettings
from services.tagging.thresholds import VALUE_POINT_WEIGHTS
from shared.topics import PROFILE_TAGS, SCORED_INPUTS
from tests.tagging_worker import tagging_env

TOPICS = ("tech", "design", "family", "travel", "performance", "safety", "outdoor", "anime")
CONTENT_TYPES = frozenset(VALUE_POINT_WEIGHTS)  # the types whose value_point counts for orientation


class ContentProperties:
    """The properties tagging reads, for `generate`: per customer a leaning (the chance that a
    content interaction is rational) and two favourite topics, drawn on first use."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed + 1)
        self._traits: dict[int, tuple[float, tuple[str, ...]]] = {}

    def _of(self, customer: int) -> tuple[float, tuple[str, ...]]:
        if customer not in self._traits:
            leaning = self._rng.betavariate(0.7, 0.7)  # most customers lean clearly one way
            self._traits[customer] = (leaning, tuple(self._rng.sample(TOPICS, 2)))
        return self._traits[customer]

    def __call__(self, rng: random.Random, customer: int, event_type: str) -> dict[str, Any]:
        content = event_type in CONTENT_TYPES
        if not content and event_type != "live.watch":
            return {}
        leaning, favourites = self._of(customer)
        properties: dict[str, Any] = {}
        if content and rng.random() < 0.85:
            properties["value_point"] = "rational" if rng.random() < leaning else "emotional"
        if rng.random() < (0.6 if content else 0.4):
            picks = 1 if rng.random() < 0.6 else 2
            chosen = {
                rng.choice(favourites) if rng.random() < 0.75 else rng.choice(TOPICS) for _ in range(picks)
            }
            properties["topics"] = sorted(chosen)
        if content and rng.random() < 0.12:
            properties["price_related"] = True
        return properties


def as_scored_input(event: dict[str, Any]) -> dict[str, Any]:
    """An event as scoring passes it on: with the customer's score after it (one in five high)."""
    pct = 70.0 if int(event["event_id"][:8], 16) % 5 == 0 else 20.0
    score = {
        "intent_score": pct / 4,
        "intent_pct": pct,
        "band": "high" if pct >= 60 else "low",
        "activity": "active_7d",
        "points": 0,
        "growth": 0,
        "level": "member",
    }
    return {
        "type": "chain.input",
        "input_id": event["event_id"],
        "customer_id": event["customer_id"],
        "received_at": event["received_at"],
        "schema_version": 1,
        "event": event,
        "score": score,
    }


def profiles(client: redis.Redis) -> list[str]:
    """How the profiles came out: customers per layer, orientation and stage, and per tag."""
    lines = []
    for dimension, values in DIMENSIONS.items():
        found = [(value, int(client.scard(segment_key(dimension, value)))) for value in values]
        lines.append(f"Profiles by {dimension}: " + ", ".join(f"{value} {n:,}" for value, n in found) + ".")
    names = sorted(name.decode() for name in client.smembers(TAG_NAMES))
    tags = sorted(
        ((name, int(client.scard(segment_key("tag", name)))) for name in names), key=lambda t: -t[1]
    )
    given = sum(n for _, n in tags)
    everyone = max(int(client.scard(ALL)), 1)
    top = ", ".join(f"{name} {n:,}" for name, n in tags[:16])
    lines.append(
        f"Tags: {len(tags)} kinds, {given / everyone:.2f} per profile; most common: {top or 'none'}."
    )
    return lines


TAGGING = WorkerBench(
    service="tagging",
    env=tagging_env,
    default_batch=TaggingSettings.model_fields["batch_max_events"].default,
    table="profiles",
    output=PROFILE_TAGS,
    read_model=ReadModel(
        unit="profile",
        counted_by="profiles: SCARD pd:tagging:seg:all",
        count=lambda client: client.scard(ALL),
        key_pattern=profile_key("*"),
        key_name="profile JSON key",
        shared_name="segment sets (pd:tagging:seg:*)",
        shared_keys=lambda client: sorted(client.scan_iter(match=f"{PREFIX}seg:*", count=5000)),
    ),
    extra=ContentProperties,
    notes=profiles,
    input_topic=SCORED_INPUTS,
    as_input=as_scored_input,
)

if __name__ == "__main__":
    raise SystemExit(main(TAGGING))
