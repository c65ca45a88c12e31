"""`/v1/dead-letters` on the campaign API: list, show and replay what the workers could not take
(services/campaign/dead_letters.py). `pd-dlq` is the same from a terminal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from shared.http import ADMIN_ONLY
from shared.kafka_security import PLAINTEXT, KafkaSecurity
from shared.redis import KEY_PREFIX

from .dead_letters import (
    DEAD_LETTER_TOPICS,
    BadCorrection,
    DeadLetterView,
    UnknownDeadLetter,
    corrected_value,
    publish,
    read_dead_letter,
    read_dead_letters,
)

REPLAYED = f"{KEY_PREFIX}campaign:dlq:replayed"  # hash: dead-letter id -> when it was replayed


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetterView] = Field(description="newest first")


class ReplayRequest(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=500)
    corrections: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="dead-letter id -> the input to publish instead (a JSON object keeping its event_id)",
    )


class Replayed(BaseModel):
    id: str
    topic: str
    partition: int
    offset: int


class Refused(BaseModel):
    id: str
    reason: str


class ReplayReport(BaseModel):
    replayed: list[Replayed]
    refused: list[Refused]


def dead_letter_router(
    bootstrap_servers: str, redis: Redis, security: KafkaSecurity = PLAINTEXT
) -> APIRouter:
    router = APIRouter(prefix="/dead-letters", tags=["dead letters"])

    async def with_replays(letters: list[DeadLetterView]) -> list[DeadLetterView]:
        if not letters:
            return letters
        marks = await redis.hmget(REPLAYED, [letter.id for letter in letters])
        return [
            letter.model_copy(update={"replayed_at": datetime.fromisoformat(mark.decode()) if mark else None})
            for letter, mark in zip(letters, marks, strict=True)
        ]

    @router.get("", response_model=DeadLetterList, summary="The latest dead letters, with why")
    async def list_dead_letters(
        topic: Annotated[str | None, Query(description="an input topic, e.g. touchpoint.events.v1")] = None,
        last: Annotated[int, Query(ge=1, le=1000, description="per dead-letter partition")] = 100,
    ) -> DeadLetterList:
        topics = DEAD_LETTER_TOPICS if topic is None else (f"{topic}.dlq",)
        if topics[0] not in DEAD_LETTER_TOPICS:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no dead letters for topic {topic!r}")
        letters = await asyncio.to_thread(read_dead_letters, bootstrap_servers, topics, last, security)
        return DeadLetterList(dead_letters=await with_replays(letters))

    @router.get("/{letter_id}", response_model=DeadLetterView, responses={404: {}}, summary="One dead letter")
    async def show_dead_letter(letter_id: Annotated[str, Path(max_length=300)]) -> DeadLetterView:
        try:
            letter = await asyncio.to_thread(read_dead_letter, bootstrap_servers, letter_id, security)
        except UnknownDeadLetter:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter {letter_id!r}") from None
        return (await with_replays([letter]))[0]

    # Re-publishing inputs is an admin's (shared/ops_roles.py).
    @router.post(
        "/replay",
        response_model=ReplayReport,
        summary="Re-publish dead letters to their topic",
        dependencies=ADMIN_ONLY,
    )
    async def replay(request: ReplayRequest) -> ReplayReport:
        """Each chosen input goes back on its topic with its key, as it was or as corrected; the
        workers take it like any input and dedupe it by `event_id`, so replaying twice is safe."""
        refused: list[Refused] = []
        chosen: list[tuple[DeadLetterView, bytes]] = []
        for letter_id in dict.fromkeys(request.ids):
            try:
                letter = await asyncio.to_thread(read_dead_letter, bootstrap_servers, letter_id, security)
                chosen.append((letter, corrected_value(letter, request.corrections.get(letter_id))))
            except UnknownDeadLetter:
                refused.append(Refused(id=letter_id, reason="no such dead letter"))
            except BadCorrection as error:
                refused.append(Refused(id=letter_id, reason=str(error)))
        placed = await asyncio.to_thread(publish, bootstrap_servers, chosen, security) if chosen else []
        topics = {letter.id: letter.topic for letter, _ in chosen}
        if placed:
            now = datetime.now(UTC).isoformat()
            await redis.hset(REPLAYED, mapping={letter_id: now for letter_id, _, _ in placed})
        return ReplayReport(
            replayed=[Replayed(id=i, topic=topics[i], partition=p, offset=o) for i, p, o in placed],
            refused=refused,
        )

    return router
