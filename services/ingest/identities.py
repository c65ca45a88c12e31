"""Identifiers as ingest stores and publishes them: phones normalised and hashed, never raw.

A raw phone number never leaves ingest, wherever it hides in an event (docs/ingest.md,
"Phones"): the `phone` identity and the properties named like a phone must be valid numbers and
are replaced by their salted hash (an invalid one is refused, 422); anywhere else — any other
identity, any property at any depth, a dictionary key, an integer, or inside free text — a value
that is a phone number is replaced by its hash too (inside text, the number alone, as
`phone:<hash>`). What counts as a phone there: a Chinese mobile number (11 digits from 13-19,
with or without +86 / 86 and spaces or dashes between digits) or a `+` international number that
phonenumbers finds valid. Landline numbers written without `+` are not recognised in free text.

Pure functions; no Redis or Kafka here.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata

from shared.events import InvalidEvent

# Property names (at any depth, any case, `_`/`-`/spaces aside) that hold a phone number: their
# value must be one, landlines included, and is hashed like the `phone` identity (else 422).
PHONE_NAMES = frozenset(
    {"phone", "mobile", "phonenumber", "mobilenumber", "tel", "telephone", "cellphone", "cell"}
    | {"mobilephone", "contactphone", "手机", "手机号", "手机号码", "电话", "联系电话", "联系方式"}
)


@functools.lru_cache(maxsize=4096)  # property names repeat from event to event
def phone_named(name: str) -> bool:
    compact = name.lower().replace("_", "").replace("-", "").replace(" ", "")
    return compact in PHONE_NAMES or compact.endswith(("phone", "mobile"))


PHONE_HASH = re.compile(r"[0-9a-f]{64}")  # fullmatch: a trailing newline is no hash

# The common case, a Chinese mobile written as 11 digits (maybe after +86, maybe spaced or
# dashed), is recognised by the library's own pattern for Chinese mobiles without parsing the
# number, which takes about 20 µs. Anything else goes through phonenumbers' parser.
_CN_MOBILE_SHAPE = re.compile(r"(\+86)?(1\d{10})")
_CN_MOBILE = re.compile(PhoneMetadata.metadata_for_region("CN").mobile.national_number_pattern)
_SEPARATORS = str.maketrans("", "", " -")


def normalise_phone(raw: str, default_region: str = "CN") -> str:
    """Return the number in E.164 (+86 assumed when it has no country code)."""
    shape = _CN_MOBILE_SHAPE.fullmatch(raw.translate(_SEPARATORS))
    if shape and (shape[1] or default_region == "CN") and _CN_MOBILE.fullmatch(shape[2]):
        return "+86" + shape[2]
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as error:
        raise ValueError(f"not a phone number: {error}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def hash_phone(e164: str, salt: str) -> str:
    """Salted SHA-256 (as an HMAC, so the salt cannot be peeled off by length extension)."""
    return hmac.new(salt.encode(), e164.encode(), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=65_536)
def phone_identity(raw: str, salt: str, default_region: str = "CN") -> str:
    """The stored form of a phone: its hash. A value that already is a hash passes through.

    Remembered per spelling (in this process's memory only): parsing a number costs about
    25 µs, and a customer's phone comes back with each of their lead forms and store visits.
    """
    if PHONE_HASH.fullmatch(raw):
        return raw
    return hash_phone(normalise_phone(raw, default_region), salt)


@functools.lru_cache(maxsize=1024)
def api_key_id(key: str) -> str:
    """A fingerprint naming a touchpoint key in published events without revealing it."""
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def identity_key(kind: str, value: str) -> str:
    """The canonical `type:value` form the identity graph is keyed by."""
    return f"{kind}:{value}"


# A phone inside a longer value: a Chinese mobile (maybe after +86/86 and with spaces or dashes
# between digits), or a `+` international number, not glued to other letters or digits.
_PHONE_IN_TEXT = re.compile(
    r"(?<![0-9A-Za-z+])(?:(?:\+|00)?86[\s-]?)?1[3-9]\d(?:[\s-]?\d){8}(?![0-9A-Za-z])"
    r"|(?<![0-9A-Za-z+])\+[1-9]\d{0,2}(?:[\s().-]{0,2}\d){6,14}(?![0-9A-Za-z])"
)
# Every phone the pattern finds has at least 7 digits (\d, as in the pattern): a value with fewer
# holds none and is not searched. Counted by the regex engine, not a Python loop over characters
# (the loop was a third of ingest's cost of protecting an event).
_SEVEN_DIGITS = re.compile(r"\D*(?:\d\D*){7}")


def looks_like_phone(value: str, default_region: str = "CN") -> bool:
    """The whole value is a phone number by the rule above."""
    if not 7 <= len(value) <= 32 or not _PHONE_IN_TEXT.fullmatch(value.strip()):
        return False
    try:
        normalise_phone(value.strip(), default_region)
    except ValueError:
        return False
    return True


def scrub_text(text: str, salt: str, default_region: str = "CN") -> str:
    """The text with every phone number in it replaced by `phone:<hash>`; the whole text by the
    bare hash when it is nothing but a phone."""
    if _SEVEN_DIGITS.match(text) is None:
        return text
    if looks_like_phone(text, default_region):
        return phone_identity(text.strip(), salt, default_region)

    def hashed(found: re.Match[str]) -> str:
        try:
            return "phone:" + hash_phone(normalise_phone(found[0], default_region), salt)
        except ValueError:
            return found[0]

    return _PHONE_IN_TEXT.sub(hashed, text)


def scrub(
    value: Any, salt: str, default_region: str = "CN", strict: Callable[[Any, list[Any]], Any] | None = None
) -> Any:
    """A JSON value with every phone number in it, at any depth, keys included, replaced by its
    hash. A value under a phone-named key goes to `strict(value, loc)` instead, when given.
    Iterative: a deep value costs no recursion (ingest caps depth before this anyway)."""
    root: list[Any] = [value]
    stack: list[tuple[Any, Any, Any, tuple[Any, ...]]] = [(root, 0, value, ())]  # parent, slot, node, loc
    while stack:
        parent, slot, node, loc = stack.pop()
        if isinstance(node, dict):
            copy: dict[Any, Any] = {}
            for key, item in node.items():
                clean_key = key
                if isinstance(key, str):
                    clean_key = scrub_text(key, salt, default_region)
                    if strict is not None and item is not None and phone_named(key):
                        copy[clean_key] = strict(item, [*loc, clean_key])
                        continue
                # Strings, the usual property, are cleaned here rather than stacked: most events'
                # properties are a flat object of a few labels.
                if isinstance(item, str):
                    copy[clean_key] = scrub_text(item, salt, default_region)
                else:
                    copy[clean_key] = item
                    if isinstance(item, dict | list | int):
                        stack.append((copy, clean_key, item, (*loc, clean_key)))
            parent[slot] = copy
        elif isinstance(node, list):
            listed = list(node)
            for index, item in enumerate(listed):
                stack.append((listed, index, item, (*loc, index)))
            parent[slot] = listed
        elif isinstance(node, str):
            parent[slot] = scrub_text(node, salt, default_region)
        elif (
            isinstance(node, int)
            and not isinstance(node, bool)
            and looks_like_phone(str(node), default_region)
        ):
            parent[slot] = phone_identity(str(node), salt, default_region)
    return root[0]


def protect_event(
    identities: dict[str, Any],
    properties: dict[str, Any],
    salt: str,
    default_region: str = "CN",
    event_type: str = "",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A validated event's identities and properties (as JSON-ready dicts) with every phone
    replaced by its hash.

    Raises InvalidEvent with field-level errors for a `phone` identity or a phone-named
    property that is no phone number, and for a (custom) event type that holds one.
    """
    errors: list[dict[str, Any]] = []

    def hashed(raw: Any, loc: list[Any]) -> Any:
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        if not isinstance(raw, str):
            errors.append({"loc": loc, "msg": "phone must be a string", "type": "string_type"})
            return None
        try:
            return phone_identity(raw, salt, default_region)
        except ValueError as error:
            errors.append({"loc": loc, "msg": str(error), "type": "phone_invalid"})
            return None

    if event_type and scrub_text(event_type, salt, default_region) != event_type:
        errors.append(
            {"loc": ["type"], "msg": "an event type may not hold a phone number", "type": "phone_in_type"}
        )
    identities = {
        kind: hashed(value, ["identities", kind])
        if kind == "phone"
        else scrub_text(value, salt, default_region)
        for kind, value in identities.items()
    }
    properties = scrub(
        properties, salt, default_region, strict=lambda value, loc: hashed(value, ["properties", *loc])
    )
    if errors:
        raise InvalidEvent(errors)
    return identities, properties
