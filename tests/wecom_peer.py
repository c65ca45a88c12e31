"""WeCom's side of the callback protocol, played by an independent implementation: wechatpy's
WeCom crypto signs and encrypts what the tests send to ingest's `/v1/wecom/callback`."""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

import httpx
from wechatpy.crypto import _get_signature
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto

from tests.conftest import WECOM_CORP


@dataclass(frozen=True)
class SignedCallback:
    params: dict[str, str]
    body: str

    def post(self, ingest: httpx.Client) -> httpx.Response:
        return ingest.post("/v1/wecom/callback", params=self.params, content=self.body)


def signed(
    message: str, corp_id: str = WECOM_CORP["corp_id"], timestamp: int | None = None, nonce: str | None = None
) -> SignedCallback:
    """`message` encrypted and signed as WeCom sends it, by the test corp's token and key; the
    receive id `corp_id` (another corp's: a message not meant for this corp)."""
    crypto = WeChatCrypto(WECOM_CORP["token"], WECOM_CORP["encoding_aes_key"], corp_id)
    stamp, nonce = str(timestamp or int(time.time())), nonce or uuid.uuid4().hex[:16]
    envelope = ElementTree.fromstring(crypto.encrypt_message(message, nonce, stamp))
    ciphertext = envelope.findtext("Encrypt") or ""
    body = (
        f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName>"
        f"<Encrypt><![CDATA[{ciphertext}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"
    )
    params = {"msg_signature": envelope.findtext("MsgSignature") or "", "timestamp": stamp, "nonce": nonce}
    return SignedCallback(params, body)


def url_verification(echo: str) -> dict[str, str]:
    """The query WeCom sends to verify a callback URL, whose decrypted `echostr` is `echo`."""
    crypto = WeChatCrypto(WECOM_CORP["token"], WECOM_CORP["encoding_aes_key"], WECOM_CORP["corp_id"])
    echostr = PrpCrypto(crypto.key).encrypt(echo, WECOM_CORP["corp_id"]).decode()
    stamp, nonce = str(int(time.time())), uuid.uuid4().hex[:16]
    signature = _get_signature(WECOM_CORP["token"], stamp, nonce, echostr)
    return {"msg_signature": signature, "timestamp": stamp, "nonce": nonce, "echostr": echostr}


def contact_added(external_userid: str, consultant: str, state: str = "", at: int | None = None) -> str:
    """WeCom's `add_external_contact` callback message."""
    return (
        f"<xml><ToUserName><![CDATA[{WECOM_CORP['corp_id']}]]></ToUserName>"
        "<FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{at or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[change_external_contact]]></Event>"
        "<ChangeType><![CDATA[add_external_contact]]></ChangeType>"
        f"<UserID><![CDATA[{consultant}]]></UserID><ExternalUserID><![CDATA[{external_userid}]]></ExternalUserID>"
        f"<State><![CDATA[{state}]]></State><WelcomeCode><![CDATA[wc-1]]></WelcomeCode></xml>"
    )


def group_members_changed(chat_id: str, detail: str, members: list[str], at: int | None = None) -> str:
    """WeCom's `change_external_chat` `update` callback message naming the members that changed."""
    items = "".join(f"<Item><![CDATA[{m}]]></Item>" for m in members)
    return (
        f"<xml><ToUserName><![CDATA[{WECOM_CORP['corp_id']}]]></ToUserName>"
        "<FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{at or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[" + chat_id + "]]></ChatId>"
        "<ChangeType><![CDATA[update]]></ChangeType>"
        f"<UpdateDetail><![CDATA[{detail}]]></UpdateDetail><JoinScene>1</JoinScene>"
        f"<MemChangeCnt>{len(members)}</MemChangeCnt><MemChangeList>{items}</MemChangeList></xml>"
    )
