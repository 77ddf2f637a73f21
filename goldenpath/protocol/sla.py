"""Service levels: measure the golden path's latencies, summarise them, gate on the bounds.

Metrics (samples recorded as integer microseconds in an HdrHistogram, 3 significant digits):

- ``ws_connect``: upgrade started to connection_established received (``Connection.connect_ns``);
- ``first_event``: user_message sent to agent_started received;
- ``tool_result``: tool_executing to its tool_completed (paired by tool name, first in first
  out), both on this machine's receive clock, so no clock offset is involved;
- ``event_delivery``: the event's server ``timestamp`` to its receipt here. That compares two
  clocks, so it needs the server clock's offset (``Connection.sync_clock()``, see
  goldenpath.protocol.clock). Events of a run added without an offset are counted but not measured.

Gating: each metric is checked against its bound (``Sla``, from the profile) at the
configured percentile and at the maximum by default; ``gate=("max",)`` or
``gate=("p99", "max")`` choose otherwise. A value passes when it is below the bound (the
protocol's "< 2 s").

Unmeasured metrics FAIL the gate, loudly: a metric that was asked for but has no sample,
in particular ``event_delivery`` without a clock offset, gives ``passed=False`` and the
message "event_delivery not measured (no clock offset) ...". A gate that quietly passes
because nothing was measured would hide exactly the regressions it exists to catch; a
caller that does not want delivery gated leaves it out of ``metrics``.

Delivery is measured from the end of the event stamp's interval (docs/protocol.md 6.1: a
stamp of resolution r, 1 s without a fraction down to 1 ns with nine digits, denotes an instant
in [stamp, stamp + r)), with an offset that a coarse pong can only make too small (see
goldenpath.protocol.clock). So a coarse stamp is credited to the platform and never makes a
healthy one look late; a fine stamp is not blurred by an assumed 1 ms. What can still make a
delivery look later than it was is the offset's half round trip (``ClockOffset.late_ns``): a
value over the bound by less than that is still a failure (the measurement cannot clear it),
but its message says so and ``marginal`` is set. The reported ``uncertainty_ms`` is the whole
± width (half round trip, pong resolution, event stamp resolution). Samples that come out below
zero (possible within that width) are recorded as 0 and counted; one below zero by more than it
means the offset is wrong (or the local clock stepped), and the metric fails as not trustworthy.

Waits: a run may take as long as its service levels allow, whatever the per-call network
timeout (GOLDENPATH_TIMEOUT_S) is: ``run_deadline_s(sla, tools)`` is that time, the one bound
for every wait on a run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

from goldenpath.core.settings import SPECS_BY_NAME, Sla
from goldenpath.protocol.clock import ClockOffset, parse_server_stamp
from goldenpath.protocol.contract import PROTOCOL, Contract
from goldenpath.protocol.events import Event, Run

METRICS = ("ws_connect", "first_event", "tool_result", "event_delivery")
BOUND_OF = {
    "ws_connect": "ws_connect_ms",
    "first_event": "first_event_ms",
    "tool_result": "tool_result_ms",
    "event_delivery": "event_delivery_ms",
}
HIGHEST_US = 3_600_000_000  # one hour: anything slower is clamped, and failed by any sane bound
_GATE = re.compile(r"p(\d+(?:\.\d+)?)")


def _default(name: str) -> float:
    default = SPECS_BY_NAME[name].default
    if default is None:
        raise RuntimeError(f"{name} has no default in SPECS")  # a broken table, not bad input
    return float(default)


# The protocol's service levels (section 6), for a connection opened without a profile's settings.
PROTOCOL_SLA = Sla(
    ws_connect_ms=_default("SLA_WS_CONNECT_MS"),
    first_event_ms=_default("SLA_FIRST_EVENT_MS"),
    tool_result_ms=_default("SLA_TOOL_RESULT_MS"),
    event_delivery_ms=_default("SLA_EVENT_DELIVERY_MS"),
    concurrent_users=int(_default("SLA_CONCURRENT_USERS")),
    percentile=_default("SLA_PERCENTILE"),
)


def run_margin_ms(sla: Sla) -> float:
    """What a run may take beyond its bounded parts, and why.

    The protocol bounds the start (first event) and each tool (tool result); it does not bound
    the agent's own steps between them: thinking before the first tool and between tools, and
    composing the answer after the last one. Those together are allowed as long as the start
    (one first-event bound: the agent's step that the protocol does time), and the ending frame
    its own delivery bound. With the defaults: 5 s + 0.5 s.
    """
    return sla.first_event_ms + sla.event_delivery_ms


def run_deadline_s(sla: Sla, tools: int = 1) -> float:
    """How long after sending its message a run may take to end, from the service levels.

    First event bound + ``tools`` x tool-result bound + ``run_margin_ms``: 40.5 s for one tool
    under the default levels. This, never the per-call network timeout, bounds a wait on a run:
    a healthy platform whose tool takes 20 s (inside the 30 s tool bound) must pass.
    """
    if tools < 1:
        raise ValueError(f"a golden-path run has at least one tool, got tools={tools}")
    return (sla.first_event_ms + tools * sla.tool_result_ms + run_margin_ms(sla)) / 1000


def first_event_ns(run: Run, contract: Contract = PROTOCOL) -> int | None:
    """Send to agent_started receipt; None when no agent_started arrived."""
    for event in run.events:
        if event.frame.get("type") == contract.agent_started:
            return event.mono_ns - run.sent_mono_ns
    return None


def tool_durations_ns(events: Sequence[Event], contract: Contract = PROTOCOL) -> list[int]:
    """tool_executing to its tool_completed, paired by tool name; unpaired ones are the contract's."""
    started: dict[str, list[int]] = {}
    durations = []
    for event in events:
        kind = event.frame.get("type")
        name = event.frame.get(contract.tool_key)
        if not isinstance(name, str):
            continue
        if kind == contract.tool_executing:
            started.setdefault(name, []).append(event.mono_ns)
        elif kind == contract.tool_completed and started.get(name):
            durations.append(event.mono_ns - started[name].pop(0))
    return durations


def delivery_samples(events: Sequence[Event], clock: ClockOffset) -> list[tuple[int, int]]:
    """(latency, stamp resolution) for every event with a well-formed timestamp.

    The latency runs from the end of the stamp's interval (stamp + resolution) to the local
    receipt, the offset applied (docs/protocol.md 6.1).
    """
    samples = []
    for event in events:
        stamp = parse_server_stamp(event.frame.get("timestamp"))
        if stamp is not None:
            latency = event.wall_ns - clock.to_local_ns(stamp.ns + stamp.resolution_ns)
            samples.append((latency, stamp.resolution_ns))
    return samples


def delivery_ns(events: Sequence[Event], clock: ClockOffset) -> list[int]:
    """Server timestamp to local receipt, for every event with a well-formed timestamp."""
    return [latency for latency, _ in delivery_samples(events, clock)]


def parse_gate(gate: Sequence[str]) -> tuple[tuple[str, float | None], ...]:
    """("p95", "max") -> (("p95", 95.0), ("max", None)); ValueError on anything else."""
    points: list[tuple[str, float | None]] = []
    for name in gate:
        match = _GATE.fullmatch(name)
        if name == "max":
            points.append((name, None))
        elif match and 0 < float(match.group(1)) <= 100:
            points.append((name, float(match.group(1))))
        else:
            raise ValueError(f"unknown gate point {name!r}: use 'max' or pNN with 0 < NN <= 100")
    if not points:
        raise ValueError("empty gate: give at least one of 'max' or pNN")
    return tuple(points)


def default_gate(sla: Sla) -> tuple[str, ...]:
    return (f"p{sla.percentile:g}", "max")


@dataclass(frozen=True)
class MetricResult:
    metric: str
    count: int
    bound_ms: float
    gate: tuple[str, ...]
    passed: bool
    measured: bool
    message: str
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    at_gate_ms: tuple[tuple[str, float], ...] = ()
    uncertainty_ms: float | None = None
    marginal: bool = False  # failed, but by less than the clock uncertainty
    # (upper bound ms, samples) per power-of-two bucket, first to last non-empty: the
    # latency histogram the HTML report draws.
    histogram: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True)
class SlaReport:
    results: tuple[MetricResult, ...]
    clock: ClockOffset | None = None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[MetricResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def result(self, metric: str) -> MetricResult:
        for r in self.results:
            if r.metric == metric:
                return r
        raise KeyError(f"{metric} was not evaluated; evaluated: {', '.join(r.metric for r in self.results)}")

    def lines(self) -> list[str]:
        clock = [f"clock: {self.clock.describe()}"] if self.clock else ["clock: no offset estimate"]
        return clock + [f"{'PASS' if r.passed else 'FAIL'} {r.message}" for r in self.results]


class SlaRecorder:
    """Collects samples of every metric over any number of connections and runs."""

    def __init__(self, contract: Contract = PROTOCOL) -> None:
        self.contract = contract
        self._histograms = {m: HdrHistogram(1, HIGHEST_US, 3) for m in METRICS}
        self._max_us = dict.fromkeys(METRICS, 0)  # exact; the histogram's is rounded to its bucket
        self._below_zero = dict.fromkeys(METRICS, 0)
        self._min_ns = dict.fromkeys(METRICS, 0)  # the most negative raw sample, 0 when none was
        self.unmeasured_delivery = 0
        # The widest offset uncertainty among the clocks used: the bound every sample honours.
        self.clock: ClockOffset | None = None
        self.stamp_resolution_ns = 0  # the coarsest event timestamp measured for delivery

    def record(self, metric: str, value_ns: int) -> None:
        value_us = value_ns // 1000
        if value_ns < 0:
            self._below_zero[metric] += 1
            self._min_ns[metric] = min(self._min_ns[metric], value_ns)
            value_us = 0
        value_us = min(value_us, HIGHEST_US)
        self._histograms[metric].record_value(value_us)
        if value_us > self._max_us[metric]:
            self._max_us[metric] = value_us

    def count(self, metric: str) -> int:
        total: int = self._histograms[metric].get_total_count()
        return total

    def add_connection_time(self, connect_ns: int) -> None:
        self.record("ws_connect", connect_ns)

    def add_run(self, run: Run, clock: ClockOffset | None = None) -> None:
        """Every metric a run yields; delivery only with the server clock's offset."""
        first = first_event_ns(run, self.contract)
        if first is not None:
            self.record("first_event", first)
        for duration in tool_durations_ns(run.events, self.contract):
            self.record("tool_result", duration)
        if clock is None:
            self.unmeasured_delivery += len(run.events)
            return
        if self.clock is None or clock.uncertainty_ns > self.clock.uncertainty_ns:
            self.clock = clock
        for latency, resolution_ns in delivery_samples(run.events, clock):
            self.stamp_resolution_ns = max(self.stamp_resolution_ns, resolution_ns)
            self.record("event_delivery", latency)

    def evaluate(self, sla: Sla, *, metrics: Sequence[str] = METRICS,
                 gate: Sequence[str] | None = None) -> SlaReport:  # fmt: skip
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
        names = tuple(gate) if gate is not None else default_gate(sla)
        points = parse_gate(names)
        return SlaReport(tuple(self._result(m, float(getattr(sla, BOUND_OF[m])), names, points)
                               for m in metrics), self.clock)  # fmt: skip

    def _result(self, metric: str, bound_ms: float, names: tuple[str, ...],
                points: tuple[tuple[str, float | None], ...]) -> MetricResult:  # fmt: skip
        histogram = self._histograms[metric]
        count = self.count(metric)
        if count == 0:
            return MetricResult(metric, 0, bound_ms, names, passed=False, measured=False,
                                message=f"{metric} {self._why_unmeasured(metric)}")  # fmt: skip
        max_ms = self._max_us[metric] / 1000

        def at(percentile: float | None) -> float:
            if percentile is None:
                return max_ms
            return min(float(histogram.get_value_at_percentile(percentile)) / 1000, max_ms)

        gated = tuple((name, at(percentile)) for name, percentile in points)
        over = [(name, value) for name, value in gated if value >= bound_ms]
        uncertainty_ms = self._uncertainty_ms(metric)
        late_ms = self._late_ms(metric)
        marginal = bool(over) and late_ms is not None and all(
            value - late_ms < bound_ms for _, value in over)
        notes = self._notes(metric, count, uncertainty_ms)
        offset_wrong = self._offset_wrong(metric, uncertainty_ms)
        if over:
            op = ">" if all(value > bound_ms for _, value in over) else ">="
            message = f"{metric} {_points(over)} {op} bound {_ms(bound_ms)} ms ({notes})"
            if marginal:
                message += (f", but only within the clock's half round trip {_ms(late_ms or 0)} ms:"
                            " a marginal breach the measurement cannot clear")  # fmt: skip
        elif offset_wrong:
            message = f"{metric} not trustworthy: samples below zero beyond the clock uncertainty ({notes})"
        else:
            message = f"{metric} {_points(gated)} < bound {_ms(bound_ms)} ms ({notes})"
        return MetricResult(
            metric, count, bound_ms, names, passed=not over and not offset_wrong, measured=True,
            message=message,
            p50_ms=at(50), p95_ms=at(95), p99_ms=at(99), max_ms=max_ms, at_gate_ms=gated,
            uncertainty_ms=uncertainty_ms, marginal=marginal, histogram=log_buckets(histogram),
        )  # fmt: skip

    def _uncertainty_ms(self, metric: str) -> float | None:
        """The whole ± width of a delivery sample: the offset's and the event stamp's resolution."""
        if metric != "event_delivery" or self.clock is None:
            return None
        return (self.clock.uncertainty_ns + self.stamp_resolution_ns) / 1e6

    def _late_ms(self, metric: str) -> float | None:
        """How much later than the truth a delivery sample can come out (the offset's half rtt)."""
        if metric != "event_delivery" or self.clock is None:
            return None
        return self.clock.late_ns / 1e6

    def _notes(self, metric: str, count: int, uncertainty_ms: float | None) -> str:
        notes = [f"{count} sample{'' if count == 1 else 's'}"]
        if uncertainty_ms is not None:
            notes.append(f"clock ± {_ms(uncertainty_ms)} ms")
        if self._below_zero[metric]:
            lowest = self._min_ns[metric] / 1e6
            verdict = ("beyond the clock uncertainty: the offset is wrong"
                       if self._offset_wrong(metric, uncertainty_ms)
                       else "within the clock uncertainty")  # fmt: skip
            notes.append(f"{self._below_zero[metric]} below zero counted as 0, lowest "
                         f"-{_ms(-lowest)} ms, {verdict}")  # fmt: skip
        if metric == "event_delivery" and self.unmeasured_delivery:
            notes.append(f"{self.unmeasured_delivery} events without a clock offset not measured")
        return "; ".join(notes)

    def _offset_wrong(self, metric: str, uncertainty_ms: float | None) -> bool:
        # A latency below zero by more than the uncertainty cannot be: the offset (or the
        # local clock, stepped since the sync) is wrong, so no delivery number can be trusted.
        if metric != "event_delivery" or not self._below_zero[metric]:
            return False
        return uncertainty_ms is None or -self._min_ns[metric] / 1e6 > uncertainty_ms

    def _why_unmeasured(self, metric: str) -> str:
        if metric == "event_delivery" and self.clock is None and self.unmeasured_delivery:
            return (f"not measured (no clock offset): {self.unmeasured_delivery} events received "
                    "without a server clock estimate; call Connection.sync_clock() and pass its clock")
        return "not measured (0 samples)"


def _points(values: Sequence[tuple[str, float]]) -> str:
    return ", ".join(f"{name} {_ms(value)} ms" for name, value in values)


def _ms(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def log_buckets(histogram: HdrHistogram) -> tuple[tuple[float, int], ...]:
    """The samples in power-of-two buckets of microseconds (1, 2, 4, ... µs), from the first
    non-empty bucket to the last, empty ones between kept so the shape reads true."""
    steps = [(float(step.value_iterated_to) / 1000, int(step.count_added_in_this_iter_step))
             for step in histogram.get_log_iterator(1, 2.0)]
    filled = [i for i, (_, count) in enumerate(steps) if count]
    return tuple(steps[filled[0]:filled[-1] + 1]) if filled else ()
