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

# ISO 8601 extended format in UTC: 2026-11-24T23:01:02Z, .3, .345, .345678, .345678901, ... and
# the same with +00:00. The fraction's length is free (7.2); -00:00 ("offset unknown", RFC 3339)
# and any other offset are not UTC.
ISO_UTC = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:Z|\+00:00)", re.ASCII
)
NS_PER_S = 1_000_000_000
_FRACTION_DIGITS = 9  # nanoseconds: digits beyond these are below what an int of ns can hold
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True, slots=True)
class ServerTime:
    """A parsed server timestamp: nanoseconds since the epoch and the stamp's resolution."""

    ns: int
    resolution_ns: int  # 10**(9 - fraction digits), at least 1: what one unit of the last digit is


# Parsed stamps by their text. Each event's stamp is parsed twice (its contract check, then its
# delivery latency) and a pong's once more for the clock: at load this parser ran ~2 times per
# frame, so the second parse is a dict hit. Bounded: cleared when full (stamps do not repeat
# across runs, so an LRU would keep nothing useful either).
_CACHE: dict[str, ServerTime | None] = {}
_CACHE_MAX = 4096


def parse_server_stamp(value: object) -> ServerTime | None:
    """The timestamp with its resolution; None if it is not ISO 8601 in UTC (or not a date)."""
    if not isinstance(value, str):
        return None
    try:
        return _CACHE[value]
    except KeyError:
        pass
    stamp = _parse(value)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[value] = stamp
    return stamp


def _parse(value: str) -> ServerTime | None:
    # Integer calendar arithmetic, not datetime: the same result (the proleptic Gregorian
    # calendar, years 1 to 9999, seconds 0-59 as datetime accepts), a fifth of the cost.
    match = ISO_UTC.fullmatch(value)
    if match is None:
        return None
    year_s, month_s, day_s, hour_s, minute_s, second_s, fraction = match.groups()
    year, month, day = int(year_s), int(month_s), int(day_s)
    hour, minute, second = int(hour_s), int(minute_s), int(second_s)
    if not (year >= 1 and 1 <= month <= 12 and day >= 1 and hour < 24 and minute < 60 and second < 60):
        return None  # well-shaped but impossible, e.g. month 13
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day > _DAYS_IN_MONTH[month] + (month == 2 and leap):
        return None
    fraction = (fraction or "")[:_FRACTION_DIGITS]
    digits = len(fraction)
    fraction_ns = int(fraction) * 10 ** (_FRACTION_DIGITS - digits) if digits else 0
    seconds = _days_since_epoch(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return ServerTime(seconds * NS_PER_S + fraction_ns, 10 ** (_FRACTION_DIGITS - digits))


def _days_since_epoch(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to the date (H. Hinnant's days_from_civil, exact integer math)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


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
