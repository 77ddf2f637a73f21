"""Protocol-aware probes against real services, up and down, and against a black hole."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import pytest

from goldenpath.checks.probes import (
    Probe,
    ProbePolicy,
    identify,
    probe_clickhouse,
    probe_liveness,
    probe_postgres,
    probe_readiness,
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


def test_a_black_holed_address_fails_every_probe() -> None:
    # A listener that never accepts: connections complete in the kernel's backlog and then
    # nothing is ever said, which is what a hung service looks like from outside.
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        port = hole.getsockname()[1]
        policy = ProbePolicy(timeout_s=1.0, retries=0, deadline_s=3.0)
        results = run_probes([
            ("redis", f"redis://127.0.0.1:{port}/0", probe_redis),
            ("clickhouse", f"http://127.0.0.1:{port}/", probe_clickhouse),
            ("postgres", f"postgresql://u:p@127.0.0.1:{port}/db", probe_postgres),
        ], policy)  # fmt: skip
    assert [r.status for r in results] == ["fail", "fail", "fail"]
    for result in results:
        assert "accepts connections but does not answer" in result.detail, result.detail


def test_retries_stop_at_the_deadline_and_need_consecutive_successes(own_redis: OwnRedis) -> None:
    # The deadline admits the first attempt and the retries whose interval still fits in it:
    # with a 1 s deadline and 0.2 s between attempts that is a handful, never all 101.
    policy = ProbePolicy(timeout_s=0.5, retries=100, interval_s=0.2, deadline_s=1.0)
    down = run_probe("redis", f"redis://127.0.0.1:{free_port()}/0", probe_redis, policy)
    assert down.status == "fail"
    assert 2 <= down.attempts <= 6, down.attempts
    assert f"after {down.attempts} attempts" in down.detail
    steady = run_probe("redis", own_redis.url, probe_redis, ProbePolicy(successes=3, interval_s=0.01))
    assert steady.status == "ok"
    assert steady.attempts == 3


# --- hostile peers ---------------------------------------------------------------------------
# Each test bounds itself with pytest-timeout: a probe that hangs fails the test instead of
# holding the layer for minutes. The outcome and its one line are asserted, never the time.

PROBES: dict[str, tuple[Probe, str]] = {
    "redis": (probe_redis, "redis://127.0.0.1:{port}/0"),
    "postgres": (probe_postgres, "postgresql://u:p@127.0.0.1:{port}/db"),
    "clickhouse": (probe_clickhouse, "http://127.0.0.1:{port}/"),
    "liveness": (probe_liveness, "http://127.0.0.1:{port}"),
    "readiness": (probe_readiness, "http://127.0.0.1:{port}/api/health/ready"),
}
GARBAGE = b"\x00\x01not a protocol\xff\r\n"


@contextmanager
def hostile_peer(behaviour: str) -> Iterator[int]:
    """A loopback server that accepts every connection and then misbehaves: ``garbage``
    answers whatever it is sent with bytes of no protocol, ``silent`` never says a word,
    ``drip`` sends one byte at a time, each soon enough to reset any read timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    peers: list[socket.socket] = []

    def serve(peer: socket.socket) -> None:
        with peer:
            try:
                if behaviour == "garbage":
                    peer.recv(4096)
                    peer.sendall(GARBAGE)
                while not stop.is_set():
                    if behaviour == "drip":
                        peer.sendall(b"x")
                    stop.wait(0.2)  # the peer's own pace, not a wait for the probe
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                peer, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            peers.append(peer)
            threading.Thread(target=serve, args=(peer,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        acceptor.join(timeout=5)
        listener.close()


def probe_once(kind: str, port: int) -> tuple[str, str]:
    probe, template = PROBES[kind]
    result = run_probe(kind, template.format(port=port), probe, ProbePolicy(timeout_s=1.0, deadline_s=1.0))
    return result.status, result.detail


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", list(PROBES))
def test_a_peer_speaking_garbage_is_one_line_naming_it(kind: str) -> None:
    with hostile_peer("garbage") as port:
        status, detail = probe_once(kind, port)
    assert status == "fail"
    assert "\n" not in detail, detail
    assert "Traceback" not in detail, detail
    assert f"port {port} on 127.0.0.1 answers as an unknown service" in detail, detail


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", list(PROBES))
def test_a_silent_peer_is_one_line_naming_it(kind: str) -> None:
    with hostile_peer("silent") as port:
        status, detail = probe_once(kind, port)
    assert status == "fail"
    assert "\n" not in detail, detail
    assert "accepts connections but does not answer" in detail, detail


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", list(PROBES))
def test_a_peer_dripping_bytes_cannot_hold_a_probe(kind: str) -> None:
    # A byte every 0.2 s resets a 1 s read timeout forever: only the probe's hard deadline ends it.
    with hostile_peer("drip") as port:
        status, detail = probe_once(kind, port)
    assert status == "fail"
    assert "\n" not in detail, detail
    assert f"port {port} on 127.0.0.1 answers as an unknown service (answered b'x" in detail, detail


@pytest.mark.timeout(30)
def test_redis_on_an_http_port_and_http_on_a_redis_port_are_named(own_redis: OwnRedis) -> None:
    # Redis on the backend's port: what a swapped pair of URLs in a profile looks like.
    live = run_probe("backend", f"http://127.0.0.1:{own_redis.port}", probe_liveness, QUICK)
    assert live.status == "fail"
    assert "answered something that is not HTTP" in live.detail, live.detail
    assert f"port {own_redis.port} on 127.0.0.1 answers as Redis" in live.detail, live.detail
    ready = run_probe("ready", f"http://127.0.0.1:{own_redis.port}/health/ready",
                      partial(probe_readiness, service="auth"), QUICK)  # fmt: skip
    assert ready.status == "fail"
    assert "answers as Redis" in ready.detail, ready.detail
