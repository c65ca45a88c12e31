"""The WeCom sender's claims on real Redis: an action is sent once, and coming again (a restart
before its fetch's results were published) gives the same result again, from what its claim
keeps, for a day. WeCom is a small hand-written stand-in; Redis is the stack's."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from services.wecom_sender.sender import Sender, claim_key, replayable
from shared.topics import TOUCHPOINT_EVENTS
from shared.wecom import EXTERNAL_USERID, consultant_key, customer_identities_key

pytestmark = pytest.mark.integration


class WeComStandIn:
    """Answers every message task with a new msgid and remembers what it was sent."""

    def __init__(self) -> None:
        self.tasks: list[dict[str, Any]] = []

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.tasks.append(body)
        return {"errcode": 0, "msgid": f"msg-{len(self.tasks)}"}


@pytest.fixture
async def redis(backends: Any) -> AsyncIterator[Redis]:
    client = Redis.from_url(backends.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def sender(redis: Redis, wecom: WeComStandIn, late_by: timedelta = timedelta(0)) -> Sender:
    return Sender(
        redis,
        wecom,  # type: ignore[arg-type]  # the client's one method the sender calls
        "https://brand.test/c/{content_id}",
        {},
        lambda: datetime.now(UTC) + late_by,
        max_attempts=1,
        retry_wait_s=0.01,
    )


def action(customer_id: str) -> bytes:
    return orjson.dumps(
        {
            "action_id": str(uuid.uuid4()),
            "campaign_id": "welcome",
            "customer_id": customer_id,
            "kind": "send_content",
            "channel": "wecom_1v1",
            "content_id": "c-welcome",
            "outcome": "sent",
            "at": datetime.now(UTC).isoformat(),
        }
    )


async def friend(redis: Redis) -> str:
    """A customer who is a WeCom friend of a consultant (no consent revoked)."""
    customer_id, contact = f"cus_{uuid.uuid4().hex[:10]}", f"wm{uuid.uuid4().hex[:10]}"
    await redis.sadd(customer_identities_key(customer_id), f"{EXTERNAL_USERID}:{contact}")
    await redis.set(consultant_key(contact), "consultant-li")
    return customer_id


def result(outgoing: list[tuple[str, bytes | None, bytes]]) -> dict[str, Any]:
    (record,) = outgoing
    assert record[0] == TOUCHPOINT_EVENTS and replayable(record)
    return orjson.loads(record[2])


async def test_an_action_coming_again_is_not_sent_again_and_gives_its_result_again(redis: Redis) -> None:
    wecom = WeComStandIn()
    customer_id = await friend(redis)
    raw = action(customer_id)

    first = result(await sender(redis, wecom).handle(customer_id.encode(), raw, 0, 1))
    again = result(await sender(redis, wecom).handle(customer_id.encode(), raw, 0, 1))

    assert len(wecom.tasks) == 1
    assert again == first  # the same record: counted once downstream
    assert first["type"] == "campaign.delivered"
    assert first["properties"] == {
        "action_id": orjson.loads(raw)["action_id"],
        "campaign_id": "welcome",
        "msgid": "msg-1",
    }


async def test_a_failed_action_coming_again_gives_the_same_failure(redis: Redis) -> None:
    wecom = WeComStandIn()
    stranger = f"cus_{uuid.uuid4().hex[:10]}"  # no WeCom contact on record
    raw = action(stranger)

    first = result(await sender(redis, wecom).handle(stranger.encode(), raw, 0, 1))
    again = result(await sender(redis, wecom).handle(stranger.encode(), raw, 0, 1))

    assert wecom.tasks == []
    assert again == first
    assert first["type"] == "campaign.failed" and first["properties"]["reason"] == "no_wecom_contact"


async def test_an_action_caught_mid_send_or_handled_over_a_day_ago_gives_nothing_again(redis: Redis) -> None:
    wecom = WeComStandIn()
    customer_id = await friend(redis)
    mid_send, long_ago, before_results = action(customer_id), action(customer_id), action(customer_id)
    # A sender died between the claim and WeCom's answer: at most once, nothing to say.
    await redis.set(claim_key(orjson.loads(mid_send)["action_id"]), "claimed")
    # A claim kept before claims kept results.
    await redis.set(claim_key(orjson.loads(before_results)["action_id"]), "delivered")
    await sender(redis, wecom).handle(customer_id.encode(), long_ago, 0, 3)

    assert await sender(redis, wecom).handle(customer_id.encode(), mid_send, 0, 1) == []
    assert await sender(redis, wecom).handle(customer_id.encode(), before_results, 0, 2) == []
    # Past the workers' dedupe window a copy would be a new input to them: published long since.
    two_days_on = sender(redis, wecom, late_by=timedelta(days=2))
    assert await two_days_on.handle(customer_id.encode(), long_ago, 0, 3) == []
    assert len(wecom.tasks) == 1  # long_ago's, once
