"""The touchpoint event envelope (`touchpoint.events.v1`) and the event-type registry.

`TouchpointEvent` is what a touchpoint sends; `IngestedEvent` is what ingest publishes
(the same envelope plus `customer_id`, `received_at` and the id of the key used).
`validate_event` is the one entry point for untrusted input: it checks the envelope, the
per-type required properties and the ingest-time rules, and reports field-level errors.
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
}
CUSTOM_TYPE = re.compile(r"^custom\.[a-z0-9][a-z0-9_.-]{0,63}$")

Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
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
    topics: list[Label] | None
    price_related: bool | None


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

    event_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    source: Source
    occurred_at: AwareDatetime
    received_at: AwareDatetime
    schema_version: Literal[1] = SCHEMA_VERSION


class PublishedEvent(PublishedEventCore):
    """The core fields and the free `properties`, for workers whose rules may test any of them."""

    properties: dict[str, Any] = Field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """A non-empty string property, else None."""
        value = self.properties.get(name)
        return value if isinstance(value, str) and value else None


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


def event_rule_errors(event: TouchpointEvent, now: datetime) -> list[dict[str, Any]]:
    """What the envelope's types cannot say: per-type properties, consent channels and the
    future-skew rule."""
    properties: dict[str, Any] = event.properties  # type: ignore[assignment]  # extra keys allowed
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
