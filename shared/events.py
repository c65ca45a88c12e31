"""The touchpoint event envelope (`touchpoint.events.v1`) and the event-type registry.

`TouchpointEvent` is what a touchpoint sends; `IngestedEvent` is what ingest publishes
(the same envelope plus `customer_id`, `received_at` and the id of the key used).
`validate_event` is the one entry point for untrusted input: it checks the envelope, the
per-type required properties and the ingest-time rules, and reports field-level errors.

Bounds (docs/contract.md, "Bounds"): free properties are JSON a touchpoint chose, and every
worker carries them along the chain, so their shape is capped here, where a touchpoint still
hears why (422): nesting depth, items per list, keys per object, key and string lengths, and
`topics` per event. `property_bound_errors` checks them without recursion (level by level),
so a body nested 100,000 levels deep costs a loop, not the interpreter's stack; and an event
within them always serialises (orjson refuses more than 254 levels, which used to fail the
whole produce group of a 400-level event with a 500).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    with_config,
)
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from shared.channels import CONSENT_CHANNELS, CONSENT_EVENT_TYPES, consented_channels

SCHEMA_VERSION = 1
MAX_FUTURE_SKEW = timedelta(minutes=5)
# The oldest interaction ingest takes: older is a clock or a typing error (year 1, 1970), and
# would sit at the far end of every decay curve and time window.
MAX_PAST = timedelta(days=10 * 365)

# Bounds on an event's free `properties` (the envelope's own fields have theirs in the models).
# Touchpoint events are flat records of an interaction (ids, a few labels, a number or two), so
# each bound is far above anything a real touchpoint sends and far below what would hurt:
# - depth 8: a nested object or list inside `properties` counts one level, `properties` none.
#   Real events nest two or three levels (a form's answers, a cart's lines); orjson stops at 254.
MAX_PROPERTY_DEPTH = 8
# - 100 items a list, 100 keys an object: a cart, a survey's answers or a tag list fits; a list
#   a worker would have to walk or keep per customer does not.
MAX_LIST_ITEMS = 100
MAX_OBJECT_KEYS = 100
# - keys are names, 128 characters like every label of the contract (content_id, vehicle_model).
MAX_KEY_CHARS = 128
# - 4 KiB a string: a comment, a survey answer or a URL; not a document or an image.
MAX_STRING_CHARS = 4096
# - 20 topics an event: a piece of content has a handful; each one may become an `interest:*`
#   tag, so a list of thousands would make one customer a segment in thousands of segments.
MAX_TOPICS = 20
# The first this many bound errors of one event are reported (an event breaking a bound in every
# one of its 10,000 strings gets a readable answer, not 10,000 errors).
MAX_BOUND_ERRORS = 10


class Source(StrEnum):
    """The touchpoint an event came from (docs/domain.md's vocabulary)."""

    wecom = "wecom"
    official_account = "official_account"
    mini_program = "mini_program"
    video_channel = "video_channel"
    live_stream = "live_stream"
    app = "app"
    dealer_store = "dealer_store"
    ad = "ad"
    call_center = "call_center"
    mall = "mall"
    campaign = "campaign"  # the platform's own campaigns: points they grant (points.granted)


class IdentityType(StrEnum):
    """One identifier of a person in one channel."""

    wecom_external_userid = "wecom_external_userid"
    unionid = "unionid"
    openid = "openid"
    phone = "phone"
    app_user_id = "app_user_id"
    device_id = "device_id"
    dealer_lead_id = "dealer_lead_id"


# Event type -> properties it requires. `custom.<name>` types take free properties.
EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "ad.click": (),
    "ad.lead_form": (),
    "wecom.friend_added": (),
    "wecom.friend_deleted": (),  # the customer deleted the brand's WeCom contact: no more WeCom messages
    "wecom.message_in": (),
    "wecom.group_joined": (),
    "wecom.group_left": (),
    "wecom.contact_updated": (),  # a consultant edited the customer's WeCom contact (remarks, tags)
    "content.view": ("content_id",),
    "content.click": ("content_id",),
    "content.favorite": ("content_id",),
    "content.share": ("content_id",),
    "live.watch": ("duration_s",),
    "live.comment": (),
    "mini_program.visit": (),
    "config.build": ("vehicle_model",),
    "quote.requested": ("vehicle_model",),
    "test_drive.booked": ("vehicle_model",),
    "test_drive.completed": ("vehicle_model",),
    "store.visit": ("dealer_id",),
    "dealer.followup": ("dealer_id",),
    "order.placed": ("vehicle_model",),
    "vehicle.delivered": ("vehicle_model",),
    "lead.defeated": ("reason",),
    "service.maintenance": ("amount",),
    "mall.purchase": ("amount",),
    "coupon.claimed": (),
    "referral.made": (),
    "community.post": (),
    "survey.answered": (),
    "consent.granted": ("channel",),
    "consent.revoked": ("channel",),
    "campaign.delivered": ("action_id",),
    "campaign.opened": ("action_id",),
    "campaign.clicked": ("action_id",),
    # A campaign action the delivery adapter could not deliver (services/wecom_sender): why.
    "campaign.failed": ("action_id",),
    # Points as currency: granted by a campaign's grant_points action (the campaign worker
    # publishes it, its event id the action's), spent at the mall or a store.
    "points.granted": ("points", "action_id"),
    "points.redeemed": ("points",),
}
CUSTOM_TYPE = re.compile(r"^custom\.[a-z0-9][a-z0-9_.-]{0,63}$")

# A label (an id, a model, a topic, a reason) is a name: 128 characters at most, as sent.
MAX_LABEL_CHARS = 128
# As published, a label may be longer: ingest replaces every phone number in it by `phone:` and
# its 64-character hash (services/ingest/identities.py). What a worker keeps of an event's labels
# (`PublishedEvent.text`, scoring's models and contents, tagging's topics) is bounded by this.
MAX_PUBLISHED_LABEL_CHARS = 1024
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_LABEL_CHARS)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


@with_config(ConfigDict(extra="allow"))
class KnownProperties(TypedDict, total=False):
    """Types of the properties the contract names; any other property passes through as sent.

    A TypedDict rather than a model: validated inside the envelope in one pass, it stays the
    plain dict touchpoints sent (named properties normalised: labels stripped, numbers as floats).
    """

    content_id: Label | None
    vehicle_model: Label | None
    dealer_id: Label | None
    reason: Label | None
    channel: Label | None
    action_id: Label | None
    duration_s: NonNegative | None
    amount: NonNegative | None
    value_point: Literal["rational", "emotional"] | None
    topics: Annotated[list[Label], Field(max_length=MAX_TOPICS)] | None
    price_related: bool | None
    points: Annotated[int, Field(gt=0, le=1_000_000)] | None


IdentityValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]


class TouchpointEvent(BaseModel):
    """One interaction, as a touchpoint sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID
    type: str
    source: Source
    occurred_at: AwareDatetime
    identities: dict[IdentityType, IdentityValue] = Field(min_length=1)
    properties: KnownProperties = Field(default_factory=lambda: KnownProperties())
    schema_version: Literal[1] = SCHEMA_VERSION

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in EVENT_TYPES and not CUSTOM_TYPE.match(value):
            raise ValueError(f"unknown event type {value!r}: use a contract type or custom.<name>")
        return value


class IngestedEvent(TouchpointEvent):
    """The envelope as published on `touchpoint.events.v1`: resolved, hashed, stamped."""

    customer_id: str
    received_at: AwareDatetime
    api_key_id: str = Field(description="fingerprint of the touchpoint key used; never the key")


class PublishedEventCore(BaseModel):
    """The envelope fields every worker reads from `touchpoint.events.v1`; workers extend it
    with what else they use and ignore the rest (cheaper to decode)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Ingest's ids are far shorter; a record put on the topic by other means with longer ones is
    # dead-lettered by the worker that cannot decode it (bounds, docs/contract.md).
    event_id: str = Field(min_length=1, max_length=MAX_LABEL_CHARS)
    customer_id: str = Field(min_length=1, max_length=MAX_LABEL_CHARS)
    type: str = Field(min_length=1, max_length=MAX_LABEL_CHARS)
    source: Source
    occurred_at: AwareDatetime
    received_at: AwareDatetime
    schema_version: Literal[1] = SCHEMA_VERSION


class PublishedEvent(PublishedEventCore):
    """The core fields and the free `properties`, for workers whose rules may test any of them."""

    properties: dict[str, Any] = Field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """A non-empty string property of at most MAX_PUBLISHED_LABEL_CHARS, else None: what a
        worker keeps of an event (a dealer, a city, a reason) stays a label."""
        value = self.properties.get(name)
        return value if isinstance(value, str) and value and len(value) <= MAX_PUBLISHED_LABEL_CHARS else None


class InvalidEvent(ValueError):
    """Raised by `validate_event`, carrying field-level errors in FastAPI's shape."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} validation error(s)")
        self.errors = errors


def _field_errors(error: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False, include_context=False, include_input=False)
    ]


def _shown(key: str) -> str:
    """A key as an error's `loc` shows it: a key over the bound is cut, not echoed whole."""
    return key if len(key) <= MAX_KEY_CHARS else key[:MAX_KEY_CHARS] + "…"


def property_bound_errors(properties: Any, *, lengths: bool = True) -> list[dict[str, Any]]:
    """Where `properties` (a JSON value as parsed) breaks the bounds above, as field-level errors
    (`loc` from `properties`); at most MAX_BOUND_ERRORS of them, the shallowest first.
    `lengths=False`: the shape alone (depth, items, keys, topics), as a worker checks an event
    as published, whose strings and keys phone hashing may have made longer.

    Iterative and breadth-first: a container too deep is reported at the first level past the
    bound and not entered, so the work is bounded by what the bounds allow, however deep or wide
    the value is."""
    if _flat_and_within(properties, lengths):
        return []
    return _walk_bounds(properties, lengths)


def _walk_bounds(properties: Any, lengths: bool) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    topics = properties.get("topics") if isinstance(properties, dict) else None
    if isinstance(topics, list) and len(topics) > MAX_TOPICS:  # the model says so at ingest
        errors.append(_bound(["properties", "topics"], "too_long", f"at most {MAX_TOPICS} topics"))
    else:
        topics = None  # nothing said of it yet: looked at like any other value
    level: list[tuple[Any, list[str | int], int]] = [(properties, ["properties"], 0)]
    while level and len(errors) < MAX_BOUND_ERRORS:
        deeper: list[tuple[Any, list[str | int], int]] = []
        for node, loc, depth in level:
            if len(errors) >= MAX_BOUND_ERRORS:
                break
            if node is topics and topics is not None:  # reported above
                continue
            if isinstance(node, str):
                if lengths and len(node) > MAX_STRING_CHARS:
                    errors.append(_bound(loc, "string_too_long", f"at most {MAX_STRING_CHARS} characters"))
                continue
            if not isinstance(node, dict | list):
                continue
            if depth > MAX_PROPERTY_DEPTH:
                errors.append(_bound(loc, "too_deep", f"nested more than {MAX_PROPERTY_DEPTH} levels"))
                continue
            if isinstance(node, list):
                if len(node) > MAX_LIST_ITEMS:
                    errors.append(_bound(loc, "too_many_items", f"at most {MAX_LIST_ITEMS} items"))
                    continue
                deeper += [(item, [*loc, index], depth + 1) for index, item in enumerate(node)]
                continue
            if len(node) > MAX_OBJECT_KEYS:
                errors.append(_bound(loc, "too_many_keys", f"at most {MAX_OBJECT_KEYS} keys"))
                continue
            for key, item in node.items():
                if lengths and isinstance(key, str) and len(key) > MAX_KEY_CHARS:
                    errors.append(
                        _bound(
                            [*loc, _shown(key)],
                            "key_too_long",
                            f"keys have at most {MAX_KEY_CHARS} characters",
                        )
                    )
                    continue
                deeper.append((item, [*loc, key], depth + 1))
        level = deeper
    return errors[:MAX_BOUND_ERRORS]


_SCALARS = (str, int, float, bool, type(None))


def _flat_and_within(properties: Any, lengths: bool) -> bool:
    """True for the usual event's properties, within every bound by one look at each value: an
    object of texts, numbers, booleans and nulls, and lists of as many as MAX_TOPICS of them.
    Anything else (False here) is left to the walk, which names what breaks a bound."""
    if type(properties) is not dict or len(properties) > MAX_OBJECT_KEYS:
        return False
    for key, value in properties.items():
        if type(key) is not str or (lengths and len(key) > MAX_KEY_CHARS):
            return False
        if type(value) is list:
            # At most MAX_TOPICS items (<= MAX_LIST_ITEMS): within both bounds, whatever the key.
            if len(value) > MAX_TOPICS or not all(_scalar_within(item, lengths) for item in value):
                return False
        elif not _scalar_within(value, lengths):
            return False
    return True


def _scalar_within(value: Any, lengths: bool) -> bool:
    kind = type(value)
    return kind in _SCALARS and not (lengths and kind is str and len(value) > MAX_STRING_CHARS)


def _bound(loc: list[str | int], kind: str, msg: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def describe_errors(errors: list[dict[str, Any]]) -> str:
    """Field-level errors in one line, e.g. for a dead letter's reason."""
    return "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']} ({e['type']})" for e in errors)


def event_rule_errors(event: TouchpointEvent, now: datetime) -> list[dict[str, Any]]:
    """What the envelope's types cannot say: the bounds of the free properties, per-type
    properties, consent channels and the time rules (at most 5 minutes ahead, 10 years ago)."""
    properties: dict[str, Any] = event.properties  # type: ignore[assignment]  # extra keys allowed
    if bounds := property_bound_errors(properties):
        return bounds  # nothing else is looked at in a value this shape
    errors: list[dict[str, Any]] = [
        {"loc": ["properties", name], "msg": f"required for {event.type}", "type": "missing"}
        for name in EVENT_TYPES.get(event.type, ())
        if properties.get(name) is None
    ]
    # A consent for a channel nobody knows would be silently dropped downstream: the touchpoint
    # must hear of it now, while it can still say which channel it meant.
    channel = properties.get("channel")
    if event.type in CONSENT_EVENT_TYPES and channel is not None and not consented_channels(channel):
        errors.append(
            {
                "loc": ["properties", "channel"],
                "msg": f"unknown channel {channel!r}: one of {', '.join(sorted(CONSENT_CHANNELS))}",
                "type": "unknown_channel",
            }
        )
    if event.occurred_at - now > MAX_FUTURE_SKEW:
        errors.append({"loc": ["occurred_at"], "msg": "more than 5 minutes in the future", "type": "future"})
    elif now - event.occurred_at > MAX_PAST:
        errors.append({"loc": ["occurred_at"], "msg": "more than 10 years ago", "type": "too_old"})
    return errors


_EVENT_LIST = TypeAdapter(list[TouchpointEvent])


def validate_events(raws: list[Any], now: datetime) -> list[TouchpointEvent | InvalidEvent]:
    """`validate_event` for each event of a batch, as the event or why it is invalid.

    One pass through pydantic when every envelope is valid (the common case, and cheaper than
    one call per event); event by event otherwise, for each one's field-level errors.
    """
    try:
        events = _EVENT_LIST.validate_python(raws)
    except ValidationError:
        return [_validated_or_invalid(raw, now) for raw in raws]
    return [InvalidEvent(errors) if (errors := event_rule_errors(event, now)) else event for event in events]


def _validated_or_invalid(raw: Any, now: datetime) -> TouchpointEvent | InvalidEvent:
    try:
        return validate_event(raw, now)
    except InvalidEvent as invalid:
        return invalid


def validate_event(raw: Any, now: datetime) -> TouchpointEvent:
    """Validate one untrusted event completely; raise InvalidEvent with field-level errors."""
    try:
        event = TouchpointEvent.model_validate(raw)
    except ValidationError as error:
        raise InvalidEvent(_field_errors(error)) from None
    if errors := event_rule_errors(event, now):
        raise InvalidEvent(errors)
    return event
