"""One campaign action through WeCom: at most once, with consent checked as it leaves, and its
result published back for the campaign's figures (docs/wecom.md).

1. An action that is not WeCom's (delivery.py) is left alone.
2. The action is claimed in Redis by its id before anything is sent (`pd:wecom:action:{id}`,
   SET NX): a redelivered action (a restart before the offset was committed) finds its claim
   and is not sent again; its result, which the claim keeps, is published again (the same
   record, within a day: the workers' dedupe window). The price: an action claimed
   by a sender that died before WeCom answered is not sent at all (at most once; the claim
   says `claimed`, never a result).
3. The customer's WeCom contact and the consultant who added them (shared/wecom.py), and their
   consent as it stands now: none, or revoked since the decision, and nothing is sent
   (`campaign.failed` with why).
4. The message task goes to WeCom; what WeCom may take later (busy, rate limits, no answer) is
   tried again with growing waits (tenacity), the rest fails at once. A failure goes to
   `campaign.actions.v1.dlq` with why, for ops to replay.
5. `campaign.delivered` (WeCom's msgid) or `campaign.failed` (why) goes on
   `touchpoint.events.v1`, keyed by the customer: the campaign worker counts it in the
   campaign's stats, in order with the customer's other inputs. Results go out with the rest of
   their fetch (the claims give them again after a stop); a dead letter before the next action.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from shared.channels import consent_key, revoked
from shared.dead_letters import DeadLetter
from shared.ledger import DEDUPE_WINDOW_S
from shared.redis import KEY_PREFIX
from shared.topics import CAMPAIGN_ACTIONS, TOUCHPOINT_EVENTS, dead_letter_topic
from shared.wecom import EXTERNAL_USERID, consultant_key, customer_identities_key

from .client import WeComClient, WeComError
from .delivery import CampaignAction, Contact, is_ours, join_way, message_task

log = logging.getLogger(__name__)

RESULT_IDS = uuid.UUID("d5a3c1e2-8f47-4b6a-a0c9-3e71b2f8d410")
CLAIM_TTL_S = 30 * 24 * 3600  # longer than any redelivery: the topic keeps a week
MESSAGE_TASK = "/cgi-bin/externalcontact/add_msg_template"
ADD_JOIN_WAY = "/cgi-bin/externalcontact/groupchat/add_join_way"
GET_JOIN_WAY = "/cgi-bin/externalcontact/groupchat/get_join_way"
KEY_ID = "wecom-sender"  # api_key_id of the events the sender publishes
Outgoing = tuple[str, bytes | None, bytes]


def replayable(record: Outgoing) -> bool:
    """A result, which the action's claim gives again if the action comes again (Sender
    `_result_again`), so it may wait to go out with the rest of a fetch; not a dead letter,
    which goes out before the next action is handled."""
    return record[0] == TOUCHPOINT_EVENTS


def claim_key(action_id: str) -> str:
    return f"{KEY_PREFIX}wecom:action:{action_id}"


def join_way_key(template: str) -> str:
    """The QR code of the join way made for a group template (made once, kept)."""
    return f"{KEY_PREFIX}wecom:join_way:{template}"


class Sender:
    def __init__(
        self,
        redis: Redis,
        client: WeComClient,
        content_url: str,
        group_chats: Mapping[str, list[str]],
        clock: Callable[[], datetime],
        max_attempts: int,
        retry_wait_s: float,
        on_outcome: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self._redis = redis
        self._client = client
        self._content_url = content_url
        self._group_chats = group_chats
        self._clock = clock
        self._max_attempts = max_attempts
        self._retry_wait_s = retry_wait_s
        self._on_outcome = on_outcome

    async def handle(
        self, key: bytes | None, value: bytes | None, partition: int, offset: int
    ) -> list[Outgoing]:
        """What to publish for one record of campaign.actions.v1 (nothing, for most)."""
        try:
            action = CampaignAction.model_validate_json(value or b"")
        except ValidationError as error:
            self._on_outcome("undecodable")
            letter = DeadLetter(CAMPAIGN_ACTIONS, key, value, f"not an action: {error}", partition, offset)
            return [(dead_letter_topic(CAMPAIGN_ACTIONS), key, letter.encode())]
        if not is_ours(action):
            return []
        claim = claim_key(action.action_id)
        # SET NX GET: the claim made, or the one found (Redis 7), in one round trip.
        if (found := await self._redis.set(claim, "claimed", nx=True, get=True, ex=CLAIM_TTL_S)) is not None:
            self._on_outcome("duplicate")
            return self._result_again(action, found)
        contact = await self._reachable(action)
        if isinstance(contact, str):  # why it cannot leave now
            return await self._failed(action, contact, None)
        try:
            link = await self._link(action)
            if link is None:  # invite_group for a template without customer groups configured
                return await self._failed(action, "no_group_invite", None)
            answer = await self._send(MESSAGE_TASK, message_task(action, contact, link))
        except WeComError as error:
            letter = DeadLetter(CAMPAIGN_ACTIONS, key, value, f"WeCom: {error}", partition, offset)
            return await self._failed(action, f"wecom_{error.errcode}", letter)
        properties = {
            "action_id": action.action_id,
            "campaign_id": action.campaign_id,
            "msgid": answer.get("msgid"),
        }
        result = await self._settle(action, "campaign.delivered", properties)
        self._on_outcome("delivered")
        return [result]

    async def _settle(self, action: CampaignAction, event_type: str, properties: dict[str, Any]) -> Outgoing:
        """The action's result, to publish; kept in its claim first, so that the action coming
        again gives the very same record again (`_result_again`)."""
        at = self._clock().isoformat()
        kept = orjson.dumps({"type": event_type, "at": at, "properties": properties})
        await self._redis.set(claim_key(action.action_id), kept, xx=True, keepttl=True)
        return self._result(action, event_type, properties, at)

    def _result_again(self, action: CampaignAction, claim: bytes) -> list[Outgoing]:
        """The result of an action handled before, as its claim keeps it: published again, the
        same record (so counted once), in case the sender stopped before it was. Nothing for an
        action still `claimed` (its sender died before WeCom answered: at most once), for a claim
        kept before results were, or for a result over a day old: published long since, unless
        the sender stopped right then for a day, and past the workers' dedupe window a copy would
        be a new input to them."""
        try:
            kept = orjson.loads(claim)
            at = datetime.fromisoformat(kept["at"])
        except (ValueError, TypeError, KeyError):  # not JSON (orjson's error is a ValueError), or not ours
            return []
        if (self._clock() - at).total_seconds() > DEDUPE_WINDOW_S:
            return []
        return [self._result(action, kept["type"], kept["properties"], kept["at"])]

    async def _reachable(self, action: CampaignAction) -> Contact | str:
        """The customer's WeCom contact and consultant, or why the action cannot leave now."""
        contact = await self._contact(action.customer_id)
        if contact is None:
            return "no_wecom_contact"  # never a WeCom friend, or one side deleted the other since
        if revoked(await self._redis.get(consent_key(action.customer_id)), action.channel):
            return "no_consent"
        return contact

    async def _link(self, action: CampaignAction) -> str | None:
        """What the message task links to: the content's page, or a group's join QR code."""
        if action.kind != "invite_group":
            return self._content_url.format(content_id=action.content_id or "")
        template = action.group_template or ""
        if not (chats := self._group_chats.get(template)):
            return None
        if (made := await self._redis.get(join_way_key(template))) is not None:
            return made.decode()
        config = await self._send(ADD_JOIN_WAY, join_way(template, chats))
        way = await self._send(GET_JOIN_WAY, {"config_id": config["config_id"]})
        qr_code = str(way["join_way"]["qr_code"])
        await self._redis.set(join_way_key(template), qr_code)
        return qr_code

    async def _contact(self, customer_id: str) -> Contact | None:
        members = await self._redis.smembers(customer_identities_key(customer_id))
        contacts = sorted(
            m.decode().partition(":")[2] for m in members if m.decode().startswith(f"{EXTERNAL_USERID}:")
        )
        for external_userid in contacts:
            if (consultant := await self._redis.get(consultant_key(external_userid))) is not None:
                return Contact(external_userid, consultant.decode())
        return None

    async def _send(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=wait_exponential(multiplier=self._retry_wait_s, max=30),
            retry=retry_if_exception(lambda error: isinstance(error, WeComError) and error.retriable),
            reraise=True,
        ):
            with attempt:
                return await self._client.post(path, body)
        raise AssertionError("unreachable")

    async def _failed(self, action: CampaignAction, reason: str, letter: DeadLetter | None) -> list[Outgoing]:
        properties = {"action_id": action.action_id, "campaign_id": action.campaign_id, "reason": reason}
        outgoing = [await self._settle(action, "campaign.failed", properties)]
        self._on_outcome("failed")
        log.warning("action %s not delivered: %s", action.action_id, reason)
        if letter is not None:
            outgoing.append(
                (dead_letter_topic(CAMPAIGN_ACTIONS), action.customer_id.encode(), letter.encode())
            )
        return outgoing

    def _result(
        self, action: CampaignAction, event_type: str, properties: dict[str, Any], at: str
    ) -> Outgoing:
        # The id is the action's and the result's: a result published again is the same event.
        event = {
            "event_id": str(uuid.uuid5(RESULT_IDS, f"{action.action_id}\x00{event_type}")),
            "type": event_type,
            "source": "wecom",
            "occurred_at": at,
            "identities": {},
            "properties": {name: value for name, value in properties.items() if value is not None},
            "schema_version": 1,
            "customer_id": action.customer_id,
            "received_at": at,
            "api_key_id": KEY_ID,
        }
        return (TOUCHPOINT_EVENTS, action.customer_id.encode(), orjson.dumps(event))
