"""The clock every process decides by: real UTC time, or, for tests, a faster one.

Decay, activity and everything scheduled depend on time passing. A test cannot wait a month,
so `CLOCK_SPEED` (with `CLOCK_EPOCH`, the same for every process of a stack) makes the workers
and APIs read a clock that runs in real time until the epoch and that many times faster from
then on; events are still dated and validated in real time by ingest. Production leaves both
alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from shared.settings import ServiceSettings

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def clock_of(settings: ServiceSettings) -> Clock:
    speed = settings.clock_speed
    if speed == 1.0:
        return utc_now
    epoch = settings.clock_epoch or utc_now()

    def warped() -> datetime:
        real = utc_now()
        # Real time until the epoch (a test sets up its customers), then `speed` times faster.
        return real if real <= epoch else epoch + (real - epoch) * speed

    return warped
