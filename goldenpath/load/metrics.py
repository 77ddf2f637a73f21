"""Numbers a load run is judged by, beyond the SLA histograms: the latency trend over the run,
the detection power of the runs checked, and small percentiles for the per-user rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# A trend compares the p95 of the last fifth of runs with the first fifth's. Tiny latencies are
# mostly scheduling noise (1 ms -> 3 ms is not a creep), and the first runs of a crowd are served
# before the queue behind the other users has built up (an idle-to-loaded step, not a creep), so
# the first fifth's p95 counts as at least this fraction of the metric's bound for every
# SLA_CONCURRENT_USERS users of the run (``trend_floor_ms``).
TREND_FLOOR_OF_BOUND = 0.01
CONFIDENCE = 0.99


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of a small list (per-user rows, trend fifths); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Trend:
    metric: str
    runs: int
    first_p95_ms: float | None
    last_p95_ms: float | None
    ratio: float | None
    bound_ratio: float
    floor_ms: float
    passed: bool | None  # None: too few runs to tell

    def message(self) -> str:
        if self.passed is None:
            return f"{self.metric} trend not measured: {self.runs} run(s) with a sample, 10 needed"
        verdict = "<=" if self.passed else ">"
        return (f"{self.metric} trend: p95 of the last fifth of runs {self.last_p95_ms:.1f} ms / first "
                f"fifth {self.first_p95_ms:.1f} ms (counted as at least {self.floor_ms:g} ms) = "
                f"{self.ratio:.2f} {verdict} {self.bound_ratio:g}")  # fmt: skip


def trend_floor_ms(sla_bound_ms: float, users: int = 1, concurrent_users: int = 1) -> float:
    return sla_bound_ms * TREND_FLOOR_OF_BOUND * max(1.0, users / max(1, concurrent_users))


def trend(metric: str, ordered_ms: Sequence[float], bound_ratio: float, floor: float) -> Trend:
    """p95 of the last fifth of runs (in send order) over the first fifth's (at least ``floor``),
    gated at ``bound_ratio``."""
    if len(ordered_ms) < 10:
        return Trend(metric, len(ordered_ms), None, None, None, bound_ratio, floor, None)
    fifth = len(ordered_ms) // 5
    first = percentile(ordered_ms[:fifth], 95) or 0.0
    last = percentile(ordered_ms[-fifth:], 95) or 0.0
    ratio = last / max(first, floor)
    return Trend(metric, len(ordered_ms), first, last, ratio, bound_ratio, floor, ratio <= bound_ratio)


def one_in_k(runs_checked: int, confidence: float = CONFIDENCE) -> float | None:
    """The rarest leak (1 run in K) that ``runs_checked`` runs reveal with that confidence:
    P(seen) = 1 - (1 - 1/K)^runs = confidence, so K = 1 / (1 - (1 - confidence)^(1/runs))."""
    if runs_checked <= 0:
        return None
    miss: float = (1.0 - confidence) ** (1.0 / runs_checked)
    return 1.0 / (1.0 - miss)


def detection_sentence(runs_checked: int) -> str:
    k = one_in_k(runs_checked)
    if k is None:
        return "no run was checked: no leak could have been seen"
    return (f"a leak in 1 run of {k:.0f} would be seen with {CONFIDENCE:.0%} probability "
            f"({runs_checked} runs checked)")
