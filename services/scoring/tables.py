"""The worker's table: one `CustomerRecord` per customer, backed by a changelog topic."""

from __future__ import annotations

import faust

from shared.record_table import RecordCodec, record_table

from .batch import CustomerRecord
from .settings import ScoringSettings


def customers_table(
    app: faust.App, settings: ScoringSettings, codec: RecordCodec[CustomerRecord]
) -> faust.Table:
    return record_table(app, "customers", codec, settings.topic_partitions, help="scoring state")
