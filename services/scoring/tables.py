"""The worker's table: one `CustomerRecord` per customer, backed by a changelog topic.

Rows are kept as objects in memory. The agent writes their changelog records itself, in bulk
with the batch's other outputs (agents.py), as `encode_record` bytes keyed by the raw customer
id; Faust reads them back with the same codecs when a worker takes over a partition.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.serializers import codecs
from pydantic import TypeAdapter

from .batch import CustomerRecord
from .settings import ScoringSettings

RECORD_CODEC = "scoring-customer-record"


_RECORD = TypeAdapter(CustomerRecord)


def encode_record(record: CustomerRecord) -> bytes:
    return _RECORD.dump_json(record, exclude_defaults=True)


def decode_record(raw: bytes) -> CustomerRecord:
    return _RECORD.validate_json(raw)


class _RecordCodec(codecs.Codec):
    def _dumps(self, record: CustomerRecord) -> bytes:
        return encode_record(record)

    def _loads(self, raw: bytes) -> CustomerRecord:
        return decode_record(raw)


class CustomersTable(faust.Table):
    # Faust derives a table's serializers (and its changelog topic's) from the key and value
    # types while it builds the table; this is the one place to say which codecs to use.
    def _serializer_from_type(self, typ: Any) -> str:
        return "raw" if typ is str else RECORD_CODEC


def customers_table(app: faust.App, settings: ScoringSettings) -> faust.Table:
    codecs.register(RECORD_CODEC, _RecordCodec())
    table = CustomersTable(
        app,
        name="customers",
        key_type=str,
        partitions=settings.topic_partitions,
        beacon=app.tables.beacon,
        help="scoring state",
    )
    return app.tables.add(table)
