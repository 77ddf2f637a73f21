"""Timestamps in the one format the protocol uses everywhere."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso_ms(epoch: float | None = None) -> str:
    """ISO 8601 UTC with milliseconds and a Z, e.g. 2026-11-24T23:01:02.345Z."""
    if epoch is None:
        epoch = time.time()
    seconds = int(epoch)
    millis = int((epoch - seconds) * 1000)
    # time.strftime on a gmtime tuple is several times cheaper than datetime.isoformat,
    # and this runs once per emitted event.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def iso_us(epoch: float | None = None) -> str:
    """The same with microseconds, e.g. 2026-11-24T23:01:02.345678Z (variant usec_timestamps)."""
    if epoch is None:
        epoch = time.time()
    seconds, micros = divmod(int(epoch * 1_000_000), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def iso_from_datetime(value: datetime) -> str:
    """Format a database timestamp (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return iso_ms(value.timestamp())
