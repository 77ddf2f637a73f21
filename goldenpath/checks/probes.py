"""Protocol-aware probes of the data services: each speaks the service's own protocol.

A probe function returns a short detail on success and raises ProbeFailure with the
reason otherwise: one line, naming what answered where that can be told. ``run_probes``
adds the policy around them: a timeout per attempt, retries with an interval, an overall
deadline and a consecutive-success threshold.

Every probe has a hard deadline, not only per-operation timeouts: a peer that drips one
byte at a time resets a socket's read timeout forever, and psycopg 3 has no read timeout at
all. So each probe is a coroutine run under ``asyncio.timeout``: when the deadline passes the
task is cancelled and its sockets closed (no thread is left blocked on a read). PostgreSQL
also gets ``connect_timeout`` and a server-side ``statement_timeout``, Redis its socket and
connect timeouts without retries, HTTP httpx's timeouts; the deadline bounds them all.
"""

from __future__ import annotations

import asyncio
import math
import socket
import struct
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import httpx
import psycopg
import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from goldenpath.core.errors import ProbeFailure, ProbeSkipped
from goldenpath.core.http import HttpAnswer, health_url, service_name
from goldenpath.core.masking import mask_url

# A probe is a connect and one or two short exchanges: its hard deadline is this many
# per-call timeouts.
ATTEMPT_CALLS = 2
# psycopg refuses a connect_timeout under 2 s (it uses 2 instead).
PG_MIN_CONNECT_TIMEOUT_S = 2
# The most of an HTTP answer a probe reads: health and readiness answers are small.
MAX_BODY = 65536
_SHOWN = 60
T = TypeVar("T")


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
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname or "127.0.0.1", port or default_port


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


def _bounded(work: Callable[[], Coroutine[Any, Any, T]], url: str, timeout_s: float,
             default_port: int, expected: str) -> T:  # fmt: skip
    """Run one probe's coroutine under its hard deadline; a missed deadline is one line."""
    deadline_s = ATTEMPT_CALLS * timeout_s

    async def main() -> T:
        guard = asyncio.timeout(deadline_s)
        try:
            async with guard:
                return await work()
        except TimeoutError:
            who = who_answers(url, default_port, timeout_s, expected)
            if not guard.expired():
                raise ProbeFailure(f"{mask_url(url)} timed out{who}") from None
            where = mask_url(url)
            raise ProbeFailure(f"no complete answer from {where} within {deadline_s:g}s{who}") from None

    return asyncio.run(main())


def probe_postgres(url: str, timeout_s: float) -> str:
    return _bounded(lambda: _postgres(url, timeout_s), url, timeout_s, 5432, "PostgreSQL")


async def _postgres(url: str, timeout_s: float) -> str:
    statement_ms = max(1, round(timeout_s * 1000))
    try:
        conn = await psycopg.AsyncConnection.connect(
            url,
            connect_timeout=max(PG_MIN_CONNECT_TIMEOUT_S, math.ceil(timeout_s)),
            # A real server that accepts the query but stalls is stopped by the server itself.
            options=f"-c statement_timeout={statement_ms}",
            autocommit=True,
        )
        async with conn:
            cursor = await conn.execute("SELECT 1")
            row = await cursor.fetchone()
    except psycopg.Error as exc:
        raise ProbeFailure(_first_line(exc) + who_answers(url, 5432, timeout_s, "PostgreSQL")) from None
    if row != (1,):
        raise ProbeFailure(f"SELECT 1 returned {row!r}")
    return "SELECT 1 ok"


def probe_redis(url: str, timeout_s: float) -> str:
    return _bounded(lambda: _redis(url, timeout_s), url, timeout_s, 6379, "Redis")


async def _redis(url: str, timeout_s: float) -> str:
    try:
        # No retries: run_probe owns the retry policy, and redis-py's own (3 retries with
        # backoff) multiplied every timeout against a peer that is not Redis.
        client = redis.asyncio.Redis.from_url(url, socket_timeout=timeout_s,
                                              socket_connect_timeout=timeout_s,
                                              retry=Retry(NoBackoff(), 0))  # fmt: skip
    except ValueError as exc:
        raise ProbeFailure(f"{mask_url(url)} is not a Redis URL: {exc}") from None
    try:
        answer = await client.ping()
    except redis.exceptions.BusyLoadingError:
        raise ProbeFailure("LOADING: Redis is loading its dataset into memory") from None
    except redis.exceptions.AuthenticationError as exc:
        raise ProbeFailure(f"NOAUTH/auth failed: {exc}") from None
    except redis.exceptions.ResponseError as exc:
        who = who_answers(url, 6379, timeout_s, "Redis")
        raise ProbeFailure(f"error reply to PING: {_first_line(exc)}{who}") from None
    except (redis.exceptions.RedisError, OSError) as exc:
        raise ProbeFailure(_connect_error(exc) + who_answers(url, 6379, timeout_s, "Redis")) from None
    finally:
        await client.aclose()
    if answer is not True:
        raise ProbeFailure(f"PING answered {str(answer)[:_SHOWN]!r}, not PONG")
    return "PING answered PONG"


def probe_clickhouse(url: str, timeout_s: float) -> str:
    return _bounded(lambda: _clickhouse(url, timeout_s), url, timeout_s, 8123, "ClickHouse")


async def _clickhouse(url: str, timeout_s: float) -> str:
    parts = urlsplit(url)
    host, port = _host_port(url, 8123)
    base = f"{parts.scheme}://{host}:{port}"
    auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
    async with httpx.AsyncClient(timeout=timeout_s, auth=auth) as client:
        ping = await _get(client, f"{base}/ping", timeout_s=timeout_s, default_port=8123,
                          expected="ClickHouse")
        text = ping.body.decode(errors="replace").strip()
        if ping.status != 200 or text != "Ok.":
            raise ProbeFailure(f"/ping answered HTTP {ping.status} {text[:40]!r}, not 'Ok.': "
                               "not a ClickHouse HTTP interface")  # fmt: skip
        select = await _get(client, f"{base}/", timeout_s=timeout_s, default_port=8123,
                            expected="ClickHouse", params={"query": "SELECT 1"})
    answer = select.body.decode(errors="replace").strip()
    if select.status != 200 or answer != "1":
        raise ProbeFailure(f"SELECT 1 answered HTTP {select.status}: {answer[:120]}")
    return "/ping Ok., SELECT 1 ok"


async def _get(client: httpx.AsyncClient, url: str, *, timeout_s: float, default_port: int,
               expected: str, params: dict[str, str] | None = None) -> HttpAnswer:
    """One GET, its body read up to MAX_BODY; anything that is not HTTP is one line naming who answered."""
    try:
        async with client.stream("GET", url, params=params) as response:
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= MAX_BODY:
                    break
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        who = who_answers(url, default_port, timeout_s, expected)
        if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError):
            raise ProbeFailure(f"{mask_url(url)} answered something that is not HTTP "
                               f"({_first_line(exc)[:_SHOWN * 2]}){who}") from None  # fmt: skip
        if isinstance(exc, httpx.TimeoutException):
            raise ProbeFailure(f"{mask_url(url)} did not answer within {timeout_s:g}s "
                               f"({type(exc).__name__}){who}") from None  # fmt: skip
        if isinstance(exc, httpx.ConnectError):
            # Refused, unresolvable or unroutable: httpx's "All connection attempts failed"
            # does not say which, but for whoever reads the table it is one thing.
            raise ProbeFailure(f"nothing answers at {mask_url(url)} ({_first_line(exc)}){who}") from None
        raise ProbeFailure(f"{type(exc).__name__}: {_first_line(exc)}{who}") from None
    return HttpAnswer(response.status_code, body[:MAX_BODY])


def http_answer(url: str, timeout_s: float) -> HttpAnswer:
    """GET ``url`` under the probe deadline: the answer, or ProbeFailure in one line saying why
    there is none (nothing listens, it stays silent, it does not speak HTTP, and who it is)."""

    async def work() -> HttpAnswer:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            return await _get(client, url, timeout_s=timeout_s, default_port=80, expected="an HTTP server")

    return _bounded(work, url, timeout_s, 80, "an HTTP server")


def probe_liveness(url: str, timeout_s: float, identity: str | None = None) -> str:
    """GET {url}/health: 200, and the expected ``service`` name when one is given."""
    answer = http_answer(health_url(url), timeout_s)
    if answer.status != 200:
        raise ProbeFailure(f"/health answered HTTP {answer.status} {_text(answer)!r}")
    found = service_name(answer)
    if identity and found != identity:
        raise ProbeFailure(f"{url} is {found or 'an unidentified service'}, not the {identity}")
    return f"/health 200 ({found or 'no service name'})"


# The overall readiness statuses of each service's own document (docs/protocol.md 3.1, 3.2).
READY_STATUSES = {"backend": ("healthy", "degraded"), "auth": ("ready",)}
# Check statuses that say nothing is wrong, in either service's vocabulary.
FINE_CHECK_STATUSES = ("healthy", "ok", "ready", "up", "not_configured")


def probe_readiness(url: str, timeout_s: float, service: str = "backend") -> str:
    """GET a readiness URL and hold it to its own service's document: the backend's
    ``healthy``/``degraded`` (3.1) or the auth service's ``ready`` (3.2), with checks."""
    answer = http_answer(url, timeout_s)
    body = answer.json()
    if not isinstance(body, dict) or not isinstance(body.get("checks"), dict):
        raise ProbeFailure(f"{mask_url(url)} answered HTTP {answer.status} without readiness JSON "
                           f"(an object with checks): {_text(answer)!r}")  # fmt: skip
    checks = {name: check.get("status") if isinstance(check, dict) else check
              for name, check in body["checks"].items()}  # fmt: skip
    summary = ", ".join(f"{name}={status}" for name, status in checks.items()) or "no checks"
    ready = READY_STATUSES.get(service, READY_STATUSES["backend"])
    if answer.status != 200 or body.get("status") not in ready:
        failing = [name for name, status in checks.items() if status not in FINE_CHECK_STATUSES]
        raise ProbeFailure(f"not ready (HTTP {answer.status}, {str(body.get('status'))[:_SHOWN]}): "
                           f"{', '.join(failing) or 'no failing check named'} down; {summary}")  # fmt: skip
    return f"{body.get('status')}: {summary}"


def _text(answer: HttpAnswer) -> str:
    return answer.body.decode(errors="replace").strip()[:_SHOWN]


def who_answers(url: str, default_port: int, timeout_s: float, expected: str) -> str:
    """Name a different service on the port: the commonest cause of a baffling error."""
    host, port = _host_port(url, default_port)
    # Naming the culprit is a courtesy: it may add at most half a second to a failed probe.
    found = identify(host, port, min(timeout_s, 0.25))
    if found.startswith((expected, "nothing")):
        return ""
    return f" (port {port} on {host} answers as {found}, not {expected})"


def _connect_error(exc: BaseException) -> str:
    """The error's first line, saying plainly "Connection refused" when that is the cause
    (redis.asyncio's own text names only the errno and the failed call)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return f"Connection refused: {_first_line(exc)}"
        cause = cause.__cause__ or cause.__context__
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _attempt(probe: Probe, target: str, timeout_s: float) -> str:
    try:
        return probe(target, timeout_s)
    except (ProbeFailure, ProbeSkipped):
        raise
    except Exception as exc:
        # A probe meeting what its library cannot handle must still end as one row saying
        # what happened, never a traceback in the table.
        raise ProbeFailure(f"{type(exc).__name__}: {_first_line(exc)}") from None


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
            detail = _attempt(probe, target, policy.timeout_s)
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
        # Not synchronisation: the policy's pause between attempts at a service that failed.
        time.sleep(policy.interval_s)


def run_probes(probes: Sequence[tuple[str, str, Probe]], policy: ProbePolicy) -> list[ProbeResult]:
    """Every probe at once: the slowest one, not the sum, sets the wall time."""
    if not probes:
        return []
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        futures = [pool.submit(run_probe, name, target, fn, policy) for name, target, fn in probes]
    return [future.result() for future in futures]
