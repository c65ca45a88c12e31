"""WeCom's callback protocol (企业微信回调, "加解密方案"): signatures and the encrypted message.
Pure: no HTTP or Redis.

- `msg_signature` is the SHA-1 (hex) of the token, the timestamp, the nonce and the ciphertext,
  sorted as strings and joined.
- The ciphertext is base64 of AES-256-CBC: the key is the corp's EncodingAESKey (43 characters)
  decoded from base64 with one `=` added, the IV its first 16 bytes, padding PKCS#7 to blocks of
  32 bytes. The plaintext is 16 random bytes, the message's length (4 bytes, network order), the
  message (XML), and the receive id (the corp id), which must be the corp's.

Tests check this against an independent implementation (wechatpy's WeCom crypto) as the peer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeCom pads to 32-byte blocks, not AES's 16


class CallbackRefused(Exception):
    """A callback that is not WeCom's for this corp, with why (`reason`: a metrics label)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class CorpKeys:
    """A corp's callback settings, as entered in WeCom's admin console."""

    corp_id: str
    token: str
    encoding_aes_key: str  # 43 characters of base64 without its padding

    def aes_key(self) -> bytes:
        try:
            key = base64.b64decode(self.encoding_aes_key + "=", validate=True)
        except binascii.Error as error:
            raise ValueError("an EncodingAESKey is 43 characters of base64") from error
        if len(key) != 32:
            raise ValueError("an EncodingAESKey is 43 characters of base64 (32 bytes)")
        return key


def signature(token: str, timestamp: str, nonce: str, ciphertext: str) -> str:
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, ciphertext))).encode()).hexdigest()


def signed_by(keys: CorpKeys, msg_signature: str, timestamp: str, nonce: str, ciphertext: str) -> bool:
    expected = signature(keys.token, timestamp, nonce, ciphertext)
    # As bytes: compare_digest refuses str with non-ASCII characters (anything may be sent).
    return hmac.compare_digest(expected.encode(), msg_signature.lower().encode())


def decrypt(keys: CorpKeys, ciphertext: str) -> str:
    """The message in `ciphertext`; CallbackRefused if it does not decrypt for this corp."""
    try:
        raw = base64.b64decode(ciphertext, validate=True)
    except ValueError:  # binascii.Error, or characters that are not ASCII
        raise CallbackRefused("malformed", "the ciphertext is not base64") from None
    if not raw or len(raw) % 16:
        raise CallbackRefused("malformed", "the ciphertext is not whole AES blocks")
    key = keys.aes_key()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    padded = decryptor.update(raw) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= BLOCK or padded[-pad:] != bytes([pad]) * pad:
        raise CallbackRefused("malformed", "bad padding: not encrypted with this corp's key")
    plain = padded[16:-pad]
    if len(plain) < 4:
        raise CallbackRefused("malformed", "too short")
    (length,) = struct.unpack(">I", plain[:4])
    if length > len(plain) - 4:
        raise CallbackRefused("malformed", "the message is shorter than it says")
    message, receive_id = plain[4 : 4 + length], plain[4 + length :]
    if receive_id.decode(errors="replace") != keys.corp_id:
        raise CallbackRefused("wrong_corp", "the message is for another corp id")
    try:
        return message.decode()
    except UnicodeDecodeError:
        raise CallbackRefused("malformed", "the message is not UTF-8") from None


def encrypt(keys: CorpKeys, message: str, random16: bytes) -> str:
    """`message` as WeCom encrypts it (for the local fake WeCom and the stack's tools)."""
    body = message.encode()
    plain = random16 + struct.pack(">I", len(body)) + body + keys.corp_id.encode()
    pad = BLOCK - len(plain) % BLOCK
    key = keys.aes_key()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()).decode()
