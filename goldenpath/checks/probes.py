"""Protocol-aware probes of the data services: each speaks the service's own protocol.

A probe function returns a short detail on success and raises ProbeFailure with the
reason otherwise. ``run_probes`` adds the policy around them: a timeout per attempt,
retries with an interval, an overall deadline and a consecutive-success threshold.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httpx
import psycopg
import redis

from goldenpath.core.errors import ProbeFailure, ProbeSkipped
from goldenpath.core.http import health_url, http_get, service_name
from goldenpath.core.masking import mask_url


@dataclass(frozen=True)
class ProbePolicy:
    timeout_s: float = 5.0
    retries: int = 0
    interval_s: float = 0.5
    deadline_s: float = 15.0
    successes: int = 1


@dataclass(frozen=True)
class ProbeResult:
    name: str
    target: str
    status: str  # ok | fail | skip
    latency_ms: float
    detail: str
    attempts: int

    @property
    def ok(self) -> bool:
        return self.status == "ok"


Probe = Callable[[str, float], str]


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _exchange(host: str, port: int, payload: bytes, timeout_s: float) -> bytes | None:
    """Send payload, return the first bytes of the answer (b"" if closed, None if silent)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(payload)
            return sock.recv(64)
    except TimeoutError:
        return None
    except ConnectionResetError:
        return b""


def identify(host: str, port: int, timeout_s: float) -> str:
    """Name what listens on host:port from how it answers an HTTP request, then an SSLRequest."""
    try:
        # An HTTP server answers with a status line; Redis reads it as an inline command and
        # answers with an -ERR reply.
        reply = _exchange(host, port, b"GET /ping HTTP/1.0\r\n\r\n", timeout_s)
        if reply and reply[:1] in (b"+", b"-"):
            return "Redis (or another RESP server)"
        if reply and reply.startswith(b"HTTP/"):
            return "an HTTP server"
        # PostgreSQL hangs up on a line of text; its SSLRequest gets one byte back.
        ssl_reply = _exchange(host, port, struct.pack("!ii", 8, 80877103), timeout_s)
    except OSError as exc:
        return f"nothing ({exc.strerror or exc})"
    if ssl_reply in (b"N", b"S"):
        return "PostgreSQL"
    if reply is None and ssl_reply is None:
        return "a service that accepts connections but does not answer"
    if reply:
        return f"an unknown service (answered {reply[:16]!r})"
    return "a service that closed the connection without a word"


def probe_postgres(url: str, timeout_s: float) -> str:
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout_s))) as conn:
            row = conn.execute("SELECT 1").fetchone()
    except psycopg.OperationalError as exc:
        raise ProbeFailure(_first_line(exc) + _who(url, 5432, timeout_s, "PostgreSQL")) from None
    if row != (1,):
        raise ProbeFailure(f"SELECT 1 returned {row!r}")
    return "SELECT 1 ok"


def probe_redis(url: str, timeout_s: float) -> str:
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        answer = client.ping()
    except redis.exceptions.BusyLoadingError:
        raise ProbeFailure("LOADING: Redis is loading its dataset into memory") from None
    except redis.exceptions.AuthenticationError as exc:
        raise ProbeFailure(f"NOAUTH/auth failed: {exc}") from None
    except redis.exceptions.ResponseError as exc:
        raise ProbeFailure(f"error reply to PING: {exc}") from None
    except redis.exceptions.RedisError as exc:
        raise ProbeFailure(_first_line(exc) + _who(url, 6379, timeout_s, "Redis")) from None
    finally:
        client.close()
    if answer is not True:
        raise ProbeFailure(f"PING answered {answer!r}, not PONG")
    return "PING answered PONG"


def probe_clickhouse(url: str, timeout_s: float) -> str:
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 8123}"
    auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
    try:
        with httpx.Client(timeout=timeout_s, auth=auth) as client:
            ping = client.get(f"{base}/ping")
            if ping.status_code != 200 or ping.text.strip() != "Ok.":
                raise ProbeFailure(f"/ping answered HTTP {ping.status_code} {ping.text[:40]!r}, "
                                   "not 'Ok.': not a ClickHouse HTTP interface")
            select = client.get(f"{base}/", params={"query": "SELECT 1"})
    except httpx.HTTPError as exc:
        who = _who(url, 8123, timeout_s, "ClickHouse")
        raise ProbeFailure(f"{type(exc).__name__}: {exc}{who}") from None
    if select.status_code != 200 or select.text.strip() != "1":
        raise ProbeFailure(f"SELECT 1 answered HTTP {select.status_code}: {select.text.strip()[:120]}")
    return "/ping Ok., SELECT 1 ok"


def probe_liveness(url: str, timeout_s: float, identity: str | None = None) -> str:
    """GET {url}/health: 200, and the expected ``service`` name when one is given."""
    answer = http_get(health_url(url), timeout_s)
    if answer is None:
        raise ProbeFailure(f"nothing answers {url}/health within {timeout_s:g}s"
                           + _who(url, 80, timeout_s, "an HTTP server"))
    if answer.status != 200:
        raise ProbeFailure(f"/health answered HTTP {answer.status}")
    found = service_name(answer)
    if identity and found != identity:
        raise ProbeFailure(f"{url} is {found or 'an unidentified service'}, not the {identity}")
    return f"/health 200 ({found or 'no service name'})"


def probe_readiness(url: str, timeout_s: float) -> str:
    """GET a readiness URL; every dependency's own check is part of the answer."""
    answer = http_get(url, timeout_s)
    if answer is None:
        raise ProbeFailure(f"nothing answers {url} within {timeout_s:g}s")
    body = answer.json()
    if not isinstance(body, dict) or not isinstance(body.get("checks"), dict):
        raise ProbeFailure(f"{url} answered HTTP {answer.status} without readiness JSON (checks)")
    checks = {name: check.get("status") if isinstance(check, dict) else check
              for name, check in body["checks"].items()}
    summary = ", ".join(f"{name}={status}" for name, status in checks.items())
    if answer.status != 200:
        failing = [name for name, status in checks.items()
                   if status not in ("healthy", "ok", "not_configured")]
        raise ProbeFailure(f"not ready (HTTP {answer.status}, {body.get('status')}): "
                           f"{', '.join(failing) or 'no failing check named'} down; {summary}")
    return f"{body.get('status')}: {summary}"


def _who(url: str, default_port: int, timeout_s: float, expected: str) -> str:
    """Name a different service on the port: the commonest cause of a baffling error."""
    host, port = _host_port(url, default_port)
    # Naming the culprit is a courtesy: it may add at most half a second to a failed probe.
    found = identify(host, port, min(timeout_s, 0.25))
    if found.startswith(expected.split()[0]) or found.startswith("nothing"):
        return ""
    return f" (port {port} on {host} answers as {found}, not {expected})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_probe(name: str, target: str, probe: Probe, policy: ProbePolicy) -> ProbeResult:
    """Attempt until `successes` in a row, the retries are spent, or the deadline passes."""
    deadline = time.monotonic() + policy.deadline_s
    attempts, streak, detail = 0, 0, ""
    started = time.perf_counter()
    latency_ms = 0.0
    while True:
        attempts += 1
        attempt_start = time.perf_counter()
        try:
            detail = probe(target, policy.timeout_s)
            streak += 1
        except ProbeSkipped as exc:
            return ProbeResult(name, mask_url(target), "skip", 0.0, str(exc), attempts)
        except ProbeFailure as exc:
            detail, streak = str(exc), 0
        latency_ms = (time.perf_counter() - attempt_start) * 1000
        if streak >= policy.successes:
            return ProbeResult(name, mask_url(target), "ok", latency_ms, detail, attempts)
        out_of_tries = attempts > policy.retries + policy.successes - 1
        if out_of_tries or time.monotonic() + policy.interval_s > deadline:
            waited = time.perf_counter() - started
            suffix = f" (after {attempts} attempts in {waited:.1f}s)" if attempts > 1 else ""
            return ProbeResult(name, mask_url(target), "fail", latency_ms, detail + suffix, attempts)
        time.sleep(policy.interval_s)


def run_probes(probes: Sequence[tuple[str, str, Probe]], policy: ProbePolicy) -> list[ProbeResult]:
    """Every probe at once: the slowest one, not the sum, sets the wall time."""
    if not probes:
        return []
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        futures = [pool.submit(run_probe, name, target, fn, policy) for name, target, fn in probes]
    return [future.result() for future in futures]
