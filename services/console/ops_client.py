"""The ops APIs as the console calls them: one HTTP client, each call with the user's own token.

The console has no data of its own; everything on its pages is one of these calls. Failures are
typed so pages can say what went wrong where it went wrong: a 401 ends the session, a 422 is
shown at the form's fields, anything else marks the panel it feeds as unavailable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .forms import FORM_ERROR, errors_at_fields


class ApiError(Exception):
    """An ops API answered with an error status (or could not be reached: status 0)."""

    def __init__(self, service: str, status: int, detail: Any) -> None:
        super().__init__(f"{service}: {status} {detail!r}"[:300])
        self.service = service
        self.status = status
        self.detail = detail


class SignedOut(ApiError):
    """The API refused the session's token (expired or withdrawn): sign in again."""


@dataclass(frozen=True)
class OpsApi:
    """One ops API (ingest, scoring, tagging or campaign) at its base URL."""

    service: str
    base_url: str
    http: httpx.AsyncClient

    async def call(
        self,
        method: str,
        path: str,
        token: str,
        *,
        params: Any = None,
        json: Any = None,
        if_match: str | None = None,
    ) -> Any:
        """The answer's JSON (None for 204). Raises SignedOut on 401 and ApiError otherwise.
        `if_match`: the ETag of the version a change edits (409 if it moved on)."""
        response = await self._request(method, path, token, params, json, if_match)
        return None if response.status_code == 204 else response.json()

    async def read_versioned(self, path: str, token: str) -> tuple[Any, str | None]:
        """One item's JSON and its ETag (the version to send back as If-Match)."""
        response = await self._request("GET", path, token, None, None, None)
        return response.json(), response.headers.get("ETag")

    async def _request(
        self, method: str, path: str, token: str, params: Any, json: Any, if_match: str | None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} | ({"If-Match": if_match} if if_match else {})
        try:
            response = await self.http.request(
                method, self.base_url + path, params=params, json=json, headers=headers
            )
        except httpx.HTTPError as error:
            raise ApiError(self.service, 0, f"unreachable: {type(error).__name__}") from error
        if response.status_code == 401:
            raise SignedOut(self.service, 401, "token refused")
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text[:300]
            raise ApiError(self.service, response.status_code, detail)
        return response

    async def get(self, path: str, token: str, params: Any = None) -> Any:
        return await self.call("GET", path, token, params=params)


@dataclass(frozen=True)
class OpsApis:
    ingest: OpsApi
    scoring: OpsApi
    tagging: OpsApi
    campaign: OpsApi

    @classmethod
    def over(cls, http: httpx.AsyncClient, urls: dict[str, str]) -> OpsApis:
        return cls(**{name: OpsApi(name, url.rstrip("/"), http) for name, url in urls.items()})


async def gather(calls: Mapping[str, Awaitable[Any]]) -> dict[str, Any]:
    """The calls at once: each one's answer, or the ApiError it failed with, so a page can show
    what it has. A refused token (SignedOut) or anything unexpected is raised."""
    answers = await asyncio.gather(*calls.values(), return_exceptions=True)
    for answer in answers:
        if isinstance(answer, SignedOut) or (
            isinstance(answer, BaseException) and not isinstance(answer, ApiError)
        ):
            raise answer
    return dict(zip(calls, answers, strict=True))


async def refusal_of(
    api: OpsApi,
    method: str,
    path: str,
    token: str,
    body: Any,
    placed_at: Iterable[str],
    conflict_at: str,
    if_match: str | None = None,
) -> dict[str, list[str]] | None:
    """Send a form's definition: None when the API took it, else why not, at the form's fields
    (a 422's errors where their `loc` points, a 409 at `conflict_at`; a 409 for a stale
    `if_match` — someone saved the item after the form was opened — above the form)."""
    try:
        await api.call(method, path, token, json=body, if_match=if_match)
    except ApiError as error:
        if error.status == 422:
            return errors_at_fields(error.detail, placed_at)
        if error.status == 409:
            return {FORM_ERROR if if_match else conflict_at: [str(error.detail)]}
        raise
    return None
