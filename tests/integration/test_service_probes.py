"""Protocol-aware probes against real services, up and down, and against a black hole."""

from __future__ import annotations

import os
import socket
import time

import pytest

from goldenpath.checks.probes import (
    ProbePolicy,
    identify,
    probe_clickhouse,
    probe_postgres,
    probe_redis,
    run_probe,
    run_probes,
)
from goldenpath.core.http import free_port
from goldenpath.testkit.support import service_missing

from .services import OwnRedis

pytestmark = pytest.mark.real_services
QUICK = ProbePolicy(timeout_s=2.0, retries=0, interval_s=0.1, deadline_s=5.0)


def configured(variable: str, service: str) -> str:
    value = os.environ.get(variable, "")
    if not value:
        service_missing(service, f"{variable} is not set")
    return value


def test_redis_up_then_down_then_up_again(own_redis: OwnRedis) -> None:
    up = run_probe("redis", own_redis.url, probe_redis, QUICK)
    assert up.status == "ok"
    assert up.detail == "PING answered PONG"

    own_redis.stop()
    down = run_probe("redis", own_redis.url, probe_redis, QUICK)
    assert down.status == "fail"
    assert "Connection refused" in down.detail

    own_redis.start()
    assert run_probe("redis", own_redis.url, probe_redis, QUICK).status == "ok"


def test_redis_error_replies_are_failures_with_their_reason(own_redis: OwnRedis) -> None:
    import redis

    redis.Redis.from_url(own_redis.url, socket_timeout=2).config_set("requirepass", "s3cret-pw")
    result = run_probe("redis", own_redis.url, probe_redis, QUICK)
    assert result.status == "fail"
    assert "NOAUTH" in result.detail or "Authentication required" in result.detail
    with_password = f"redis://:s3cret-pw@127.0.0.1:{own_redis.port}/0"
    ok = run_probe("redis", with_password, probe_redis, QUICK)
    assert ok.status == "ok"
    assert "s3cret-pw" not in ok.target


def test_postgres_select_1_and_its_failures() -> None:
    url = configured("DATABASE_URL", "PostgreSQL")
    assert run_probe("postgres", url, probe_postgres, QUICK).detail == "SELECT 1 ok"
    closed = f"postgresql://nobody:pw@127.0.0.1:{free_port()}/nothing"
    refused = run_probe("postgres", closed, probe_postgres, QUICK)
    assert refused.status == "fail"
    assert "refused" in refused.detail.lower()


def test_clickhouse_ping_and_select_1() -> None:
    url = configured("CLICKHOUSE_URL", "ClickHouse")
    result = run_probe("clickhouse", url, probe_clickhouse, QUICK)
    assert result.status == "ok", result.detail
    assert result.detail == "/ping Ok., SELECT 1 ok"


def test_a_port_where_another_service_answers_is_named(own_redis: OwnRedis) -> None:
    as_postgres = f"postgresql://u:p@127.0.0.1:{own_redis.port}/db"
    as_clickhouse = f"http://127.0.0.1:{own_redis.port}/"
    results = run_probes([("postgres", as_postgres, probe_postgres),
                          ("clickhouse", as_clickhouse, probe_clickhouse)], QUICK)
    for result in results:
        assert result.status == "fail"
        assert f"port {own_redis.port} on 127.0.0.1 answers as Redis" in result.detail
    assert identify("127.0.0.1", own_redis.port, 1.0).startswith("Redis")


def test_a_black_holed_address_ends_within_its_timeout() -> None:
    # A listener that never accepts: connections complete in the kernel's backlog and then
    # nothing is ever said, which is what a hung service looks like from outside.
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        port = hole.getsockname()[1]
        policy = ProbePolicy(timeout_s=1.0, retries=0, deadline_s=3.0)
        started = time.monotonic()
        results = run_probes([
            ("redis", f"redis://127.0.0.1:{port}/0", probe_redis),
            ("clickhouse", f"http://127.0.0.1:{port}/", probe_clickhouse),
            ("postgres", f"postgresql://u:p@127.0.0.1:{port}/db", probe_postgres),
        ], policy)
        elapsed = time.monotonic() - started
    assert [r.status for r in results] == ["fail", "fail", "fail"]
    # psycopg's connect_timeout has a floor of 2 s; identify() adds at most 2 x 1 s.
    assert elapsed < 6.0, f"probes took {elapsed:.1f}s"


def test_retries_stop_at_the_deadline_and_need_consecutive_successes(own_redis: OwnRedis) -> None:
    policy = ProbePolicy(timeout_s=0.5, retries=100, interval_s=0.2, deadline_s=1.0)
    started = time.monotonic()
    down = run_probe("redis", f"redis://127.0.0.1:{free_port()}/0", probe_redis, policy)
    assert down.status == "fail"
    assert time.monotonic() - started < 2.0
    assert 2 <= down.attempts <= 7
    steady = run_probe("redis", own_redis.url, probe_redis, ProbePolicy(successes=3, interval_s=0.01))
    assert steady.status == "ok"
    assert steady.attempts == 3
