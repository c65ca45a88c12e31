"""The worker's table: one `ProfileRecord` per customer, backed by a changelog topic."""

from __future__ import annotations

import faust

from shared.record_table import RecordCodec, record_table

from .batch import ProfileRecord
from .settings import TaggingSettings


def profiles_table(
    app: faust.App, settings: TaggingSettings, codec: RecordCodec[ProfileRecord]
) -> faust.Table:
    return record_table(app, "profiles", codec, settings.topic_partitions, help="tagging state")
