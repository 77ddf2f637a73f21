"""Server timestamps, and the server clock's offset from this machine's, estimated from pings.

A server timestamp (docs/protocol.md 7.2) is ISO 8601 in UTC with no fraction or a fraction
of any length, ending in ``Z`` or ``+00:00``. It is parsed to integer nanoseconds, with its
**resolution**: the digits present say how precise it is (1 s without a fraction, 1 ms with
three digits, 1 ns with nine). A stamp of resolution ``r`` denotes an instant in
``[stamp, stamp + r)`` (6.1): servers truncate, they do not round up.

The offset estimate is the protocol's (6.1), NTP's: a ping leaves at local wall time
``t_send``, the pong carries the server's ``timestamp`` and is back after ``rtt`` (measured on
the monotonic clock, so a wall-clock step cannot distort it). Assuming the pong was stamped
half-way,

    offset = pong_stamp - (t_send + rtt / 2)        (server clock minus local wall clock)

Of N pings the one with the smallest round trip is kept: it has the least room for queueing
delay and path asymmetry. The true offset lies in ``(offset - rtt/2, offset + rtt/2 + r_pong)``:
using the start of the pong's stamp interval (not its middle) means a coarse pong can only make
the offset look smaller, so delivery latencies computed with it can only look shorter by that,
never longer (a coarse stamp must never make a healthy platform look late, 7.2).

A server time on the local wall clock is ``server_ts - offset``; a delivery latency is
``local receipt - (server_ts + r - offset)``: measured from the end of the event stamp's
interval, again so that coarseness is credited to the platform. The local wall clock is assumed
not to step between the sync and the measurement (a synchronised host slews, it does not step).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# ISO 8601 extended format in UTC: 2026-11-24T23:01:02Z, .3, .345, .345678, .345678901, ... and
# the same with +00:00. The fraction's length is free (7.2); -00:00 ("offset unknown", RFC 3339)
# and any other offset are not UTC.
ISO_UTC = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:Z|\+00:00)", re.ASCII
)
NS_PER_S = 1_000_000_000
_FRACTION_DIGITS = 9  # nanoseconds: digits beyond these are below what an int of ns can hold
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_S = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class ServerTime:
    """A parsed server timestamp: nanoseconds since the epoch and the stamp's resolution."""

    ns: int
    resolution_ns: int  # 10**(9 - fraction digits), at least 1: what one unit of the last digit is


def parse_server_stamp(value: object) -> ServerTime | None:
    """The timestamp with its resolution; None if it is not ISO 8601 in UTC (or not a date)."""
    if not isinstance(value, str):
        return None
    match = ISO_UTC.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None  # well-shaped but impossible, e.g. month 13
    fraction = (match.group(7) or "")[:_FRACTION_DIGITS]
    digits = len(fraction)
    fraction_ns = int(fraction.ljust(_FRACTION_DIGITS, "0")) if digits else 0
    seconds = (moment - _EPOCH) // _ONE_S  # integer arithmetic: no float rounding
    return ServerTime(seconds * NS_PER_S + fraction_ns, 10 ** (_FRACTION_DIGITS - digits))


def parse_server_time(value: object) -> int | None:
    """Nanoseconds since the epoch of an ISO 8601 UTC timestamp (any precision); None if it is not one."""
    stamp = parse_server_stamp(value)
    return stamp.ns if stamp is not None else None


@dataclass(frozen=True, slots=True)
class PingSample:
    """One ping/pong round trip: local send times, local receive time, the pong's server time."""

    sent_mono_ns: int
    sent_wall_ns: int
    recv_mono_ns: int
    server_ns: int
    resolution_ns: int = 1  # the pong stamp's resolution (1 ns: exact)

    @property
    def rtt_ns(self) -> int:
        return self.recv_mono_ns - self.sent_mono_ns

    @property
    def offset_ns(self) -> int:
        return self.server_ns - (self.sent_wall_ns + self.rtt_ns // 2)


@dataclass(frozen=True)
class ClockOffset:
    """Server clock minus local wall clock, with the bound on its error.

    ``uncertainty_ns`` bounds the error both ways (half the round trip plus the pong stamp's
    resolution). Only ``late_ns`` of it (half the round trip) can make the offset too large,
    i.e. make a delivery look later than it was: the resolution part only errs the other way.
    """

    offset_ns: int
    uncertainty_ns: int
    rtt_ns: int
    samples: int
    resolution_ns: int = 0  # the chosen pong's stamp resolution, included in uncertainty_ns

    @property
    def late_ns(self) -> int:
        """How much later than the truth a delivery computed with this offset can come out."""
        return self.uncertainty_ns - self.resolution_ns

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


def estimate_offset(samples: Sequence[PingSample]) -> ClockOffset | None:
    """The offset from the smallest-RTT sample; None without samples (never a guess)."""
    usable = [s for s in samples if s.rtt_ns >= 0]
    if not usable:
        return None
    best = min(usable, key=lambda s: s.rtt_ns)
    return ClockOffset(
        offset_ns=best.offset_ns,
        uncertainty_ns=(best.rtt_ns + 1) // 2 + best.resolution_ns,
        rtt_ns=best.rtt_ns,
        samples=len(usable),
        resolution_ns=best.resolution_ns,
    )
