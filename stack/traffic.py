"""Realistic customer journeys as touchpoint events, deterministic for a seed.

A journey follows the whitepaper's funnel (docs/domain.md): an ad click lands on a mini-program,
most people add a brand consultant on WeCom, read and click rational or emotional content on
their topics, some configure a car, ask for a quote (leaving a phone number), book and take a
test drive, visit a store, order — or are lost to a rival (`lead.defeated`), and a few of those
come back. Owners refer friends and post in the community.

Some people arrive "unlinked": the ad click carries only a mini-program openid, the WeCom add
only an external userid, official-account reads only a unionid — three customers, until a later
event carries two of these identifiers together and ingest merges them.

Plain functions returning event dicts in the contract's envelope (docs/contract.md), reusable by tests:
    journeys(count, seed, now) -> list[Journey];  in_time_order(journeys) -> list[dict]
"""

from __future__ import annotations

import random
import string
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

CHINA = timezone(timedelta(hours=8))
MAX_AGE = timedelta(days=6)  # journeys begin within the last days ...
NEWEST = timedelta(minutes=1)  # ... and end a little before `now`, never in the future

VEHICLE_MODELS = ("id4", "id6", "id7", "id3")
DEALERS = ("d-sh-001", "d-sh-002", "d-bj-001", "d-gz-001", "d-cd-001", "d-hz-001")
TOPICS = ("tech", "range", "safety", "design", "family", "outdoor", "smart_cockpit", "acg", "price")
DEFEAT_REASONS = ("bought_competitor", "budget", "postponed", "no_response", "prefers_ice")
PHONE_PREFIXES = ("138", "139", "135", "186", "158", "188")


@dataclass(frozen=True)
class Content:
    content_id: str
    value_point: str  # rational | emotional
    topics: tuple[str, ...]
    price_related: bool = False


CONTENT = (
    Content("c-spec-001", "rational", ("tech", "range")),
    Content("c-range-winter-test", "rational", ("range", "tech")),
    Content("c-ncap-safety", "rational", ("safety",)),
    Content("c-smart-cockpit-demo", "rational", ("smart_cockpit", "tech")),
    Content("c-compare-rivals", "rational", ("tech", "price"), price_related=True),
    Content("c-finance-offer", "rational", ("price",), price_related=True),
    Content("c-charging-guide", "rational", ("range",)),
    Content("c-owner-story", "emotional", ("family",)),
    Content("c-roadtrip-vlog", "emotional", ("outdoor", "family")),
    Content("c-design-film", "emotional", ("design",)),
    Content("c-acg-collab", "emotional", ("acg", "design")),
    Content("c-camping-kit", "emotional", ("outdoor",)),
    Content("c-launch-lucky-draw", "emotional", ("price",), price_related=True),
)


@dataclass
class Person:
    """One real person with their identifiers in each channel (before any resolution)."""

    key: str
    unionid: str
    openid: str
    wecom_id: str
    app_user_id: str
    orientation: str
    interests: tuple[str, ...]
    model: str
    dealer: str
    engagement: float  # 0..1: how far down the funnel this person tends to go
    unlinked: bool  # identifiers arrive separately and are only linked later (identity merges)
    phone: str | None = None
    dealer_lead_id: str | None = None
    adds_wecom: bool = True


@dataclass
class Journey:
    person: str  # the generator's own key for the person (not a customer id)
    events: list[dict[str, Any]] = field(default_factory=list)


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits + "_-", k=length))


def _phone(rng: random.Random) -> str:
    digits = "".join(rng.choices(string.digits, k=8))
    return f"+86 {rng.choice(PHONE_PREFIXES)} {digits[:4]} {digits[4:]}"


def _person(rng: random.Random, index: int) -> Person:
    orientation = "rational" if rng.random() < 0.55 else "emotional"
    return Person(
        key=f"person-{index:04d}",
        unionid="o6_" + _token(rng, 25),
        openid="oMP" + _token(rng, 25),
        wecom_id="wm" + _token(rng, 30),
        app_user_id=f"app-{rng.randrange(10**9):09d}",
        orientation=orientation,
        interests=tuple(rng.sample(TOPICS, rng.choice((1, 2, 2, 3)))),
        model=rng.choice(VEHICLE_MODELS),
        dealer=rng.choice(DEALERS),
        engagement=rng.random(),
        unlinked=rng.random() < 0.22,
        adds_wecom=rng.random() < 0.85,
    )


class _Builder:
    """Collects one person's steps; identities follow from the channel and what is linked yet."""

    def __init__(self, rng: random.Random, person: Person) -> None:
        self.rng = rng
        self.person = person
        self.steps: list[tuple[str, str, dict[str, str], dict[str, Any]]] = []
        self.linked = not person.unlinked  # unionid known in every WeChat channel

    def add(self, type_: str, source: str, identities: dict[str, str] | None = None, **props: Any) -> None:
        self.steps.append((type_, source, identities or self.identities(source), props))

    def identities(self, source: str) -> dict[str, str]:
        p = self.person
        if source in ("ad", "mini_program"):
            return {"openid": p.openid, "unionid": p.unionid} if self.linked else {"openid": p.openid}
        if source == "wecom":
            return {"wecom_external_userid": p.wecom_id}
        if source == "dealer_store":
            assert p.phone and p.dealer_lead_id, "store events follow a quote, which collects the phone"
            return {"dealer_lead_id": p.dealer_lead_id, "phone": p.phone}
        if source == "app":
            assert p.phone, "the app signs in by phone, and only owners use it here"
            return {"app_user_id": p.app_user_id, "phone": p.phone}
        return {"unionid": p.unionid}  # official_account, video_channel, live_stream

    def content(self, count: int) -> None:
        for _ in range(count):
            item = self._pick_content()
            type_ = self.rng.choices(
                ("content.view", "content.click", "content.favorite", "content.share"), (5, 4, 1.2, 0.6)
            )[0]
            sources = ("wecom", "official_account", "mini_program", "video_channel")
            source = self.rng.choice(sources if self.person.adds_wecom else sources[1:])
            props: dict[str, Any] = {
                "content_id": item.content_id,
                "value_point": item.value_point,
                "topics": list(item.topics),
                "vehicle_model": self.person.model,
            }
            if item.price_related:
                props["price_related"] = True
            self.add(type_, source, **props)

    def _pick_content(self) -> Content:
        p = self.person
        own = [c for c in CONTENT if c.value_point == p.orientation]
        pool = own if self.rng.random() < 0.75 else list(CONTENT)
        liked = [c for c in pool if set(c.topics) & set(p.interests)]
        return self.rng.choice(liked if liked and self.rng.random() < 0.7 else pool)


def _steps(rng: random.Random, person: Person) -> _Builder:
    b = _Builder(rng, person)
    _arrive(b)
    _nurture(b)
    _funnel(b)
    return b


def _arrive(b: _Builder) -> None:
    """Public-domain ad → private domain (WeCom); unlinked people get linked here, with merges."""
    rng, p = b.rng, b.person
    b.add(
        "ad.click",
        "ad",
        campaign=f"moments-{p.model}",
        placement=rng.choice(("moments", "channels", "douyin")),
    )
    if rng.random() < 0.15:  # some do leave a phone number on the ad's form (留资)
        p.phone = _phone(rng)
        b.add("ad.lead_form", "ad", b.identities("ad") | {"phone": p.phone}, form="test-drive-gift")
    if p.adds_wecom:
        # Linked people's WeCom contact carries the unionid (official account bound); others' not yet.
        ids = {"wecom_external_userid": p.wecom_id} | ({} if p.unlinked else {"unionid": p.unionid})
        b.add("wecom.friend_added", "wecom", ids, staff_id=f"sa-{rng.randint(1, 40):03d}", channel="ad_qr")
    if p.unlinked:
        # Reads on the official account: only the unionid is known there.
        b.add("content.view", "official_account", **_props(rng, "rational"))
        if p.adds_wecom:
            # The consultant's WeCom tool resolves the contact's unionid: first merge.
            b.add("wecom.message_in", "wecom", {"wecom_external_userid": p.wecom_id, "unionid": p.unionid})
        b.add("content.click", "official_account", **_props(rng, p.orientation))
        # The person authorises the mini-program: openid and unionid together, another merge.
        b.add("mini_program.visit", "mini_program", {"openid": p.openid, "unionid": p.unionid}, page="home")
        b.linked = True


def _nurture(b: _Builder) -> None:
    """Content on the person's orientation and topics, live streams, coupons, groups."""
    rng, p = b.rng, b.person
    b.content(rng.randint(2, 5) + int(p.engagement * 10))
    if rng.random() < 0.25:
        b.add("live.watch", rng.choice(("live_stream", "video_channel")), duration_s=rng.randint(60, 3600))
    if rng.random() < 0.15:
        b.add("coupon.claimed", "mini_program", coupon_id="cp-test-drive-gift")
    if p.adds_wecom and p.engagement > 0.6:
        b.add("wecom.group_joined", "wecom", group_id=f"g-{p.model}-{p.dealer}")


def _funnel(b: _Builder) -> None:
    """Configurator, quote (phone), test drive, store visit; then an order or a defeat."""
    rng, p = b.rng, b.person
    if rng.random() > 0.25 + 0.6 * p.engagement:
        return
    b.add("config.build", "mini_program", vehicle_model=p.model, trim=rng.choice(("pure", "pro", "prime")))
    if rng.random() > 0.7:
        return
    p.phone = p.phone or _phone(rng)
    p.dealer_lead_id = f"lead-{p.dealer}-{rng.randint(10_000, 99_999)}"
    # A quote needs a phone number (留资): it joins the phone to the person's WeChat identity.
    b.add(
        "quote.requested",
        "mini_program",
        b.identities("mini_program") | {"phone": p.phone},
        vehicle_model=p.model,
        dealer_id=p.dealer,
    )
    if rng.random() < 0.5:
        b.add("consent.granted", "mini_program", channel="sms")
    b.add("dealer.followup", "dealer_store", dealer_id=p.dealer, outcome="called")
    visited = False
    if rng.random() < 0.55:
        b.add(
            "test_drive.booked",
            rng.choice(("wecom", "mini_program")) if p.adds_wecom else "mini_program",
            vehicle_model=p.model,
            dealer_id=p.dealer,
        )
        if rng.random() < 0.8:
            b.add("store.visit", "dealer_store", dealer_id=p.dealer)
            b.add("test_drive.completed", "dealer_store", vehicle_model=p.model, dealer_id=p.dealer)
            visited = True
    elif rng.random() < 0.25:
        b.add("store.visit", "dealer_store", dealer_id=p.dealer)
        visited = True

    if visited and rng.random() < 0.25 + 0.4 * p.engagement:
        b.add(
            "order.placed",
            "dealer_store",
            vehicle_model=p.model,
            dealer_id=p.dealer,
            amount=rng.randint(15, 30) * 10_000,
        )
        if rng.random() < 0.3:
            b.add("vehicle.delivered", "dealer_store", vehicle_model=p.model, dealer_id=p.dealer)
        if rng.random() < 0.35:
            b.add("community.post", "app", topic=rng.choice(p.interests))
        if rng.random() < 0.2:
            b.add("referral.made", "wecom" if p.adds_wecom else "official_account", referred="friend")
    elif rng.random() < 0.4:
        b.add("lead.defeated", "dealer_store", reason=rng.choice(DEFEAT_REASONS), dealer_id=p.dealer)
        if rng.random() < 0.3:  # recalled: content brings the defeated lead back
            b.content(rng.randint(2, 4))


def _props(rng: random.Random, orientation: str) -> dict[str, Any]:
    item = rng.choice([c for c in CONTENT if c.value_point == orientation])
    return {"content_id": item.content_id, "value_point": item.value_point, "topics": list(item.topics)}


def _times(rng: random.Random, count: int, now: datetime) -> list[datetime]:
    """`count` increasing times: start within MAX_AGE, gaps of minutes to hours, last ≤ now − NEWEST."""
    start = now - timedelta(seconds=rng.uniform(0.1, 1.0) * MAX_AGE.total_seconds())
    offsets, total = [], 0.0
    for _ in range(count):
        offsets.append(total)
        total += rng.choice((rng.uniform(20, 600), rng.uniform(600, 4 * 3600), rng.uniform(4, 30) * 3600))
    room = (now - NEWEST - start).total_seconds()
    scale = min(1.0, room / offsets[-1]) if offsets[-1] > 0 else 1.0
    # Whole seconds on the wire; keep a second between steps so the order survives the rounding.
    times, last = [], None
    for offset in offsets:
        at = (start + timedelta(seconds=offset * scale)).replace(microsecond=0)
        if last is not None and at <= last:
            at = last + timedelta(seconds=1)
        times.append(at)
        last = at
    return [min(at, now) for at in times]


def _event(
    rng: random.Random,
    type_: str,
    source: str,
    at: datetime,
    identities: dict[str, str],
    props: dict[str, Any],
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "type": type_,
        "source": source,
        "occurred_at": at.astimezone(CHINA).isoformat(),
        "identities": dict(identities),
        "properties": props,
        "schema_version": 1,
    }


def journey(rng: random.Random, index: int, now: datetime) -> Journey:
    """One person's journey, its events in time order."""
    person = _person(rng, index)
    steps = _steps(rng, person).steps
    times = _times(rng, len(steps), now)
    events = [
        _event(rng, type_, source, at, identities, props)
        for (type_, source, identities, props), at in zip(steps, times, strict=True)
    ]
    return Journey(person.key, events)


def journeys(count: int = 300, seed: int = 7, now: datetime | None = None) -> list[Journey]:
    """`count` journeys. The same seed gives the same people, events and event ids; `now` only
    shifts the timestamps (default: the current time)."""
    now = now or datetime.now(CHINA)
    if now.tzinfo is None:
        raise ValueError("now must carry a timezone")
    rng = random.Random(seed)
    return [journey(rng, index, now) for index in range(count)]


def in_time_order(batch: list[Journey]) -> list[dict[str, Any]]:
    """All events as touchpoints would send them: by time (each journey keeps its own order)."""
    ordered = [
        (datetime.fromisoformat(event["occurred_at"]), j, i, event)
        for j, journey in enumerate(batch)
        for i, event in enumerate(journey.events)
    ]
    ordered.sort(key=lambda item: item[:3])
    return [event for *_, event in ordered]


def flawed_events(seed: int = 7, now: datetime | None = None) -> list[dict[str, Any]]:
    """What real touchpoints also send now and then; ingest must reject each with a reason."""
    now = now or datetime.now(CHINA)
    rng = random.Random(f"flawed-{seed}")
    openid = {"openid": "oMP" + _token(rng, 25)}
    return [
        _event(rng, "ad.lead_form", "ad", now - timedelta(hours=2), {"phone": "+86 123"}, {}),  # not a phone
        _event(rng, "content.click", "wecom", now - timedelta(hours=1), openid, {"value_point": "rational"}),
        _event(rng, "ad.click", "ad", now + timedelta(days=1), openid, {}),  # clock skew: in the future
    ]
