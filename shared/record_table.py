"""A Faust table of one record per customer: dataclasses, written as JSON, read back with pydantic.

Rows are kept as objects in memory. Workers write their changelog records themselves, in bulk
with a batch's other outputs, as `RecordCodec.encode` bytes keyed by the raw customer id; Faust
reads them back with the same codec when a worker takes over a partition. Encoding happens for
every changed row of every batch, so it uses orjson, which writes dataclasses, datetimes and
enums natively (about twice as fast as pydantic here); decoding, only on recovery, validates
through a pydantic TypeAdapter of the record type. The Faust codec and table hooks this needs are
in shared/faust_runtime.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import faust
from pydantic import TypeAdapter

from shared.faust_runtime import FaustCodec, codec_table
from shared.ledger import Ledger
from shared.record_json import encode_record

R = TypeVar("R")


class RecordCodec(FaustCodec, Generic[R]):
    def __init__(self, record_type: type[R], customer_of: Callable[[R], str] | None = None) -> None:
        """`customer_of`: the customer id a row holds, which a restored row is keyed by."""
        super().__init__()
        self._adapter = TypeAdapter(record_type)
        self._customer_of = customer_of

    def encode(self, record: R) -> bytes:
        return encode_record(record)

    def decode(self, raw: bytes) -> R:
        return self._adapter.validate_json(raw)

    def row_key(self, key: str, record: R) -> str:
        own = self._customer_of(record) if self._customer_of is not None else key
        return own if own == key else key

    def row_partition(self, record: R) -> int | None:
        """A row's partition: the one its latest input came through, by its ledger (rows of the
        stream workers have one, shared/fold.py); None for a record without."""
        ledger = getattr(record, "ledger", None)
        return ledger.latest_partition if isinstance(ledger, Ledger) else None


def record_table(
    app: faust.App, name: str, codec: RecordCodec[Any], partitions: int, help: str
) -> faust.Table:
    """The table `name`, keyed by raw customer ids, its values (and changelog's) through `codec`."""
    return codec_table(app, name, codec, partitions=partitions, help=help)
