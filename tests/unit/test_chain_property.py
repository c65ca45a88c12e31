"""The enrichment chain, shaken: any batching, interleaving, redelivery, republication and restart
of the three workers ends where one clean in-order run ends (issue 13, docs/causal-order.md).

A small in-memory pipeline built only from the workers' pure batch steps (`score_batch`,
`tag_batch`, `react_batch`): topics are lists of (key, bytes) per partition, every customer on
the same partition of every topic; each worker reads its input topics from its committed
offsets, decodes them as its agent does, and puts its outputs on the topics. Hypothesis draws
which worker moves next, how a batch is cut from which partitions (as fetches interleave
topics), when offsets are committed, and where a worker dies.

A crash follows the agents' order of effects: Redis (campaign's decisions and conversions),
then the outputs (acknowledged), then the table rows (the changelog is sent last, alone), and
only later the offset commit. So a crash keeps the rows and outputs of the batches handled and
re-reads from the last commit (redeliveries at the same offsets); a crash in the middle of a
batch keeps a prefix of its effects. A producer retry sends a prefix of a batch's outputs twice
(republications at new offsets, which the ledgers catch by id).

What must come out the same, for every customer — merged, survivor or untouched: score,
profile, journey, campaign decisions and conversions. A merge travels as ingest publishes it: on
the events topic, `identity.merged` after the merged customer's events and `identity.joined` in
its place among the survivor's (docs/causal-order.md, "Merges"); the workers' barrier takes the
merged customer's state in exactly there, whichever topic a fetch returned first. The tests at
the end replay the three schedules an earlier design got wrong (a merge read apart from the
merged customer's events, a handover read apart from the survivor's inputs).
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import partial
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.campaign.batch import CampaignHandover, JourneyRecord, TaggedInput, react_batch
from services.campaign.examples import example_campaigns
from services.campaign.journey import Context, Conversion
from services.campaign.targeting import QuietHours
from services.scoring.batch import CustomerRecord, ScoringHandover, score_batch
from services.scoring.inputs import decode_touchpoint
from services.scoring.plan import default_plan
from services.tagging.batch import ProfileRecord, Rules, ScoredInput, TaggingHandover, tag_batch
from services.tagging.rules import RuleSet
from services.tagging.thresholds import TaggingThresholds
from shared.fold import Delivery
from shared.identity import IdentityJoined, IdentityMerged
from shared.topics import SCORED_INPUTS, TAGGED_INPUTS, TOUCHPOINT_EVENTS
from tests.factories import published

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
START = NOW - timedelta(hours=2)  # the first input's time; one minute between inputs
PLAN = default_plan()
RULES = Rules(TaggingThresholds(), RuleSet(version=0))
# No quiet hours (start == end): a deferral would wait for a tick, which this pipeline has none of.
CONTEXT = Context(campaigns=example_campaigns(), now=NOW, quiet=QuietHours(time(0, 0), time(0, 0)))
PARTITIONS = 3
SCORING_HANDOVERS, TAGGING_HANDOVERS, CAMPAIGN_HANDOVERS = (
    "pd-scoring-handovers",
    "pd-tagging-handovers",
    "pd-campaign-handovers",
)
IDS = uuid.UUID("6f1c1f0e-1d3a-4e0b-9d51-3c8f0b1a7e42")  # namespace: the same ids on every run

# --- Scenarios -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Touch:
    kind: str
    source: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class Merge:
    merged: str
    survivor: str


@dataclass(frozen=True)
class Scenario:
    customers: tuple[str, ...]
    # Ingest's acceptance order: (customer, touch) for an event, a Merge for the merge.
    accepted: tuple[tuple[str, Touch] | Merge, ...]
    merge: Merge | None


def _touch(kind: str, source: str = "wecom", **properties: Any) -> st.SearchStrategy[Touch]:
    return st.just(Touch(kind, source, properties))


def _content(kind: str) -> st.SearchStrategy[Touch]:
    return st.sampled_from(["rational", "emotional"]).map(
        lambda point: Touch(kind, "wecom", {"content_id": f"c-{point}", "value_point": point})
    )


MODELS = st.sampled_from(["G6", "X9"])
# The event types the three workers react to: consent, orientation, the ladder, bands, triggers.
TOUCHES: st.SearchStrategy[Touch] = st.one_of(
    _touch("wecom.friend_added"),
    _content("content.click"),
    _content("content.favorite"),
    MODELS.map(lambda model: Touch("test_drive.booked", "wecom", {"vehicle_model": model})),
    _touch("store.visit", "dealer_store", dealer_id="d-1"),
    st.sampled_from(["price", "need_mismatch"]).map(
        lambda reason: Touch("lead.defeated", "call_center", {"reason": reason})
    ),
    _touch("consent.revoked", channel="wecom"),
    _touch("community.post", "app"),
    MODELS.map(lambda model: Touch("order.placed", "dealer_store", {"vehicle_model": model})),
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    customers = tuple(f"cus-{i}" for i in range(draw(st.integers(3, 8))))
    histories = {c: draw(st.lists(TOUCHES, max_size=5)) for c in customers}
    # Customers' events interleaved in a drawn acceptance order, each customer's in its own order.
    slots = draw(st.permutations([c for c in customers for _ in histories[c]]))
    taken = dict.fromkeys(customers, 0)
    accepted: list[tuple[str, Touch] | Merge] = []
    for customer in slots:
        accepted.append((customer, histories[customer][taken[customer]]))
        taken[customer] += 1
    merge = None
    if draw(st.integers(0, 2)) > 0:  # most examples merge two customers; shrinks to none
        merged, survivor = draw(st.permutations(customers))[:2]
        merge = Merge(merged, survivor)
        # After every event of the merged customer: ingest re-keys their later ones to the survivor.
        earliest = max((i + 1 for i, a in enumerate(accepted) if a[0] == merged), default=0)
        accepted.insert(draw(st.integers(earliest, len(accepted))), merge)
    return Scenario(customers, tuple(accepted), merge)


# --- The broker --------------------------------------------------------------------------------


def partition_of(key: str) -> int:
    # Stable across processes (unlike hash()): a customer has one partition on every topic.
    return zlib.crc32(key.encode()) % PARTITIONS


@dataclass(frozen=True, slots=True)
class Record:
    key: str
    value: bytes
    seq: int  # when it was appended, over all topics: the order a clean run reads in


class Broker:
    def __init__(self) -> None:
        self.topics: dict[str, list[list[Record]]] = {}
        self.appended = 0

    def partitions(self, topic: str) -> list[list[Record]]:
        return self.topics.setdefault(topic, [[] for _ in range(PARTITIONS)])

    def append(self, topic: str, key: str, value: bytes) -> None:
        self.partitions(topic)[partition_of(key)].append(Record(key, value, self.appended))
        self.appended += 1


def publish(scenario: Scenario, broker: Broker) -> None:
    """What ingest puts on the broker, in acceptance order: a merge as its two records."""
    for i, accepted in enumerate(scenario.accepted):
        at = START + timedelta(minutes=i)
        if isinstance(accepted, Merge):
            merge = IdentityMerged(
                merge_id=str(uuid.uuid5(IDS, f"merge-{i}")),
                merged_customer_id=accepted.merged,
                survivor_customer_id=accepted.survivor,
                identities={"phone": ["h"]},
                merged_at=at,
            )
            joined = IdentityJoined(
                merge_id=merge.merge_id,
                customer_id=accepted.survivor,
                merged_customer_id=accepted.merged,
                joined_at=at,
            )
            broker.append(TOUCHPOINT_EVENTS, accepted.merged, merge.model_dump_json().encode())
            broker.append(TOUCHPOINT_EVENTS, accepted.survivor, joined.model_dump_json().encode())
            continue
        customer, touch = accepted
        event_id = str(uuid.uuid5(IDS, f"event-{i}"))
        event = published(event_id, customer, touch.kind, touch.source, at.isoformat(), touch.properties)
        broker.append(TOUCHPOINT_EVENTS, customer, orjson.dumps(event))


# --- The workers -------------------------------------------------------------------------------

Place = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True)
class Effect:
    """One thing a batch makes durable: a Redis write, an output record or a table row."""

    kind: str  # "redis", "output" or "row"
    apply: Callable[[], None]


def decision_key(decision: Any) -> tuple[str, str, str, str, str | None, str | None]:
    return (
        decision.action_id,
        decision.campaign_id,
        decision.customer_id,
        decision.outcome,
        decision.reason,
        decision.content_id,
    )


@dataclass
class Worker:
    """One stream worker: its batch step, its table (the changelog) and its offsets."""

    name: str
    decoders: dict[str, Callable[[bytes], Any]]  # input topic -> how the agent decodes it
    step: Callable[[list[Delivery[Any]], Callable[[str], Any]], Any]
    chain_topic: str | None
    handovers_topic: str
    table: dict[str, Any] = field(default_factory=dict)
    committed: dict[Place, int] = field(default_factory=dict)  # next offset to read
    position: dict[Place, int] = field(default_factory=dict)
    decisions: set[tuple[str, str, str, str, str | None, str | None]] = field(default_factory=set)
    conversions: set[Conversion] = field(default_factory=set)

    def pending(self, broker: Broker) -> list[Place]:
        return [
            (topic, p)
            for topic in self.decoders
            for p, records in enumerate(broker.partitions(topic))
            if self.position.get((topic, p), 0) < len(records)
        ]

    def read(self, broker: Broker, place: Place, count: int) -> list[Delivery[Any]]:
        topic, p = place
        start = self.position.get(place, 0)
        records = broker.partitions(topic)[p][start : start + count]
        self.position[place] = start + len(records)
        decode = self.decoders[topic]
        return [
            Delivery(f"{topic}/{p}", start + i, decode(record.value), record.value)
            for i, record in enumerate(records)
        ]

    def effects(self, broker: Broker, deliveries: list[Delivery[Any]], resent: int) -> list[Effect]:
        """The batch's effects in the order the agent makes them durable; `resent` outputs are
        sent twice (a producer retry after a send it could not confirm)."""
        outcome = self.step(deliveries, self.table.get)
        effects: list[Effect] = []
        # Campaign writes decisions and conversions to Redis first (sets: idempotent).
        for decision in getattr(outcome, "decisions", ()):
            effects.append(Effect("redis", lambda d=decision: self.decisions.add(decision_key(d))))
        for conversion in getattr(outcome, "conversions", ()):
            effects.append(Effect("redis", lambda c=conversion: self.conversions.add(c)))
        outputs = [
            Effect("output", partial(broker.append, self.chain_topic or "", cid, value))
            for cid, value in getattr(outcome, "chain", ())
        ]
        for handover in outcome.handovers:
            raw = handover.model_dump_json().encode()
            send = partial(broker.append, self.handovers_topic, handover.customer_id, raw)
            outputs.append(Effect("output", send))
        effects += outputs[:resent] + outputs
        # The changelog goes last, alone: a row is durable only once the outputs are.
        for customer_id, row in outcome.records.items():
            effects.append(Effect("row", partial(self.table.__setitem__, customer_id, row)))
        return effects

    def commit(self) -> None:
        self.committed = dict(self.position)

    def restart(self) -> None:
        """A crash: the table is what the changelog holds; reading resumes at the last commit."""
        self.position = dict(self.committed)


def workers() -> tuple[Worker, Worker, Worker]:
    scoring = Worker(
        "scoring",
        {
            TOUCHPOINT_EVENTS: decode_touchpoint,
            SCORING_HANDOVERS: ScoringHandover.model_validate_json,
        },
        lambda deliveries, row_of: score_batch(deliveries, row_of, PLAN, NOW),
        SCORED_INPUTS,
        SCORING_HANDOVERS,
    )
    tagging = Worker(
        "tagging",
        {
            SCORED_INPUTS: ScoredInput.model_validate_json,
            TAGGING_HANDOVERS: TaggingHandover.model_validate_json,
        },
        lambda deliveries, row_of: tag_batch(deliveries, row_of, RULES, NOW),
        TAGGED_INPUTS,
        TAGGING_HANDOVERS,
    )
    campaign = Worker(
        "campaign",
        {
            TAGGED_INPUTS: TaggedInput.model_validate_json,
            CAMPAIGN_HANDOVERS: CampaignHandover.model_validate_json,
        },
        lambda deliveries, row_of: react_batch(deliveries, row_of, CONTEXT),
        None,
        CAMPAIGN_HANDOVERS,
    )
    return scoring, tagging, campaign


def handle(worker: Worker, broker: Broker, deliveries: list[Delivery[Any]]) -> None:
    for effect in worker.effects(broker, deliveries, resent=0):
        effect.apply()


# --- The two runs ------------------------------------------------------------------------------


def clean_run(scenario: Scenario) -> tuple[Worker, Worker, Worker]:
    """The reference: one input per batch, each worker drains its inputs in the order they were
    appended (its handovers as soon as it produced them), then the next worker starts."""
    broker = Broker()
    publish(scenario, broker)
    pipeline = workers()
    for worker in pipeline:
        while pending := worker.pending(broker):

            def first(place: Place, worker: Worker = worker) -> tuple[bool, int]:
                topic, p = place
                seq = broker.partitions(topic)[p][worker.position.get(place, 0)].seq
                return (topic != worker.handovers_topic, seq)

            handle(worker, broker, worker.read(broker, min(pending, key=first), 1))
            worker.commit()
    return pipeline


def shaken_run(scenario: Scenario, data: st.DataObject) -> tuple[Worker, Worker, Worker]:
    """The same inputs through a drawn schedule of batches, commits and crashes, then drained."""
    broker = Broker()
    publish(scenario, broker)
    pipeline = workers()
    for _ in range(data.draw(st.integers(0, 40), label="steps")):
        worker = data.draw(st.sampled_from(pipeline), label="worker")
        move = data.draw(st.sampled_from(["batch", "batch", "batch", "commit", "crash"]), label="move")
        if move == "commit":
            worker.commit()
            continue
        if move == "crash":
            worker.restart()
            continue
        deliveries: list[Delivery[Any]] = []
        for _ in range(data.draw(st.integers(1, 3), label="fetched partitions")):
            if not (pending := worker.pending(broker)):
                break
            place = data.draw(st.sampled_from(pending), label="partition")
            deliveries += worker.read(broker, place, data.draw(st.integers(1, 4), label="records"))
        if not deliveries:
            continue
        resent = data.draw(st.integers(0, 3), label="resent") if data.draw(st.integers(0, 4)) == 0 else 0
        effects = worker.effects(broker, deliveries, resent)
        dies = data.draw(st.integers(0, 4), label="dies mid-batch") == 0
        kept = data.draw(st.integers(0, len(effects)), label="effects kept") if dies else len(effects)
        for effect in effects[:kept]:
            effect.apply()
        if dies:
            worker.restart()
    drain(pipeline, broker)
    return pipeline


def drain(pipeline: tuple[Worker, ...], broker: Broker) -> None:
    """No more trouble: each worker reads all it has, a topic's partitions one after another."""
    while any(worker.pending(broker) for worker in pipeline):
        for worker in pipeline:
            while pending := worker.pending(broker):
                handle(worker, broker, [d for place in pending for d in worker.read(broker, place, 1_000)])
                worker.commit()


# --- What is compared --------------------------------------------------------------------------


def score_of(worker: Worker, customer_id: str) -> tuple[Any, ...] | None:
    record: CustomerRecord | None = worker.table.get(customer_id)
    if record is None:
        return None
    s = record.score
    models = {model: round(value, 6) for model, value in sorted(s.model_scores.items())}
    return (
        round(s.intent_score, 6),
        models,
        s.score_at,
        s.points,
        s.growth,
        s.last_interaction_at,
        record.merged_into,
    )


def profile_of(worker: Worker, customer_id: str) -> tuple[Any, ...] | None:
    record: ProfileRecord | None = worker.table.get(customer_id)
    if record is None:
        return None
    p = record.profile
    pct = round(p.intent_pct, 2) if p.intent_pct is not None else None
    return (p.layer, p.orientation, p.stage, p.tags, pct, record.merged_into)


def decisions_of(worker: Worker, customer_id: str) -> set[tuple[Any, ...]]:
    return {d for d in worker.decisions if d[2] == customer_id}


def conversions_of(worker: Worker, customer_id: str) -> set[Conversion]:
    return {c for c in worker.conversions if c.customer_id == customer_id}


def journey_of(worker: Worker, customer_id: str) -> tuple[Any, ...] | None:
    record: JourneyRecord | None = worker.table.get(customer_id)
    if record is None:
        return None
    j = record.journey
    return (j.view, j.pacing, j.dealer_id, j.scheduled, j.touches, record.merged_into)


def touches_of(scenario: Scenario, customers: set[str]) -> Iterator[Touch]:
    return (a[1] for a in scenario.accepted if not isinstance(a, Merge) and a[0] in customers)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is deterministic
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios(), data=st.data())
def test_any_schedule_ends_where_one_clean_in_order_run_ends(scenario: Scenario, data: st.DataObject) -> None:
    clean = clean_run(scenario)
    shaken = shaken_run(scenario, data)
    (scoring, tagging, campaign), (scoring_, tagging_, campaign_) = clean, shaken
    for customer in scenario.customers:
        assert score_of(scoring_, customer) == score_of(scoring, customer), customer
        assert profile_of(tagging_, customer) == profile_of(tagging, customer), customer
        assert journey_of(campaign_, customer) == journey_of(campaign, customer), customer
        assert decisions_of(campaign_, customer) == decisions_of(campaign, customer), customer
        assert conversions_of(campaign_, customer) == conversions_of(campaign, customer), customer
    if (merge := scenario.merge) is not None:
        # The merged customer ends empty and pointing at the survivor, in every worker.
        for worker in (*clean, *shaken):
            assert worker.table[merge.merged].merged_into == merge.survivor, worker.name


# --- Found by the property, once: replays of two input topics in another order ---------------
#
# The agents send a batch's outputs before its changelog rows (so that a row is never durable
# without its outputs); a crash in between loses the rows and the batch is re-read from the last
# commit. Downstream, ledgers drop the replay's outputs as duplicates by input id, which is right
# only if the replay makes the same outputs. When merges came on their own topic and a handover
# was applied as soon as it was read, a replay could read two topics in another order and make
# other outputs under the same ids. These were the three schedules that showed it.

CUSTOMERS = ("cus-0", "cus-1", "cus-3")
POST = Touch("community.post", "app", {})
BOOKED = Touch("test_drive.booked", "wecom", {"vehicle_model": "G6"})
FAVORITE = Touch("content.favorite", "wecom", {"content_id": "c-rational", "value_point": "rational"})


def torn_scoring_run(scenario: Scenario, batches: list[tuple[list[Place], bool]]) -> tuple[Worker, ...]:
    """Scoring reads `batches` (one record per place; True: dies after the outputs, before the
    rows), then every worker drains."""
    broker = Broker()
    publish(scenario, broker)
    pipeline = workers()
    scoring = pipeline[0]
    for places, dies in batches:
        deliveries = [d for place in places for d in scoring.read(broker, place, 1)]
        for effect in scoring.effects(broker, deliveries, resent=0):
            if not (dies and effect.kind == "row"):
                effect.apply()
        if dies:
            scoring.restart()
    drain(pipeline, broker)
    return pipeline


def events_of(customer_id: str) -> Place:
    return (TOUCHPOINT_EVENTS, partition_of(customer_id))


def test_a_merge_is_never_read_before_the_merged_customers_events() -> None:
    # Once: scoring read the merge before cus-1's post, handed over cus-1's empty score and died
    # before the row; the replay read the post first, and cus-0 dropped the second handover as a
    # duplicate. Now the merge comes after the post on the same partition.
    merge = Merge("cus-1", "cus-0")
    scenario = Scenario(CUSTOMERS, (("cus-1", POST), merge), merge)
    shaken = torn_scoring_run(scenario, [([events_of("cus-1"), events_of("cus-1")], True)])
    assert score_of(shaken[0], "cus-0") == score_of(clean_run(scenario)[0], "cus-0")


def test_an_event_sent_on_and_replayed_is_applied_once() -> None:
    # Once: scoring passed cus-1's post on and died before the row; read on its own topic, the
    # merge came next and the replayed post was handed on to cus-0 as a late input, so tagging
    # and campaign applied it to cus-1 and again to cus-0. Now the replay reads the post first.
    merge = Merge("cus-1", "cus-0")
    scenario = Scenario(CUSTOMERS, (("cus-1", POST), merge), merge)
    shaken = torn_scoring_run(scenario, [([events_of("cus-1")], True), ([events_of("cus-1")], False)])
    clean = clean_run(scenario)
    assert shaken[1].table["cus-0"].profile.interactions == clean[1].table["cus-0"].profile.interactions
    assert shaken[2].decisions == clean[2].decisions


def test_a_handover_read_before_the_survivors_input_still_comes_in_at_its_place() -> None:
    # Once: scoring folded cus-3's score into cus-0 as soon as it read the handover, died before
    # the row, and the replay read cus-0's favourite first; downstream kept the first
    # "merged:<merge id>" and the last score it saw lacked cus-3's test drive. Now the handover
    # waits for cus-0's `identity.joined`, after the favourite, on both runs.
    merge = Merge("cus-3", "cus-0")
    scenario = Scenario(CUSTOMERS, (("cus-3", BOOKED), ("cus-0", FAVORITE), merge), merge)
    handovers = (SCORING_HANDOVERS, partition_of("cus-0"))
    batches = [([events_of("cus-3"), events_of("cus-3")], False), ([handovers], True)]
    shaken = torn_scoring_run(scenario, batches)
    assert profile_of(shaken[1], "cus-0") == profile_of(clean_run(scenario)[1], "cus-0")
