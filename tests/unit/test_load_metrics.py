"""The load run's own numbers: the trend gate, the detection power, the memory slope and
where memory is read from."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import httpx
import pytest

from goldenpath.core.settings import load_settings
from goldenpath.load.memory import (
    MemorySeries,
    fit_slope,
    memory_watch,
    parse_prometheus_rss,
    slope_kib_per_run,
)
from goldenpath.load.metrics import detection_sentence, one_in_k, percentile, trend, trend_floor_ms

REPO = Path(__file__).resolve().parents[2]


def test_detection_power_follows_the_number_of_runs() -> None:
    k = one_in_k(240)
    assert k is not None
    assert 52 < k < 53
    # By its definition, a leak in 1 run of K is then seen with exactly 99% probability.
    assert math.isclose(1 - (1 - 1 / k) ** 240, 0.99)
    assert one_in_k(0) is None
    assert "1 run of 53" in detection_sentence(240)
    assert "99%" in detection_sentence(240)
    assert (one_in_k(1000) or 0) > (one_in_k(240) or 0)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 95) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0


def test_a_creeping_latency_fails_the_trend_and_a_flat_one_passes() -> None:
    creeping = [2.0 * n for n in range(1, 241)]  # refstack's latency_creep: 2 ms more every run
    verdict = trend("first_event", creeping, 2.0, trend_floor_ms(5000, 20, 10))
    assert verdict.passed is False
    assert (verdict.ratio or 0) > 4
    assert "> 2" in verdict.message()
    flat = [10.0 + (n % 7) for n in range(240)]
    assert trend("first_event", flat, 2.0, 50).passed is True


def test_tiny_latencies_are_not_a_trend() -> None:
    # 1 ms to 4 ms is scheduling noise: the first fifth counts as at least 1% of the bound.
    noise = [1.0] * 48 + [2.0] * 144 + [4.0] * 48
    verdict = trend("first_event", noise, 2.0, trend_floor_ms(5000))
    assert verdict.passed is True
    assert verdict.floor_ms == 50


def test_the_floor_grows_with_the_crowd() -> None:
    # A crowd's first runs are served before the queue behind the others builds up.
    assert trend_floor_ms(5000, 20, 10) == 100
    assert trend_floor_ms(5000, 500, 10) == 2500
    assert trend_floor_ms(5000, 5, 10) == 50


def test_too_few_runs_give_no_trend_rather_than_a_pass() -> None:
    assert trend("first_event", [1.0] * 9, 2.0, 50).passed is None


def test_the_slope_is_least_squares_per_run() -> None:
    assert fit_slope([(0, 100), (10, 200), (20, 300)]) == pytest.approx(10.0)
    assert fit_slope([(0, 1), (0, 2), (0, 3)]) is None
    assert fit_slope([(0, 1), (1, 2)]) is None


def test_warm_up_growth_is_left_out_of_the_slope() -> None:
    # 2 MiB of start-up growth in the first 20 runs, then flat: no leak.
    samples = [(n, 50_000 + min(n, 20) * 100) for n in range(0, 241, 5)]
    assert slope_kib_per_run(MemorySeries("test", samples=samples), 240) == pytest.approx(0.0)
    # 8 KiB a run throughout: caught, warm-up or not.
    leaking = [(n, 50_000 + 8 * n) for n in range(0, 1001, 10)]
    assert slope_kib_per_run(MemorySeries("test", samples=leaking), 1000) == pytest.approx(8.0)


def test_prometheus_resident_memory_is_read() -> None:
    body = (b"# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            b"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 5.24288e+07\n")
    assert parse_prometheus_rss(body) == 51200
    assert parse_prometheus_rss(b"http_requests_total 3\n") is None


async def _watch_for(env: dict[str, str], pid: int | None = None) -> MemorySeries:
    async with httpx.AsyncClient() as http:
        return memory_watch(load_settings(REPO, "local", environ=env), pid, http).series


def test_a_remote_target_without_a_metrics_url_is_not_measured() -> None:
    import asyncio

    series = asyncio.run(_watch_for({"BACKEND_URL": "https://chat.example.com"}))
    assert series.source is None
    assert "GOLDENPATH_METRICS_URL is not set" in (series.why_not or "")
    remote = asyncio.run(_watch_for({"BACKEND_URL": "https://chat.example.com",
                                     "GOLDENPATH_METRICS_URL": "https://chat.example.com/metrics"}))
    assert remote.source is not None
    assert "process_resident_memory_bytes" in remote.source


def test_a_local_backend_is_found_by_its_port() -> None:
    import asyncio

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        series = asyncio.run(_watch_for({"BACKEND_URL": f"http://127.0.0.1:{port}"}))
    assert series.source is not None
    assert str(os.getpid()) in series.source
    gone = asyncio.run(_watch_for({}, pid=2**22 + 12345))
    assert gone.source is None
    assert "no such process" in (gone.why_not or "")


def test_the_timeline_counts_events_per_second_and_p95_per_window() -> None:
    from goldenpath.load.report import timeline

    # Ten runs of 5 events in the first second, ten in the last, first events slower later.
    early = [(0.05 * i, 5, 10.0) for i in range(10)]
    late = [(1.5 + 0.05 * i, 5, 40.0) for i in range(10)]
    rows = timeline([*early, *late], 2.0, windows=2)
    assert [row["t_s"] for row in rows] == [1.0, 2.0]
    assert [row["runs"] for row in rows] == [10, 10]
    assert [row["events_per_s"] for row in rows] == [50.0, 50.0]
    assert [row["p95_first_event_ms"] for row in rows] == [10.0, 40.0]
    assert timeline([], 2.0) == []
