"""`pd-fake-wecom`: a stand-in for WeCom's server API (qyapi.weixin.qq.com), for the local stack
and the tests: what the WeCom sender calls, with faults that can be injected.

- `GET /cgi-bin/gettoken?corpid=&corpsecret=`: an access token (errcode 40001 for another secret).
- `POST /cgi-bin/externalcontact/add_msg_template?access_token=`: a message task, kept in order
  (42001 for an expired token, 40014 for an unknown one).
- `POST /cgi-bin/externalcontact/groupchat/add_join_way` and `get_join_way`: a way into customer
  groups (a group invitation) and its QR code.
- `GET /fake/messages`: the tasks received; `GET /fake/join-ways`: the join ways made.
- `POST /fake/faults` `{"path", "errcode", "times", "external_userid"?}`: the next `times` calls
  of the path (`gettoken`, `add_msg_template`, `add_join_way`, `get_join_way`; with
  `external_userid`, only message tasks for that customer) answer `errcode`.
  `POST /fake/rate` `{"per_second"}`: past it, calls answer 45009 as WeCom does.
  `POST /fake/expire-tokens`: every token issued expires. `POST /fake/reset`.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from typing import Any

from fastapi import FastAPI, Query
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings

from shared.http import serve

ERRORS = {
    -1: "system busy",
    40001: "invalid credential",
    40003: "invalid userid",
    40014: "invalid access_token",
    42001: "access_token expired",
    40058: "invalid parameter",
    45009: "api freq out of limit",
    84061: "not external contact",
}


class FakeWeComSettings(BaseSettings):
    http_host: str = "127.0.0.1"
    fake_wecom_port: int = 8010
    wecom_corp_id: str = "wwlocal0000000001"
    wecom_corp_secret: str = "local-wecom-secret"


class Fault(BaseModel):
    path: str = Field(pattern=r"^(gettoken|add_msg_template|add_join_way|get_join_way)$")
    errcode: int
    times: int = Field(default=1, ge=1, le=1000)
    external_userid: str | None = None  # add_msg_template: only tasks for this customer


class RateLimit(BaseModel):
    per_second: int | None = Field(default=None, ge=1)


def create_app(settings: FakeWeComSettings) -> FastAPI:
    app = FastAPI(title="Fake WeCom", docs_url=None, redoc_url=None)
    tokens: dict[str, float] = {}
    messages: list[dict[str, Any]] = []
    join_ways: dict[str, dict[str, Any]] = {}
    faults: list[Fault] = []
    calls: deque[float] = deque()
    limit = RateLimit()

    def error(errcode: int) -> dict[str, Any]:
        return {"errcode": errcode, "errmsg": ERRORS.get(errcode, "error")}

    def injected(path: str, task: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """An injected fault for this call, or WeCom's answer past the rate limit."""
        customers = (task or {}).get("external_userid") or []
        now = time.monotonic()
        calls.append(now)
        while calls and calls[0] < now - 1:
            calls.popleft()
        if limit.per_second is not None and len(calls) > limit.per_second:
            return error(45009)
        for fault in faults:
            if fault.path == path and fault.external_userid in (None, *customers):
                fault.times -= 1
                if fault.times == 0:
                    faults.remove(fault)
                return error(fault.errcode)
        return None

    @app.get("/cgi-bin/gettoken")
    async def gettoken(corpid: str = Query(""), corpsecret: str = Query("")) -> dict[str, Any]:
        if (fault := injected("gettoken")) is not None:
            return fault
        if (corpid, corpsecret) != (settings.wecom_corp_id, settings.wecom_corp_secret):
            return error(40001)
        token = secrets.token_urlsafe(24)
        tokens[token] = time.monotonic() + 7200
        return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}

    def refused_token(access_token: str) -> dict[str, Any] | None:
        if access_token not in tokens:
            return error(40014)
        if tokens[access_token] < time.monotonic():
            return error(42001)
        return None

    @app.post("/cgi-bin/externalcontact/groupchat/add_join_way")
    async def add_join_way(way: dict[str, Any], access_token: str = Query("")) -> dict[str, Any]:
        if (fault := injected("add_join_way") or refused_token(access_token)) is not None:
            return fault
        if way.get("scene") not in (1, 2) or not way.get("chat_id_list"):
            return error(40058)
        config_id = f"cfg{len(join_ways) + 1:06d}"
        join_ways[config_id] = {
            "config_id": config_id,
            "qr_code": f"https://wecom.fake/join/{config_id}",
            **way,
        }
        return {"errcode": 0, "errmsg": "ok", "config_id": config_id}

    @app.post("/cgi-bin/externalcontact/groupchat/get_join_way")
    async def get_join_way(query: dict[str, Any], access_token: str = Query("")) -> dict[str, Any]:
        if (fault := injected("get_join_way") or refused_token(access_token)) is not None:
            return fault
        if (way := join_ways.get(str(query.get("config_id")))) is None:
            return error(40058)
        return {"errcode": 0, "errmsg": "ok", "join_way": way}

    @app.post("/cgi-bin/externalcontact/add_msg_template")
    async def add_msg_template(task: dict[str, Any], access_token: str = Query("")) -> dict[str, Any]:
        if (fault := injected("add_msg_template", task) or refused_token(access_token)) is not None:
            return fault
        msgid = f"msg{len(messages) + 1:08d}"
        messages.append({"msgid": msgid, **task})
        return {"errcode": 0, "errmsg": "ok", "fail_list": [], "msgid": msgid}

    @app.get("/fake/messages")
    async def received() -> list[dict[str, Any]]:
        return messages

    @app.get("/fake/join-ways")
    async def made() -> list[dict[str, Any]]:
        return list(join_ways.values())

    @app.post("/fake/faults")
    async def add_fault(fault: Fault) -> dict[str, int]:
        faults.append(fault)
        return {"faults": len(faults)}

    @app.post("/fake/rate")
    async def set_rate(rate: RateLimit) -> RateLimit:
        limit.per_second = rate.per_second
        return limit

    @app.post("/fake/expire-tokens")
    async def expire_tokens() -> dict[str, int]:
        for token in tokens:
            tokens[token] = 0.0
        return {"expired": len(tokens)}

    @app.post("/fake/reset")
    async def reset() -> dict[str, str]:
        tokens.clear()
        messages.clear()
        join_ways.clear()
        faults.clear()
        calls.clear()
        limit.per_second = None
        return {"status": "reset"}

    @app.get("/readyz")
    @app.get("/healthz")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    settings = FakeWeComSettings()
    serve(create_app(settings), settings.http_host, settings.fake_wecom_port)


if __name__ == "__main__":
    main()
