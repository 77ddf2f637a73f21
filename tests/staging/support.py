"""What the staging tests share: test users that are logged out at the end, bounded reads of
the backend's REST API, readiness answers, probes of the profile's data services, ClickHouse
counts. Everything goes over the wire, so it works unchanged against a real deployment.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from goldenpath.checks.probes import Probe, http_answer, probe_clickhouse, probe_postgres, probe_redis
from goldenpath.client.auth import Tokens, new_http_client
from goldenpath.client.rest import BackendApi
from goldenpath.client.websocket import Connection, GoldenPathClient, Observer
from goldenpath.core.errors import GoldenPathError, ProbeFailure, ProtocolError, Unreachable
from goldenpath.core.masking import mask_url
from goldenpath.core.settings import Settings
from goldenpath.protocol.contract import Violation, check_events, check_run, check_stray
from goldenpath.protocol.events import Event, Run
from goldenpath.protocol.sla import run_deadline_s
from goldenpath.testkit.plugin import user_email
from goldenpath.testkit.support import run_scenario

LAYER = "staging"
# A scenario makes a few dozen bounded calls; this caps the whole of it on top of them.
SCENARIO_CALLS = 30
T = TypeVar("T")


def run(scenario: Coroutine[Any, Any, T], settings: Settings, *, calls: int = SCENARIO_CALLS,
        runs: int = 0) -> T:  # fmt: skip
    """A scenario bounded by ``calls`` per-call timeouts (SCENARIO_CALLS unless the test says
    otherwise) plus the service-level deadline of each of its ``runs`` (one tool each)."""
    # run_scenario counts in per-call timeouts: the runs' deadlines are converted into as many.
    run_calls = math.ceil(runs * run_deadline_s(settings.sla) / settings.timeout_s)
    return run_scenario(scenario, settings, calls=calls + run_calls)


class StagingSession:
    """Test users and their sockets for one scenario.

    A test ends each socket with ``drained`` (read until the server completes the close, then
    every run checked again with what came after its end: late, duplicate and foreign frames).
    On leaving, every socket still open is closed and every user still logged in is logged out.
    Users themselves stay: the protocol has no user deletion, so they carry user_email's prefix.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.http = new_http_client(max_connections=50)
        self.client = GoldenPathClient(settings, http=self.http)
        self._logged_in: list[Tokens] = []
        self._connections: list[Connection] = []
        self._sent: dict[str, set[str]] = {}  # user -> every message id sent on any of its sockets

    async def new_user(self) -> Tokens:
        tokens = await self.client.auth.new_test_user(user_email(LAYER))
        self._logged_in.append(tokens)
        return tokens

    async def connect(self, tokens: Tokens, observers: Iterable[Observer] = ()) -> Connection:
        connection = await self.client.connect(tokens, observers=observers)
        self._connections.append(connection)
        return connection

    async def drained(self, connection: Connection) -> list[Violation]:
        """Drain the connection, then check each of its runs and every frame of no run of it.

        Its own runs go through the contract with their late frames included. Frames of the
        user's runs sent on other sockets (a watching socket gets every run of its user) are
        checked per run as this socket's copy; anything else is foreign."""
        await connection.drain(self.settings.timeout_s)
        contract = self.client.contract
        sent = self._sent.setdefault(connection.user_id, set())
        sent.update(run.message_id for run in connection.runs)
        violations = [v for run in connection.runs for v in check_run(run, connection.user_id, contract)]
        violations += check_stray(connection.stray, connection.user_id, sent)
        copies: dict[str, list[Event]] = {}
        for event in connection.stray:
            message_id = event.frame.get("message_id")
            if event.type in contract.run_event_types and isinstance(message_id, str) and message_id in sent:
                copies.setdefault(message_id, []).append(event)
        for message_id, events in copies.items():
            violations += check_events(events, user_id=connection.user_id, message_id=message_id,
                                       contract=contract)  # fmt: skip
        return violations

    async def logout(self, tokens: Tokens) -> None:
        self._logged_in.remove(tokens)
        if tokens.refresh_token:
            await self.client.auth.logout(tokens.refresh_token)

    async def get(self, path: str, tokens: Tokens) -> tuple[int, Any]:
        """GET a backend path as the user: (status, the decoded JSON or None), bounded."""
        api = BackendApi(self.settings.backend_url, self.http, self.settings.timeout_s)
        return await api.read(path, tokens.access_token)

    async def __aenter__(self) -> StagingSession:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.gather(*(c.close() for c in self._connections), return_exceptions=True)
        failures = []
        for tokens in list(self._logged_in):
            try:
                await self.logout(tokens)
            except GoldenPathError as error:
                failures.append(str(error))
        await self.http.aclose()
        if failures and exc is None:
            raise GoldenPathError(f"logging out {len(failures)} test user(s) failed: {failures[0]}")


def thread_of(sent: Run) -> str:
    """The thread a run's events name (a message sent with thread_id null starts one)."""
    if sent.reported_thread_id:
        return sent.reported_thread_id
    raise ProtocolError(f"no event of the run of message {sent.message_id} names its thread_id")


# --- readiness ---------------------------------------------------------------------------

CHECK_FIELDS = ("status", "connected", "response_time_ms", "error")
CHECK_STATUSES = ("healthy", "unhealthy", "not_configured")


@dataclass(frozen=True)
class ReadinessEndpoint:
    """A readiness endpoint of the protocol and the vocabulary of its answers."""

    service: str
    path: str
    ok_statuses: tuple[str, ...]  # the statuses that go with HTTP 200
    down_statuses: tuple[str, ...]  # the statuses that go with HTTP 503
    required_checks: tuple[str, ...]
    all_up: str  # the status when no check is unhealthy
    # The backend's checks follow the protocol's dependency schema (3.1); the auth service's
    # name its own dependencies in its own shape (3.2), so only their presence is held to.
    dependency_schema: bool = True

    def url(self, settings: Settings) -> str:
        base = settings.backend_url if self.service == "backend" else settings.auth_service_url
        return base + self.path


BACKEND_READINESS = ReadinessEndpoint(
    "backend", "/api/health/ready", ("healthy", "degraded"), ("unhealthy",),
    ("database", "redis", "clickhouse"), "healthy",
)  # fmt: skip
AUTH_READINESS = ReadinessEndpoint("auth", "/health/ready", ("ready",), ("not_ready",), (), "ready",
                                   dependency_schema=False)  # fmt: skip
READINESS = (BACKEND_READINESS, AUTH_READINESS)


@dataclass(frozen=True)
class Readiness:
    http_status: int
    status: object
    checks: dict[str, Any]


def read_readiness(endpoint: ReadinessEndpoint, settings: Settings) -> Readiness:
    url = endpoint.url(settings)
    try:
        answer = http_answer(url, settings.timeout_s)
    except ProbeFailure as exc:
        pytest.fail(f"{endpoint.service} readiness {mask_url(url)}: {exc}", pytrace=False)
    body = answer.json()
    if not isinstance(body, dict) or not isinstance(body.get("checks"), dict):
        pytest.fail(f"{endpoint.service} readiness {mask_url(url)} answered HTTP {answer.status} without "
                    f"a JSON object holding checks: {answer.body[:120]!r}", pytrace=False)  # fmt: skip
    return Readiness(answer.status, body.get("status"), body["checks"])


def readiness_problems(endpoint: ReadinessEndpoint, answer: Readiness) -> list[str]:
    """Everything in one readiness answer that contradicts the protocol or itself."""
    name = f"{endpoint.service} readiness"
    problems = []
    expected = endpoint.ok_statuses if answer.http_status == 200 else endpoint.down_statuses
    if answer.http_status not in (200, 503):
        problems.append(f"{name} answered HTTP {answer.http_status} (the protocol has 200 or 503)")
    elif answer.status not in expected:
        problems.append(f"{name} says {answer.status!r} with HTTP {answer.http_status} "
                        f"(expected one of {', '.join(expected)})")  # fmt: skip
    problems += [f"{name} has no {check!r} check" for check in endpoint.required_checks
                 if check not in answer.checks]  # fmt: skip
    if not endpoint.dependency_schema:
        return problems
    unhealthy = []
    for check, value in answer.checks.items():
        if not isinstance(value, dict):
            problems.append(f"{name}: check {check!r} is not an object: {value!r}")
            continue
        missing = [f for f in CHECK_FIELDS if f not in value]
        if missing:
            problems.append(f"{name}: check {check!r} lacks {', '.join(missing)}")
        status = value.get("status")
        if status not in CHECK_STATUSES:
            problems.append(f"{name}: check {check!r} has status {status!r} (expected one of "
                            f"{', '.join(CHECK_STATUSES)})")  # fmt: skip
        elif value.get("connected") is not (status == "healthy"):
            connected = value.get("connected")
            problems.append(f"{name}: check {check!r} says {status!r} but connected={connected!r}")
        if status == "unhealthy":
            unhealthy.append(check)
    if answer.status == endpoint.all_up and unhealthy:
        problems.append(f"{name} says {answer.status!r} although {', '.join(unhealthy)} is unhealthy")
    if answer.status in endpoint.ok_statuses and answer.status != endpoint.all_up and not unhealthy:
        problems.append(f"{name} says {answer.status!r} but no check is unhealthy")
    return problems


# --- the profile's own view of the data services -----------------------------------------


@dataclass(frozen=True)
class Dependency:
    """A data service: its readiness check, the setting that locates it, how to probe it."""

    check: str
    setting: str
    label: str
    probe: Probe
    asks: str  # what our probe asks it, for the messages

    def url(self, settings: Settings) -> str | None:
        url = settings.get(self.setting)
        # SQLite lives inside the backend: nothing to reach from here.
        return None if not url or url.startswith("sqlite") else url

    def unconfigured_reason(self, settings: Settings) -> str:
        if (settings.get(self.setting) or "").startswith("sqlite"):
            return f"{self.setting} is SQLite, embedded in the backend: nothing to connect to from here"
        return f"the profile does not configure {self.setting}"

    def observe(self, url: str, timeout_s: float) -> tuple[bool, str]:
        """(up, what the probe saw)."""
        try:
            return True, self.probe(url, timeout_s)
        except ProbeFailure as exc:
            return False, str(exc)


DEPENDENCIES = (
    Dependency("database", "DATABASE_URL", "PostgreSQL", probe_postgres, "SELECT 1"),
    Dependency("redis", "REDIS_URL", "Redis", probe_redis, "PING"),
    Dependency("clickhouse", "CLICKHOUSE_URL", "ClickHouse", probe_clickhouse, "/ping and SELECT 1"),
)


# --- ClickHouse ------------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def clickhouse_table(url: str, table: str) -> str:
    """``table`` qualified with the URL's database (its path, "default" when none)."""
    database = urlsplit(url).path.strip("/") or "default"
    qualified = table if "." in table else f"{database}.{table}"
    if not all(_IDENTIFIER.fullmatch(part) for part in qualified.split(".")) or qualified.count(".") != 1:
        pytest.fail(
            f"ClickHouse table {qualified!r} is not database.table of plain identifiers", pytrace=False
        )
    return qualified


def clickhouse_rows_of_run(url: str, table: str, run_id: str, timeout_s: float) -> int:
    """How many rows the table holds for the run (ClickHouse 18.16 has no query parameters,
    so the run id is checked to be plain before it goes into the SQL)."""
    if not _PLAIN_ID.fullmatch(run_id):
        raise ProtocolError(f"run_id {run_id[:40]!r} is not a plain identifier; refusing to put it in SQL")
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 8123}/"
    auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
    query = f"SELECT count() FROM {table} WHERE run_id = '{run_id}' FORMAT TabSeparated"  # noqa: S608 - run_id checked above
    try:
        with httpx.Client(timeout=timeout_s, auth=auth) as http:
            answer = http.post(base, content=query.encode())
    except httpx.HTTPError as exc:
        raise Unreachable(f"ClickHouse at {mask_url(url)}: {type(exc).__name__}: {exc}") from None
    text = answer.text.strip()
    if answer.status_code != 200 or not text.isdigit():
        first = text.splitlines()[0][:160] if text else "(empty)"
        raise ProtocolError(f"ClickHouse at {mask_url(url)} answered HTTP {answer.status_code} to the "
                            f"count of {table}: {first}")  # fmt: skip
    return int(text)
