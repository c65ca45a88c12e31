"""The worker's table: one `CustomerRecord` per customer, backed by a changelog topic.

Rows are kept as objects in memory and written to the changelog as pydantic JSON, so a worker
that takes over a partition rebuilds them by reading the changelog.
"""

from __future__ import annotations

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


def customers_table(app: faust.App, settings: ScoringSettings) -> faust.Table:
    codecs.register(RECORD_CODEC, _RecordCodec())
    table = app.Table("customers", key_type=str, partitions=settings.topic_partitions, help="scoring state")
    # Faust derives serializers from types; ours are set before the store is first built.
    table.key_serializer = "raw"
    table.value_serializer = RECORD_CODEC
    return table
