"""What goes to a `<topic>.dlq`: an input a worker could not take, or a record the broker will
never take, with the reason (docs/contract.md, "Delivery guarantees" and "Bounds").

Kept small itself, so that it can always be written: the value is cut to
MAX_DEAD_LETTER_VALUE_BYTES (and `value_bytes` keeps the size it had), the key to
MAX_DEAD_LETTER_KEY_BYTES, the reason to MAX_REASON_CHARS. A dead letter whose value was cut
cannot be replayed as it was, only corrected (services/campaign/dead_letters.py).

Light on imports: ingest's merge relay writes them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from shared.fold import Delivery
from shared.kafka import Refused

# What a dead letter carries at most: enough to see what the input was, never so much that the
# dead letter is itself a record too large to write.
MAX_DEAD_LETTER_VALUE_BYTES = 64 * 1024
MAX_DEAD_LETTER_KEY_BYTES = 1024
MAX_REASON_CHARS = 2000
# A whole dead letter as written, escapes included (a value of control characters grows sixfold
# as JSON): its value is cut further until the letter fits.
MAX_DEAD_LETTER_BYTES = 96 * 1024


@dataclass
class DeadLetter:
    """An input the worker could not take (or an output the broker refused: `offset` -1), with
    why. Kept small: a value over MAX_DEAD_LETTER_VALUE_BYTES is cut, and `value_bytes` says how
    large it was (None: the value is whole)."""

    topic: str
    key: bytes | None
    value: bytes | None
    reason: str
    partition: int
    offset: int
    value_bytes: int | None = None

    def __post_init__(self) -> None:
        self.reason = self.reason[:MAX_REASON_CHARS]
        if self.key is not None and len(self.key) > MAX_DEAD_LETTER_KEY_BYTES:
            self.key = self.key[:MAX_DEAD_LETTER_KEY_BYTES]
        if self.value is not None and len(self.value) > MAX_DEAD_LETTER_VALUE_BYTES:
            self.value_bytes = self.value_bytes or len(self.value)
            self.value = self.value[:MAX_DEAD_LETTER_VALUE_BYTES]

    def encode(self) -> bytes:
        value = self.value.decode("utf-8", "replace") if self.value is not None else None
        letter: dict[str, Any] = {
            "error": self.reason,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "value": value,
        }
        if self.value_bytes is not None:
            letter["value_bytes"] = self.value_bytes
        encoded = orjson.dumps(letter)
        while len(encoded) > MAX_DEAD_LETTER_BYTES and letter["value"]:
            letter["value"] = letter["value"][: len(letter["value"]) // 2]
            letter["value_bytes"] = self.value_bytes or len(self.value or b"")
            encoded = orjson.dumps(letter)
        return encoded

    @classmethod
    def decode(cls, key: bytes | None, raw: bytes) -> DeadLetter:
        """A dead letter as `encode` wrote it on `<topic>.dlq` (its value read back as UTF-8)."""
        letter = orjson.loads(raw)
        value = letter.get("value")
        size = letter.get("value_bytes")
        return cls(
            str(letter.get("topic")),
            key,
            value.encode() if value is not None else None,
            str(letter.get("error", "")),
            int(letter.get("partition", -1)),
            int(letter.get("offset", -1)),
            int(size) if size is not None else None,
        )

    @classmethod
    def of(cls, message: Any, reason: str) -> DeadLetter:
        """From a Faust message (anything with topic, key, value, partition, offset)."""
        return cls(message.topic, message.key, message.value, reason, message.partition, message.offset)

    @classmethod
    def of_delivery(cls, delivery: Delivery[Any], reason: str) -> DeadLetter:
        """An input as it was read, for the dead-letter topic of its input topic."""
        topic, _, partition = delivery.partition.rpartition("/")
        value = delivery.raw or delivery.payload.model_dump_json().encode()
        return cls(topic, delivery.customer_id.encode(), value, reason, int(partition), delivery.offset)

    @classmethod
    def of_refused(cls, refused: Refused) -> DeadLetter:
        """An output the broker will never take (offset -1: no input's place)."""
        record = refused.record
        partition = record.partition if record.partition is not None else -1
        return cls(record.topic, record.key, record.value, refused.reason, partition, -1)
