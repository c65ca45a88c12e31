"""`GET`/`POST /v1/wecom/callback` on ingest: WeCom's callbacks, verified and turned into events
(docs/wecom.md).

A callback is refused (403, with why) unless its `msg_signature` is one configured corp's, its
timestamp within the replay window of ingest's clock, its nonce not seen within the window
(POST), and its message encrypted for that corp's id (wecom_crypto.py). An accepted callback's
events (wecom_events.py) go through ingest like any posted event (a 503 when the broker cannot
take them: WeCom retries, and the nonce is released for it); WeCom is answered `success`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis

from shared.redis import KEY_PREFIX
from shared.wecom import EXTERNAL_USERID, consultant_key

from .wecom_crypto import CallbackRefused, CorpKeys, decrypt, signed_by
from .wecom_events import events_of, parse

MAX_CALLBACK_BYTES = 64 * 1024  # WeCom's callbacks are a few hundred bytes
# Accept the events of a callback as posted ones (validated, protected, published) under a key id.
Accept = Callable[[list[dict[str, Any]], str], Awaitable[None]]

Signature = Annotated[str, Query(min_length=1, max_length=64)]
Timestamp = Annotated[str, Query(min_length=1, max_length=16, pattern=r"^\d+$")]
Nonce = Annotated[str, Query(min_length=1, max_length=64)]


def wecom_router(
    corps: Sequence[CorpKeys],
    redis: Redis,
    clock: Callable[[], datetime],
    accept: Accept,
    window_s: int,
    registry: CollectorRegistry,
) -> APIRouter:
    router = APIRouter(tags=["wecom"])
    callbacks = Counter(
        "pd_ingest_wecom_callbacks",
        "WeCom callbacks by outcome: accepted, or refused and why (bad_signature, stale, "
        "replayed, wrong_corp, malformed, not_configured)",
        ["outcome"],
        registry=registry,
    )

    def refuse(reason: str, detail: str, code: int = status.HTTP_403_FORBIDDEN) -> HTTPException:
        callbacks.labels(reason).inc()
        return HTTPException(code, detail)

    def corp_of(msg_signature: str, timestamp: str, nonce: str, ciphertext: str) -> CorpKeys:
        if not corps:
            raise refuse("not_configured", "no WeCom corp is configured (WECOM_CALLBACKS)", 404)
        corp = next((c for c in corps if signed_by(c, msg_signature, timestamp, nonce, ciphertext)), None)
        if corp is None:
            raise refuse("bad_signature", "msg_signature is no configured corp's")
        if abs(clock().timestamp() - int(timestamp)) > window_s:
            raise refuse("stale", f"timestamp more than {window_s} s from now: replayed or a wrong clock")
        return corp

    def opened(corp: CorpKeys, ciphertext: str) -> str:
        try:
            return decrypt(corp, ciphertext)
        except CallbackRefused as refused:
            raise refuse(refused.reason, str(refused)) from None

    @router.get("/v1/wecom/callback", response_class=PlainTextResponse, responses={403: {}, 404: {}})
    async def verify_url(msg_signature: Signature, timestamp: Timestamp, nonce: Nonce, echostr: str) -> str:
        """WeCom's URL verification when the callback URL is saved in its admin console: the
        decrypted `echostr`, for a request signed by a configured corp."""
        corp = corp_of(msg_signature, timestamp, nonce, echostr)
        return opened(corp, echostr)

    @router.post(
        "/v1/wecom/callback", response_class=PlainTextResponse, responses={403: {}, 404: {}, 413: {}, 503: {}}
    )
    async def callback(request: Request, msg_signature: Signature, timestamp: Timestamp, nonce: Nonce) -> str:
        """An encrypted WeCom callback (external contacts, customer groups): its events are
        accepted like posted ones; `success` tells WeCom not to retry."""
        body = await request.body()
        if len(body) > MAX_CALLBACK_BYTES:
            raise refuse("malformed", "a callback of more than 64 KiB", status.HTTP_413_CONTENT_TOO_LARGE)
        try:
            ciphertext = str(parse(body.decode(errors="replace")).get("Encrypt") or "")
        except CallbackRefused as refused:
            raise refuse(refused.reason, str(refused), status.HTTP_400_BAD_REQUEST) from None
        if not ciphertext:
            raise refuse("malformed", "no Encrypt element", status.HTTP_400_BAD_REQUEST)
        corp = corp_of(msg_signature, timestamp, nonce, ciphertext)
        nonce_key = f"{KEY_PREFIX}wecom:nonce:{corp.corp_id}:{nonce}"
        if not await redis.set(nonce_key, timestamp, nx=True, ex=2 * window_s):
            raise refuse("replayed", "this nonce was seen within the replay window")
        try:
            message = parse(opened(corp, ciphertext))
            events = events_of(message, corp.corp_id)
            if events:
                await accept(events, f"wecom:{corp.corp_id}")
                await _remember_consultants(redis, events)
        except CallbackRefused as refused:
            raise refuse(refused.reason, str(refused), status.HTTP_400_BAD_REQUEST) from None
        except BaseException:
            await redis.delete(nonce_key)  # not taken: WeCom's retry must get through
            raise
        callbacks.labels("accepted").inc()
        return "success"

    return router


async def _remember_consultants(redis: Redis, events: list[dict[str, Any]]) -> None:
    """Who added each contact, for the WeCom sender; forgotten when either side deletes the other."""
    pipe = redis.pipeline(transaction=False)
    for event in events:
        contact = event["identities"][EXTERNAL_USERID]
        consultant = event["properties"].get("consultant_id")
        if event["type"] == "wecom.friend_added" and consultant:
            pipe.set(consultant_key(contact), consultant)
        elif event["type"] == "wecom.friend_deleted":
            pipe.delete(consultant_key(contact))
    await pipe.execute()
