"""`DELETE /v1/customers/{customer_id}`: erase a customer (services/ingest/erasure.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, status
from redis.exceptions import RedisError

from shared.erasure import ErasureRecord
from shared.http import Edit, edit_of

from .erasure import CustomerNotFound, Eraser
from .pipeline import BrokerUnavailable

log = logging.getLogger(__name__)


def erasure_router(
    eraser: Callable[[], Eraser], clock: Callable[[], datetime], dependencies: Sequence[Any]
) -> APIRouter:
    router = APIRouter(tags=["identities"])

    @router.delete(
        "/v1/customers/{customer_id}",
        response_model=ErasureRecord,
        dependencies=list(dependencies),
        responses={
            401: {},
            403: {},
            404: {"description": "no such customer, ever"},
            503: {"description": "recorded, not finished (broker or Redis away): call again"},
        },
    )
    async def erase_customer(
        customer_id: Annotated[str, Path(min_length=1, max_length=64)],
        edit: Annotated[Edit, Depends(edit_of)],
    ) -> ErasureRecord:
        """Erase a customer (PIPL's right to deletion), with every customer merged into them:
        identifiers, scores, profile, journeys, leads and worker state on every service. What
        stays is this erasure record (who, when, by whom); events still on their way for them,
        replays and retries of their old events are dropped. Ingest's part is done when this
        answers; the workers' follows within seconds (docs/privacy.md, "Erasure"). Calling it
        again returns the same record, and finishes an erasure a 503 left unfinished."""
        try:
            record = await eraser().erase(customer_id, clock(), edit.editor.holder)
        except CustomerNotFound as missing:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(missing)) from None
        except (BrokerUnavailable, RedisError, OSError, TimeoutError) as error:
            log.warning("erasure not finished, it stays pending: %r", error)
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "erasure recorded but not finished; call again (it also finishes by itself)",
                headers={"Retry-After": "5"},
            ) from error
        log.info("customer erased", extra={"by": edit.editor.holder, "customers": len(record.customer_ids)})
        return record

    return router
