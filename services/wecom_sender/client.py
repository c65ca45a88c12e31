"""WeCom's server API, as the sender calls it: an access token cached until shortly before it
expires (and replaced at once when WeCom says it is no longer good), a rate kept below WeCom's
limits (pyrate-limiter: a maintained token-bucket limiter, rather than our own), and WeCom's
error codes turned into what to do (delivery.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from pyrate_limiter import Duration, Limiter, Rate

from .delivery import verdict

TOKEN_MARGIN_S = 300  # a token is replaced this long before WeCom says it expires


class WeComError(Exception):
    def __init__(self, errcode: int, errmsg: str, retriable: bool) -> None:
        super().__init__(f"WeCom error {errcode}: {errmsg}")
        self.errcode = errcode
        self.retriable = retriable


class WeComClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        corp_id: str,
        secret: str,
        requests_per_second: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._corp_id = corp_id
        self._secret = secret
        self._limiter = Limiter(Rate(requests_per_second, Duration.SECOND))
        self._clock = clock
        self._token: str | None = None
        self._token_until = 0.0

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to WeCom with a good token; WeComError for an answer that is not `ok`."""
        for attempt in (1, 2):  # a token WeCom no longer takes is replaced once
            token = await self._access_token(fresh=attempt == 2)
            answer = await self._call("POST", path, params={"access_token": token}, json=body)
            errcode = int(answer.get("errcode", 0))
            judged = verdict(errcode)
            if judged == "ok":
                return answer
            if judged == "token" and attempt == 1:
                continue
            raise WeComError(errcode, str(answer.get("errmsg", "")), retriable=judged == "retry")
        raise AssertionError("unreachable")

    async def _access_token(self, fresh: bool) -> str:
        if self._token is not None and not fresh and self._clock() < self._token_until:
            return self._token
        answer = await self._call(
            "GET", "/cgi-bin/gettoken", params={"corpid": self._corp_id, "corpsecret": self._secret}
        )
        errcode = int(answer.get("errcode", 0))
        if errcode != 0 or "access_token" not in answer:
            raise WeComError(
                errcode, str(answer.get("errmsg", "no access_token")), retriable=verdict(errcode) == "retry"
            )
        self._token = str(answer["access_token"])
        self._token_until = self._clock() + max(int(answer.get("expires_in", 7200)) - TOKEN_MARGIN_S, 60)
        return self._token

    async def _call(self, method: str, path: str, **request: Any) -> dict[str, Any]:
        await self._limiter.try_acquire_async("wecom")
        try:
            response = await self._http.request(method, path, **request)
        except httpx.TransportError as error:
            raise WeComError(-1, f"no answer: {error!r}", retriable=True) from error
        if response.status_code >= 500 or response.status_code == 429:
            raise WeComError(-1, f"HTTP {response.status_code}", retriable=True)
        try:
            answer = response.json()
        except ValueError:
            raise WeComError(
                -1, f"HTTP {response.status_code}, not JSON", retriable=response.status_code >= 500
            ) from None
        if not isinstance(answer, dict):
            raise WeComError(-1, "an answer that is not an object", retriable=False)
        return answer
