"""The worker's table: one `CustomerRecord` per customer, backed by a changelog topic.

Rows are kept as objects in memory and written to the changelog as pydantic JSON, so a worker
that takes over a partition rebuilds them by reading the changelog.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.serializers import codecs

from .batch import CustomerRecord
from .settings import ScoringSettings

RECORD_CODEC = "scoring-customer-record"


class _RecordCodec(codecs.Codec):
    def _dumps(self, record: CustomerRecord) -> bytes:
        return record.model_dump_json(exclude_defaults=True).encode()

    def _loads(self, raw: bytes) -> CustomerRecord:
        return CustomerRecord.model_validate_json(raw)


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
