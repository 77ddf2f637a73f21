"""Service levels: percentiles, gating, the clock offset, delivery only with an offset and
honest for any timestamp precision, and run deadlines from the service levels."""

from __future__ import annotations

from typing import Any

import pytest

from goldenpath.core.settings import Sla
from goldenpath.protocol.clock import (
    ClockOffset,
    PingSample,
    ServerTime,
    estimate_offset,
    parse_server_stamp,
    parse_server_time,
)
from goldenpath.protocol.events import Event, Run
from goldenpath.protocol.sla import (
    PROTOCOL_SLA,
    SlaRecorder,
    delivery_ns,
    first_event_ns,
    parse_gate,
    run_deadline_s,
    tool_durations_ns,
)

MS = 1_000_000  # nanoseconds
SLA = Sla(ws_connect_ms=2000, first_event_ms=5000, tool_result_ms=30000, event_delivery_ms=500,
          concurrent_users=10, percentile=95)  # fmt: skip
EPOCH_2026 = parse_server_time("2026-01-01T00:00:00.000Z") or 0


def iso(ns: int) -> str:
    """The server's formatting: UTC, milliseconds, truncated."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return f"2026-01-01T00:00:{seconds - EPOCH_2026 // 1_000_000_000:02d}.{rest // MS:03d}Z"


def frame(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, **extra}


@pytest.mark.parametrize(("stamp", "ns", "resolution_ns"), [
    ("1970-01-01T00:00:01Z", 1_000_000_000, 1_000_000_000),
    ("1970-01-01T00:00:01.2Z", 1_200_000_000, 100_000_000),
    ("1970-01-01T00:00:01.250Z", 1_250_000_000, 1_000_000),
    ("1970-01-01T00:00:01.250+00:00", 1_250_000_000, 1_000_000),
    ("1970-01-01T00:00:01.250123Z", 1_250_123_000, 1_000),
    ("1970-01-01T00:00:01.250123+00:00", 1_250_123_000, 1_000),
    ("1970-01-01T00:00:01.250123456Z", 1_250_123_456, 1),
    ("1970-01-01T00:00:01.250123456789Z", 1_250_123_456, 1),  # beyond ns: truncated
    ("2026-11-24T23:01:02.345678Z", 1_795_561_262_345_678_000, 1_000),
])  # fmt: skip
def test_server_time_of_any_precision_parses_to_nanoseconds_with_its_resolution(
    stamp: str, ns: int, resolution_ns: int
) -> None:
    assert parse_server_stamp(stamp) == ServerTime(ns, resolution_ns)
    assert parse_server_time(stamp) == ns


@pytest.mark.parametrize("bad", [
    "1970-01-01T00:00:01.250",  # no zone: local time
    "1970-01-01T00:00:01.250+02:00",  # not UTC
    "1970-01-01T00:00:01.250-00:00",  # RFC 3339's "offset unknown"
    "1970-01-01 00:00:01.250Z",
    "1970-01-01T00:00:01.Z",
    "1970-01-01",
    "1970-13-01T00:00:01.250Z",
    "1700000000",
    "",
    5,
    None,
])  # fmt: skip
def test_a_timestamp_not_iso_8601_utc_is_refused(bad: object) -> None:
    assert parse_server_stamp(bad) is None
    assert parse_server_time(bad) is None


def test_percentiles_of_known_samples() -> None:
    recorder = SlaRecorder()
    for value_ms in range(1, 101):  # 1..100 ms
        recorder.record("first_event", value_ms * MS)
    result = recorder.evaluate(SLA, metrics=("first_event",)).result("first_event")
    assert result.count == 100
    # HdrHistogram keeps 3 significant digits: values within 0.1 %.
    assert result.p50_ms == pytest.approx(50, rel=1e-3)
    assert result.p95_ms == pytest.approx(95, rel=1e-3)
    assert result.p99_ms == pytest.approx(99, rel=1e-3)
    assert result.max_ms == 100  # exact, not the histogram bucket's upper edge
    assert result.passed
    assert result.message == "first_event p95 95.0 ms, max 100 ms < bound 5000 ms (100 samples)"


def test_a_percentile_over_the_bound_fails_with_a_one_line_reason() -> None:
    recorder = SlaRecorder()
    for i in range(24):
        recorder.record("first_event", (6120 if i >= 20 else 100) * MS)
    report = recorder.evaluate(SLA, metrics=("first_event",))
    assert not report.passed
    assert report.failures[0].message == "first_event p95 6120 ms, max 6120 ms > bound 5000 ms (24 samples)"


def test_the_gate_is_configurable() -> None:
    recorder = SlaRecorder()
    for i in range(100):
        recorder.record("ws_connect", (3000 if i == 99 else 10) * MS)  # one slow outlier
    assert not recorder.evaluate(SLA, metrics=("ws_connect",)).passed  # p95 and max: the max fails
    assert recorder.evaluate(SLA, metrics=("ws_connect",), gate=("p95",)).passed
    only_max = recorder.evaluate(SLA, metrics=("ws_connect",), gate=("max",)).result("ws_connect")
    assert only_max.message == "ws_connect max 3000 ms > bound 2000 ms (100 samples)"
    looser = Sla(**{**SLA.__dict__, "percentile": 99.5})
    assert recorder.evaluate(looser, metrics=("ws_connect",)).result("ws_connect").gate == ("p99.5", "max")


def test_a_value_equal_to_the_bound_fails_because_bounds_are_strict() -> None:
    recorder = SlaRecorder()
    recorder.record("ws_connect", 2000 * MS)
    result = recorder.evaluate(SLA, metrics=("ws_connect",), gate=("max",)).result("ws_connect")
    assert not result.passed
    assert result.message == "ws_connect max 2000 ms >= bound 2000 ms (1 sample)"


@pytest.mark.parametrize("gate", [("p0",), ("p101",), ("median",), ()])
def test_a_bad_gate_is_refused(gate: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="gate"):
        parse_gate(gate)


def test_a_metric_without_samples_fails_as_unmeasured() -> None:
    result = SlaRecorder().evaluate(SLA, metrics=("tool_result",)).result("tool_result")
    assert (result.passed, result.measured) == (False, False)
    assert result.message == "tool_result not measured (0 samples)"


def ping(sent_ms: float, rtt_ms: float, server_ms: float, resolution_ns: int = MS) -> PingSample:
    return PingSample(sent_mono_ns=int(sent_ms * MS), sent_wall_ns=int(sent_ms * MS),
                      recv_mono_ns=int((sent_ms + rtt_ms) * MS), server_ns=int(server_ms * MS),
                      resolution_ns=resolution_ns)  # fmt: skip


def test_offset_comes_from_the_smallest_round_trip() -> None:
    # The server clock is 250 ms ahead. The slow pings' pongs were stamped late in their trip.
    samples = [ping(1000, 40, 1000 + 250 + 35), ping(2000, 2, 2000 + 250 + 1), ping(3000, 30, 3000 + 250 + 2)]
    offset = estimate_offset(samples)
    assert offset is not None
    assert offset.offset_ns == 250 * MS
    assert offset.rtt_ns == 2 * MS
    assert offset.uncertainty_ns == 1 * MS + 1 * MS  # rtt_min / 2, plus the pong's 1 ms resolution
    assert offset.late_ns == 1 * MS  # only the half round trip can make a delivery look late
    assert offset.samples == 3
    assert offset.describe() == (
        "server clock 250.000 ms ahead of this machine, ± 2.000 ms (best of 3 pings, rtt 2.000 ms)"
    )


def test_no_ping_no_offset() -> None:
    assert estimate_offset([]) is None


def test_a_coarse_pong_can_only_make_the_offset_smaller() -> None:
    # The server is 5.7 s ahead; its pong says whole seconds, so 5.7 s reads as 5 s.
    offset = estimate_offset([ping(1000, 2, 5000, resolution_ns=1000 * MS)])
    assert offset is not None
    assert offset.offset_ns == 5000 * MS - (1000 + 1) * MS
    assert offset.uncertainty_ns == 1 * MS + 1000 * MS
    assert offset.late_ns == 1 * MS


def run_with(events: list[tuple[dict[str, Any], int]], sent_ns: int = 0) -> Run:
    run = Run("m1", "hello", None, sent_ns, sent_ns)
    run.events = [Event(f, at, at) for f, at in events]
    return run


def test_first_event_and_tool_durations_use_the_receive_clock() -> None:
    run = run_with([
        (frame("agent_started"), 120 * MS),
        (frame("tool_executing", tool_name="a"), 200 * MS),
        (frame("tool_executing", tool_name="b"), 210 * MS),
        (frame("tool_completed", tool_name="b"), 260 * MS),
        (frame("tool_completed", tool_name="a"), 500 * MS),
    ], sent_ns=20 * MS)  # fmt: skip
    assert first_event_ns(run) == 100 * MS
    assert sorted(tool_durations_ns(run.events)) == [50 * MS, 300 * MS]


def test_delivery_latency_applies_the_offset_from_the_end_of_the_stamp() -> None:
    server_clock_ahead = ClockOffset(offset_ns=5000 * MS, uncertainty_ns=2 * MS, rtt_ns=2 * MS, samples=8)
    stamp = EPOCH_2026 + 10_000 * MS  # server time 00:00:10.000[.999] = local 00:00:05.000[.999]
    event = Event(frame("agent_started", timestamp=iso(stamp)), 0, stamp - 5000 * MS + 40 * MS)
    # The stamp means some instant in [10.000, 10.001): the platform is credited the millisecond.
    assert delivery_ns([event], server_clock_ahead) == [39 * MS]


def event_at(stamp: str, received_ns: int) -> Event:
    return Event(frame("agent_started", timestamp=stamp), 0, received_ns)


SAME_CLOCK = ClockOffset(offset_ns=0, uncertainty_ns=0, rtt_ns=0, samples=1)


def test_a_coarse_stamp_never_makes_a_healthy_platform_look_late() -> None:
    # Emitted at 00:00:00.990 and received 10 ms later; a stamp without fraction says 00:00:00.
    received = EPOCH_2026 + 1000 * MS
    (latency,) = delivery_ns([event_at("2026-01-01T00:00:00Z", received)], SAME_CLOCK)
    assert latency == 0  # not 1000 ms: the stamp's second is credited
    recorder = SlaRecorder()
    recorder.add_run(Run("m", "t", None, 0, 0, events=[event_at("2026-01-01T00:00:00Z", received)]),
                     SAME_CLOCK)  # fmt: skip
    result = recorder.evaluate(SLA, metrics=("event_delivery",)).result("event_delivery")
    assert result.passed
    assert result.uncertainty_ms == 1000  # the stamp's resolution, said in the report


def test_a_fine_stamp_is_not_blurred_by_an_assumed_millisecond() -> None:
    received = EPOCH_2026 + 500 * MS + 500_000
    events = [event_at("2026-01-01T00:00:00.000000000Z", received),
              event_at("2026-01-01T00:00:00.000000+00:00", received)]  # fmt: skip
    assert delivery_ns(events, SAME_CLOCK) == [500 * MS + 500_000 - 1, 500 * MS + 500_000 - 1000]
    recorder = SlaRecorder()
    recorder.add_run(Run("m", "t", None, 0, 0, events=events[:1]), SAME_CLOCK)
    result = recorder.evaluate(SLA, metrics=("event_delivery",), gate=("max",)).result("event_delivery")
    assert (result.passed, result.marginal) == (False, False)  # 500.5 ms is late, and certainly so
    assert result.uncertainty_ms == pytest.approx(1e-6)


def test_delivery_is_not_measured_without_an_offset_and_the_gate_says_so() -> None:
    recorder = SlaRecorder()
    run = run_with([(frame("agent_started", timestamp=iso(EPOCH_2026)), EPOCH_2026)])
    recorder.add_run(run)  # no clock: the server timestamps are never compared with local time
    report = recorder.evaluate(SLA)
    delivery = report.result("event_delivery")
    assert (delivery.passed, delivery.measured, delivery.count) == (False, False, 0)
    assert delivery.message == (
        "event_delivery not measured (no clock offset): 1 events received without a server clock "
        "estimate; call Connection.sync_clock() and pass its clock"
    )
    assert not report.passed
    assert report.lines()[0] == "clock: no offset estimate"


def delivery_report(latency_ms: float, uncertainty_ms: float, pong_resolution_ms: float = 0) -> Any:
    """One event, stamped with milliseconds, ``latency_ms`` after the end of its stamp's millisecond."""
    clock = ClockOffset(offset_ns=0, uncertainty_ns=int(uncertainty_ms * MS), rtt_ns=0, samples=4,
                        resolution_ns=int(pong_resolution_ms * MS))  # fmt: skip
    stamp = EPOCH_2026
    recorder = SlaRecorder()
    received = stamp + MS + int(latency_ms * MS)
    recorder.add_run(run_with([(frame("agent_started", timestamp=iso(stamp)), received)]), clock)
    return recorder.evaluate(SLA, metrics=("event_delivery",)).result("event_delivery")


def test_delivery_within_the_bound_passes_and_shows_its_uncertainty() -> None:
    result = delivery_report(120, uncertainty_ms=1.5)
    assert result.passed
    assert result.uncertainty_ms == 2.5  # the offset's, plus the event timestamp's 1 ms
    assert result.message == (
        "event_delivery p95 120 ms, max 120 ms < bound 500 ms (1 sample; clock ± 2.50 ms)"
    )


def test_a_breach_within_the_clocks_half_round_trip_fails_but_says_so() -> None:
    result = delivery_report(502, uncertainty_ms=3)
    assert (result.passed, result.marginal) == (False, True)
    assert result.message == (
        "event_delivery p95 502 ms, max 502 ms > bound 500 ms (1 sample; clock ± 4.00 ms), but only within "
        "the clock's half round trip 3.00 ms: a marginal breach the measurement cannot clear"
    )


def test_resolution_already_credited_does_not_make_a_breach_marginal() -> None:
    # The pong's 3 ms resolution can only have made the delivery look shorter, never longer.
    result = delivery_report(502, uncertainty_ms=3, pong_resolution_ms=3)
    assert (result.passed, result.marginal) == (False, False)


def test_a_clear_breach_is_not_marginal() -> None:
    result = delivery_report(700, uncertainty_ms=3)
    assert (result.passed, result.marginal) == (False, False)


def test_negative_delivery_within_uncertainty_is_counted_as_zero() -> None:
    result = delivery_report(-0.5, uncertainty_ms=1)
    assert result.passed
    assert result.max_ms == 0
    assert "1 below zero counted as 0, lowest -0.50 ms, within the clock uncertainty" in result.message


def test_delivery_far_below_zero_fails_as_untrustworthy() -> None:
    result = delivery_report(-5, uncertainty_ms=1)
    assert not result.passed
    assert result.message == (
        "event_delivery not trustworthy: samples below zero beyond the clock uncertainty (1 sample; "
        "clock ± 2.00 ms; 1 below zero counted as 0, lowest -5.00 ms, beyond the clock uncertainty: "
        "the offset is wrong)"
    )


def test_a_full_report_covers_every_metric() -> None:
    recorder = SlaRecorder()
    recorder.add_connection_time(15 * MS)
    clock = ClockOffset(offset_ns=0, uncertainty_ns=MS, rtt_ns=0, samples=1)
    start = EPOCH_2026
    recorder.add_run(run_with([
        (frame("agent_started", timestamp=iso(start + 100 * MS)), start + 101 * MS),
        (frame("tool_executing", tool_name="a", timestamp=iso(start + 150 * MS)), start + 151 * MS),
        (frame("tool_completed", tool_name="a", timestamp=iso(start + 350 * MS)), start + 352 * MS),
    ], sent_ns=start), clock)  # fmt: skip
    report = recorder.evaluate(SLA)
    assert report.passed
    assert [r.count for r in report.results] == [1, 1, 1, 3]
    assert report.result("first_event").max_ms == 101
    assert report.result("tool_result").max_ms == 201
    assert report.result("event_delivery").max_ms == 1  # 2 ms after the stamp, 1 ms after its end
    assert report.lines()[1].startswith("PASS ws_connect p95 15.0 ms")


def test_a_run_deadline_follows_the_service_levels() -> None:
    # 5 s to start, 30 s per tool, and a margin of one more start (the agent's unbounded steps
    # around the tools) plus one delivery (the ending frame's).
    assert run_deadline_s(PROTOCOL_SLA) == 5 + 30 + 5 + 0.5
    assert run_deadline_s(PROTOCOL_SLA, tools=2) == 5 + 60 + 5 + 0.5
    slow_tools = Sla(**{**SLA.__dict__, "tool_result_ms": 60000})
    assert run_deadline_s(slow_tools) == 5 + 60 + 5 + 0.5
    with pytest.raises(ValueError, match="at least one tool"):
        run_deadline_s(SLA, tools=0)


def test_the_protocol_service_levels_are_the_settings_defaults() -> None:
    assert PROTOCOL_SLA == SLA


def test_the_latency_histogram_spans_first_to_last_sample_in_power_of_two_buckets() -> None:
    from hdrh.histogram import HdrHistogram

    from goldenpath.protocol.sla import log_buckets

    histogram = HdrHistogram(1, 3_600_000_000, 3)
    for micros in (100, 200, 5_000, 300_000):
        histogram.record_value(micros)
    buckets = log_buckets(histogram)
    assert buckets[0] == (0.128, 1)  # 100 µs falls in the bucket up to 128 µs
    assert buckets[-1] == (524.288, 1)  # 300 ms in the one up to 524 ms
    assert sum(count for _, count in buckets) == 4
    assert [upper for upper, _ in buckets] == sorted(upper for upper, _ in buckets)
    assert log_buckets(HdrHistogram(1, 3_600_000_000, 3)) == ()
