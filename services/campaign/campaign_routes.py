"""`/v1/campaigns` on the campaign API: create, read, change (pause and resume), delete. Every
change is kept in the audit trail with who made it; a change may carry the ETag of the version
it edits (If-Match) and gets 409 if the campaign moved on meanwhile."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from shared.http import OPERATOR_ONLY, Edit, edit_of
from shared.versioned_hash import VersionConflict
from shared.versioned_routes import apply_change, read_one

from .definitions import Campaign
from .examples import example_campaigns, example_journeys
from .store import CAMPAIGNS, load_campaigns

log = logging.getLogger(__name__)

CampaignId = Annotated[str, Path(min_length=1, max_length=64)]
Editing = Annotated[Edit, Depends(edit_of)]
_STALE = {409: {"description": "If-Match named a version of the campaign that moved on"}}


class CampaignList(BaseModel):
    version: int = Field(description="goes up with every change; workers apply it within seconds")
    campaigns: list[Campaign]


async def create(redis: Redis, campaign: Campaign, edit: Edit, response: Response) -> Campaign:
    """Store a new campaign (409 if the id exists), audited as `edit` says."""
    document = campaign.model_dump_json()
    await apply_change(redis, CAMPAIGNS, "campaign", "create", campaign.id, document, edit, response)
    log.info("campaign created", extra={"campaign": campaign.id, "by": edit.editor.holder})
    return campaign


def campaign_router(redis: Redis) -> APIRouter:
    router = APIRouter(tags=["campaigns"])

    @router.get("/campaigns", response_model=CampaignList, summary="Every campaign")
    async def list_campaigns() -> CampaignList:
        version, campaigns = await load_campaigns(redis)
        return CampaignList(version=version, campaigns=campaigns)

    @router.post(
        "/campaigns",
        dependencies=OPERATOR_ONLY,
        response_model=Campaign,
        status_code=status.HTTP_201_CREATED,
        summary="Create a campaign",
        responses={409: {"description": "the id exists"}, 422: {"description": "invalid, with reasons"}},
    )
    async def create_campaign(campaign: Campaign, edit: Editing, response: Response) -> Campaign:
        """Running workers take it up within seconds."""
        return await create(redis, campaign, edit, response)

    @router.post(
        "/campaigns/examples",
        dependencies=OPERATOR_ONLY,
        response_model=CampaignList,
        summary="Add the example campaigns (the paper's flows) that are not there yet",
    )
    async def add_examples(edit: Editing) -> CampaignList:
        for campaign in (*example_campaigns(), *example_journeys()):
            try:
                await CAMPAIGNS.change(
                    redis, "create", campaign.id, campaign.model_dump_json(), editor=edit.editor
                )
            except VersionConflict:
                continue
        return await list_campaigns()

    @router.get(
        "/campaigns/{campaign_id}",
        response_model=Campaign,
        summary="One campaign",
        responses={404: {"description": "no such campaign"}},
    )
    async def get_campaign(campaign_id: CampaignId, response: Response) -> Campaign:
        """The ETag is the campaign's version: send it back as If-Match with a PUT or DELETE."""
        return Campaign.model_validate_json(
            await read_one(redis, CAMPAIGNS, "campaign", campaign_id, response)
        )

    @router.put(
        "/campaigns/{campaign_id}",
        dependencies=OPERATOR_ONLY,
        response_model=Campaign,
        summary="Change a campaign (pause and resume with `status`)",
        responses={
            404: {"description": "no such campaign"},
            422: {"description": "invalid, or another id"},
            **_STALE,
        },
    )
    async def put_campaign(
        campaign_id: CampaignId, campaign: Campaign, edit: Editing, response: Response
    ) -> Campaign:
        if campaign.id != campaign_id:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [{"loc": ["body", "id"], "msg": f"must be {campaign_id!r}, the id in the path"}],
            )
        document = campaign.model_dump_json()
        await apply_change(redis, CAMPAIGNS, "campaign", "replace", campaign_id, document, edit, response)
        log.info(
            "campaign changed",
            extra={"campaign": campaign_id, "status": campaign.status, "by": edit.editor.holder},
        )
        return campaign

    @router.delete(
        "/campaigns/{campaign_id}",
        dependencies=OPERATOR_ONLY,
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Delete a campaign (its figures stay readable)",
        responses={404: {"description": "no such campaign"}, **_STALE},
    )
    async def delete_campaign(campaign_id: CampaignId, edit: Editing) -> Response:
        await apply_change(redis, CAMPAIGNS, "campaign", "delete", campaign_id, "", edit)
        log.info("campaign deleted", extra={"campaign": campaign_id, "by": edit.editor.holder})
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
