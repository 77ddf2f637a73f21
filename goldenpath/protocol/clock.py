"""Server timestamps, and the server clock's offset from this machine's, estimated from pings.

The estimate is NTP's: a ping leaves at local wall time ``t_send``, the pong carries the
server's ``timestamp`` and is back after ``rtt`` (measured on the monotonic clock, so a
wall-clock step cannot distort it). Assuming the pong was stamped half-way,

    offset = server_ts - (t_send + rtt / 2)        (server clock minus local wall clock)

and the stamp really happened somewhere within the round trip, so the error is at most
``rtt / 2``, plus the timestamp's resolution (1 ms: the protocol's timestamps carry
milliseconds, truncated or rounded). Of N pings the one with the smallest round trip is
kept: it has the least room for queueing delay and path asymmetry.

A server timestamp converted to local wall time is ``server_ts - offset``; a delivery
latency is then ``local receipt - (server_ts - offset)``. The local wall clock is assumed
not to step between the sync and the measurement (a synchronised host slews, it does not step).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# ISO 8601, UTC, exactly three fraction digits: 2026-11-24T23:01:02.345Z (or +00:00).
ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(?:Z|\+00:00)")
TIMESTAMP_RESOLUTION_NS = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def parse_server_time(value: object) -> int | None:
    """Nanoseconds since the epoch of an ISO 8601 UTC millisecond timestamp; None if it is not one."""
    if not isinstance(value, str) or ISO_MS.fullmatch(value) is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None  # well-shaped but impossible, e.g. month 13
    return ((moment - _EPOCH) // _ONE_US) * 1000


@dataclass(frozen=True, slots=True)
class PingSample:
    """One ping/pong round trip: local send times, local receive time, the pong's server time."""

    sent_mono_ns: int
    sent_wall_ns: int
    recv_mono_ns: int
    server_ns: int

    @property
    def rtt_ns(self) -> int:
        return self.recv_mono_ns - self.sent_mono_ns

    @property
    def offset_ns(self) -> int:
        return self.server_ns - (self.sent_wall_ns + self.rtt_ns // 2)


@dataclass(frozen=True)
class ClockOffset:
    """Server clock minus local wall clock, with the bound on its error."""

    offset_ns: int
    uncertainty_ns: int
    rtt_ns: int
    samples: int

    def to_local_ns(self, server_ns: int) -> int:
        """A server time expressed on the local wall clock."""
        return server_ns - self.offset_ns

    def describe(self) -> str:
        direction = "ahead of" if self.offset_ns >= 0 else "behind"
        return (
            f"server clock {abs(self.offset_ns) / 1e6:.3f} ms {direction} this machine, "
            f"± {self.uncertainty_ns / 1e6:.3f} ms (best of {self.samples} pings, "
            f"rtt {self.rtt_ns / 1e6:.3f} ms)"
        )


def estimate_offset(
    samples: Sequence[PingSample], resolution_ns: int = TIMESTAMP_RESOLUTION_NS
) -> ClockOffset | None:
    """The offset from the smallest-RTT sample; None without samples (never a guess)."""
    usable = [s for s in samples if s.rtt_ns >= 0]
    if not usable:
        return None
    best = min(usable, key=lambda s: s.rtt_ns)
    return ClockOffset(
        offset_ns=best.offset_ns,
        uncertainty_ns=(best.rtt_ns + 1) // 2 + resolution_ns,
        rtt_ns=best.rtt_ns,
        samples=len(usable),
    )
