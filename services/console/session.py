"""The signed-in session, kept in the browser: an encrypted, signed, expiring cookie.

The cookie carries the user's ops token (encrypted: it is never readable from the cookie) and a
CSRF token that every form must send back. Nothing is stored on the server, so any replica with
the same secret serves any user, and a token withdrawn from OPS_TOKENS ends its sessions at the
next API call.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

import orjson
from cryptography.fernet import Fernet, InvalidToken

SESSION_COOKIE = "pd_session"
LOGIN_COOKIE = "pd_login"  # the sign-in form's CSRF token, before there is a session
LANG_COOKIE = "pd_lang"


@dataclass(frozen=True)
class Session:
    token: str  # the user's ops token: the console calls the APIs with it
    csrf: str


class SessionCodec:
    def __init__(self, secret: str | None, max_age_s: int) -> None:
        if secret is None:
            key = Fernet.generate_key()
        else:  # any long secret: Fernet wants 32 url-safe base64 bytes
            key = base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())
        self._fernet = Fernet(key)
        self.max_age_s = max_age_s

    def open(self, token: str) -> Session:
        return Session(token=token, csrf=secrets.token_urlsafe(32))

    def seal(self, session: Session) -> str:
        return self._fernet.encrypt(orjson.dumps({"t": session.token, "c": session.csrf})).decode()

    def unseal(self, cookie: str | None) -> Session | None:
        """The session in the cookie; None when absent, tampered with, or older than max age."""
        if not cookie:
            return None
        try:
            fields = orjson.loads(self._fernet.decrypt(cookie.encode(), ttl=self.max_age_s))
            return Session(token=str(fields["t"]), csrf=str(fields["c"]))
        except (InvalidToken, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


def same_token(given: str | None, expected: str) -> bool:
    return bool(given) and secrets.compare_digest(str(given).encode(), expected.encode())
