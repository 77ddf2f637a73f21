"""What the e2e tests share: a bounded scenario runner, test users, runs checked against the
contract (and recorded into the layer's report), the backend's REST API, and token forgery.

Everything goes over the wire to the profile's target through goldenpath's client, so the
same tests validate the embedded reference stack and a real deployment. A wait on a run is
bounded by the service levels (goldenpath.protocol.sla.run_deadline_s), a network call by the
per-call timeout. Every connection is drained when its scenario is done with it, and its runs
are checked again with whatever arrived meanwhile (late frames, duplicates, foreign frames):
no sleep stands in for that. Assertion messages name the fault they detect.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jwt

from goldenpath.client import rest as api
from goldenpath.client.auth import AuthClient, Tokens
from goldenpath.client.websocket import Connection, GoldenPathClient
from goldenpath.core.errors import (
    AuthRefused,
    ConnectionLost,
    GoldenPathTimeout,
    HttpStatusError,
)
from goldenpath.core.settings import Settings
from goldenpath.output.reports import LayerReport
from goldenpath.protocol.contract import Violation, check_run, check_stray
from goldenpath.protocol.events import Event, Run
from goldenpath.protocol.sla import run_deadline_s, run_margin_ms
from goldenpath.testkit.plugin import user_email

T = TypeVar("T")

LAYER = "e2e"
POLL_INTERVAL_S = 0.05
# After a stalled run: later runs get this many times the slowest completed run, at least the floor.
STALLED_MULTIPLE = 5
STALLED_FLOOR_S = 1.0
# A scenario makes several bounded calls and a few runs in a row; this many per-call timeouts
# and this many one-tool run deadlines bound the whole.
SCENARIO_CALLS = 8
SCENARIO_RUNS = 4
JWT_SECRET_SETTING = "JWT_SECRET_KEY"
# The claims a deployment declares, and the setting that says what it issues.
DECLARED_CLAIMS = {"iss": "JWT_ISSUER", "aud": "JWT_AUDIENCE"}
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
REFSTACK_SERVER_PREFIX = "refstack/"
_BODY_SHOWN = 200


def run_timeout_s(settings: Settings) -> float:
    """How long a one-tool run may take: its service levels plus margin, never the per-call
    timeout (a 20 s tool is inside the 30 s tool bound). Runs that start more tools get more:
    Run.wait() re-reads the deadline as tools start."""
    return run_deadline_s(settings.sla, tools=1)


def is_empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict):
        return not value
    return False


def thread_of(run: Run) -> str:
    """The thread the run's first event names (check_run holds the others to it)."""
    if run.reported_thread_id:
        return run.reported_thread_id
    raise AssertionError(f"the events of message {run.message_id} carry no thread_id")


def user_said(text: str) -> Callable[[list[dict[str, Any]]], bool]:
    """A history predicate: the thread holds a user message with this text."""

    def holds(messages: list[dict[str, Any]]) -> bool:
        return any(m.get("role") == "user" and m.get("content") == text for m in messages)

    return holds


def tool_pairs(run: Run, executing: str, completed: str, key: str) -> list[str]:
    """Names of the tools that both started and completed in the run, in completion order."""
    started = {e.frame.get(key) for e in run.events if e.type == executing}
    names = [e.frame.get(key) for e in run.events if e.type == completed]
    return [name for name in names if isinstance(name, str) and name in started]


async def error_status(call: Awaitable[object]) -> int | None:
    """The HTTP status an auth call was refused with, None when it succeeded."""
    try:
        await call
    except (AuthRefused, HttpStatusError) as exc:
        return exc.status
    return None


def forged_token(template: str, key: str, *, expired: bool = False,
                 claims: Mapping[str, object] | None = None) -> str:  # fmt: skip
    """A token with the claims of a genuine one (sub, email, type, iss, aud, ...) re-signed with
    ``key``, fresh or long expired, with ``claims`` replaced. Copying the claims keeps the rest
    right whatever the target's settings are; only what the test varies differs."""
    payload = jwt.decode(template, options={"verify_signature": False})
    header = jwt.get_unverified_header(template)
    now = int(time.time())
    # An hour past expiry is beyond any clock-skew leeway a server may allow.
    issued, expires = (now - 7200, now - 3600) if expired else (now, now + 600)
    payload.update(iat=issued, exp=expires, jti=str(uuid.uuid4()), **(claims or {}))
    algorithm = header.get("alg") if header.get("alg") in HMAC_ALGORITHMS else "HS256"
    with warnings.catch_warnings():
        # The key's length is the target's choice, not something this test can fix.
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(payload, key, algorithm=algorithm)


def token_problem(token: str) -> str | None:
    """Why a token cannot serve as a template for forgery, None when it can."""
    try:
        header = jwt.get_unverified_header(token)
        jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        return f"the target's access tokens are not JWTs ({exc})"
    if header.get("alg") not in HMAC_ALGORITHMS:
        return f"the target signs with {header.get('alg')}, not a shared secret"
    return None


async def new_account(auth: AuthClient) -> Tokens:
    """A fresh password user, registered and logged in (works where the e2e bypass is off)."""
    email = user_email(LAYER)
    password = secrets.token_urlsafe(18)
    user_id = await auth.register(email, password)
    tokens = await auth.login(email, password)
    assert tokens.user_id in (None, user_id), (
        f"login answered user {tokens.user_id}, but registration created user {user_id}"
    )
    return tokens


@dataclass(frozen=True)
class BackendApi(api.BackendApi):
    """The backend's REST API, with the answers the e2e tests insist on."""

    async def json(self, path: str, token: str) -> dict[str, Any]:
        """The 200 answer's JSON object; anything else fails the test, showing the answer."""
        answer = await self.get(path, token)
        shown = answer.text[:_BODY_SHOWN]
        assert answer.status_code == 200, f"GET {path} answered {answer.status_code}: {shown}"
        body = answer.json()
        assert isinstance(body, dict), f"GET {path} answered JSON that is not an object: {shown}"
        return body

    async def thread_ids(self, token: str) -> list[str]:
        threads = (await self.json("/api/threads", token)).get("threads")
        assert isinstance(threads, list), "GET /api/threads answered without a threads list"
        return [str(t.get("thread_id")) for t in threads if isinstance(t, dict)]

    async def history(self, token: str, thread_id: str) -> list[dict[str, Any]]:
        body = await self.json(f"/api/threads/{thread_id}/messages", token)
        messages = body.get("messages")
        assert isinstance(messages, list), f"GET /api/threads/{thread_id}/messages has no messages list"
        return [m for m in messages if isinstance(m, dict)]


async def poll(check: Callable[[], Awaitable[T | None]], timeout_s: float) -> T | None:
    """``check()``'s first non-None answer within the deadline, None when it never came."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await check()
        if found is not None or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(POLL_INTERVAL_S)


@dataclass
class RunPace:
    """How long a run is waited for, shared by the whole layer.

    The full wait until one run of the session ends without agent_completed. After that the
    platform has shown it can stall, and every later test would otherwise spend the full
    timeout learning the same thing again, so later runs are waited for only a generous
    multiple of the slowest run that did complete (at least STALLED_FLOOR_S).
    """

    full_s: float
    slowest_s: float = 0.0
    stalled: str | None = None

    @property
    def wait_s(self) -> float:
        if self.stalled is None:
            return self.full_s
        return min(self.full_s, max(STALLED_FLOOR_S, STALLED_MULTIPLE * self.slowest_s))

    def completed(self, run: Run) -> None:
        if run.terminal is not None:
            self.slowest_s = max(self.slowest_s, (run.terminal.mono_ns - run.sent_mono_ns) / 1e9)

    def timed_out(self, run: Run, waited_s: float) -> str:
        """What to add to the failure: why this wait was shorter than the full one, if it was."""
        if self.stalled is None:
            self.stalled = f"message {run.message_id} got none within {waited_s:g}s"
            return ""
        return f" (wait shortened: earlier in this session {self.stalled})"


@dataclass
class SentLog:
    """Every message each user sent in this session, on any socket: a frame of one of them on
    another socket of the same user is that user's own (the protocol delivers a run to all of
    the user's sockets), not a foreign one."""

    by_user: dict[str, set[str]] = field(default_factory=dict)

    def record(self, connection: Connection) -> set[str]:
        """Add the connection's messages; every message of its user so far."""
        sent = self.by_user.setdefault(connection.user_id, set())
        sent.update(run.message_id for run in connection.runs)
        return sent


@dataclass
class Harness:
    """One scenario's view of the target: its client, its settings and the layer's report."""

    settings: Settings
    report: LayerReport
    gp: GoldenPathClient
    api: BackendApi
    pace: RunPace
    sent: SentLog
    # Violations already reported, so the check after draining adds only what is new.
    checked: set[Violation] = field(default_factory=set)

    @property
    def run_timeout_s(self) -> float:
        return run_timeout_s(self.settings)

    @property
    def first_answer_s(self) -> float:
        """How long the first frame answering a message may take: the first-event bound plus
        that frame's delivery bound (an error_message is such a first answer)."""
        return run_margin_ms(self.settings.sla) / 1000

    async def new_account(self) -> Tokens:
        return await new_account(self.gp.auth)

    @asynccontextmanager
    async def connected(self, tokens: Tokens, transport: str | None = None) -> AsyncIterator[Connection]:
        """An open connection with its clock synced, its connection time in the report.

        On leaving, the connection is drained (read until the server completes the close) and
        every run on it is checked again, now with what arrived after its end: a frame after
        agent_completed, a redelivered frame, another user's frame fail the test."""
        connection = await self.gp.connect(tokens, transport=transport)
        try:
            self.report.add_connection_time(connection.connect_ns)
            await connection.sync_clock()
            yield connection
        except BaseException:
            await connection.close()
            raise
        await self.drained(connection)

    async def drained(self, connection: Connection) -> None:
        """Drain the connection, then fail on anything its runs or stray frames show now."""
        try:
            await connection.drain(self.settings.timeout_s)
        except GoldenPathTimeout as exc:
            raise AssertionError(f"draining the connection: {exc}") from None
        violations: list[Violation] = []
        for run in connection.runs:
            if run.finished and run.outcome == self.gp.contract.agent_completed:
                violations += [v for v in check_run(run, connection.user_id, self.gp.contract)
                               if v not in self.checked]  # fmt: skip
        violations += check_stray(connection.stray, connection.user_id, self.sent.record(connection))
        self.report.add_violations(violations)
        assert not violations, (
            "contract violations found while draining the connection: "
            + "; ".join(str(v) for v in violations)
        )

    async def complete(self, connection: Connection, text: str, *, thread_id: str | None = None) -> Run:
        """Send a message and require a contract-clean run that ends in a non-empty answer."""
        run = await connection.send_message(text, thread_id=thread_id)
        timeout_s = self.pace.wait_s
        try:
            # The run's own service-level deadline (it grows with each tool the run starts),
            # unless an earlier run of this session stalled (see RunPace).
            await run.wait(None if self.pace.stalled is None else timeout_s)
        except GoldenPathTimeout:
            why = self.pace.timed_out(run, timeout_s)
            raise AssertionError(
                f"run of message {run.message_id} got no agent_completed within {timeout_s:g}s{why} "
                f"({describe(run.events)}); {self.violations_text(run, connection)}"
            ) from None
        except ConnectionLost as exc:
            raise AssertionError(
                f"the connection was lost before agent_completed of message {run.message_id}: {exc}; "
                f"{self.violations_text(run, connection)}"
            ) from None
        violations = self.check(run, connection)
        assert not violations, f"contract violations: {'; '.join(str(v) for v in violations)}"
        completed = self.gp.contract.agent_completed
        assert run.outcome == completed, f"message {run.message_id} ended with {run.outcome}, not {completed}"
        assert not is_empty(run.answer), f"{completed} of message {run.message_id} has an empty data.result"
        self.report.add_run(run, connection.clock)
        self.pace.completed(run)
        return run

    async def one_run(self, tokens: Tokens, text: str, *, thread_id: str | None = None) -> Run:
        """A completed run on a connection of its own, closed afterwards."""
        async with self.connected(tokens) as connection:
            return await self.complete(connection, text, thread_id=thread_id)

    def check(self, run: Run, connection: Connection) -> list[Violation]:
        violations = check_run(run, connection.user_id, self.gp.contract)
        self.report.add_violations(violations)
        self.checked.update(violations)
        return violations

    def violations_text(self, run: Run, connection: Connection) -> str:
        violations = self.check(run, connection)
        return "contract violations: " + ("; ".join(str(v) for v in violations) or "none")

    async def wait_for_event(self, run: Run, kind: str) -> Event:
        async def seen() -> Event | None:
            return next((e for e in run.events if e.type == kind), None)

        event = await poll(seen, self.run_timeout_s)
        assert event is not None, (
            f"no {kind} for message {run.message_id} within {self.run_timeout_s:g}s ({describe(run.events)})"
        )
        return event

    async def history_until(
        self, tokens: Tokens, thread_id: str, done: Callable[[list[dict[str, Any]]], bool], what: str
    ) -> list[dict[str, Any]]:
        """The thread's history once ``done`` holds; the run may still be storing in the background."""
        last: list[dict[str, Any]] = []

        async def ready() -> list[dict[str, Any]] | None:
            nonlocal last
            last = await self.api.history(tokens.access_token, thread_id)
            return last if done(last) else None

        found = await poll(ready, self.run_timeout_s)
        assert found is not None, (
            f"the history of thread {thread_id} does not show {what} within {self.run_timeout_s:g}s: "
            f"{[(m.get('role'), str(m.get('content'))[:40]) for m in last]}"
        )
        return found

    async def refusal(self, connection: Connection, run: Run) -> Event:
        """The error_message refusing a sent message, whether it names the message (then it ends
        the run) or not (then it waits in next_error); a run that completes instead fails."""
        timeout_s = self.first_answer_s
        ended = asyncio.ensure_future(run.wait(timeout_s))
        unnamed = asyncio.ensure_future(connection.next_error(timeout_s=timeout_s))
        done, pending = await asyncio.wait((ended, unnamed), return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if unnamed in done:
            return unnamed.result()
        ended.result()
        error_type = self.gp.contract.error_message
        refused = run.terminal
        assert refused is not None, f"message {run.message_id} ended without a frame"
        assert run.outcome == error_type, (
            f"message {run.message_id} was not refused: its run ended with {run.outcome}"
        )
        return refused

    async def ws_accepts(self, token: str | None, transport: str | None = None) -> str | None:
        """The user a WebSocket was accepted as, None when the server refused it."""
        try:
            connection = await self.gp.connect(token, transport=transport)
        except AuthRefused:
            return None
        await connection.close()
        return connection.user_id

    async def token_accepted_on(self, token: str, what: str) -> list[str]:
        """Where a token that must be refused was not: every WebSocket transport of the contract,
        POST /auth/validate and GET /api/threads. Each finding is one sentence naming ``what``."""
        findings = []
        for transport in self.gp.contract.auth_transports:
            user = await self.ws_accepts(token, transport)
            if user is not None:
                findings.append(
                    f"accepted a WebSocket with {what} by the {transport} transport (as user {user})"
                )
        validate = await self.gp.auth.request("POST", "/auth/validate", {"token": token}, secrets=(token,))
        if validate.status_code != 401:
            findings.append(f"POST /auth/validate answered {validate.status_code} to {what} (expected 401)")
        rest = await self.api.get("/api/threads", token)
        if rest.status_code not in (401, 403):
            findings.append(f"GET /api/threads answered {rest.status_code} to {what} (expected 401)")
        return findings


def describe(events: list[Event]) -> str:
    if not events:
        return "no event received"
    return f"{len(events)} event(s) received, the last {events[-1].type}"


@dataclass(frozen=True)
class Scenario:
    """Runs one async scenario from a sync test (pytest-asyncio is not used), bounded as a whole."""

    settings: Settings
    report: LayerReport
    pace: RunPace
    sent: SentLog

    @property
    def budget_s(self) -> float:
        return SCENARIO_CALLS * self.settings.timeout_s + SCENARIO_RUNS * run_timeout_s(self.settings)

    def __call__(self, body: Callable[[Harness], Awaitable[T]]) -> T:
        return asyncio.run(self._main(body))

    async def _main(self, body: Callable[[Harness], Awaitable[T]]) -> T:
        async with GoldenPathClient(self.settings) as gp:
            harness = Harness(
                self.settings,
                self.report,
                gp,
                BackendApi(self.settings.backend_url, gp.http, self.settings.timeout_s),
                self.pace,
                self.sent,
            )
            budget = asyncio.timeout(self.budget_s)
            try:
                async with budget:
                    return await body(harness)
            except TimeoutError:
                if not budget.expired():
                    raise  # one call's own timeout, already saying what it waited for
                raise AssertionError(f"the scenario did not finish within {self.budget_s:g}s") from None


def server_is_refstack(connection: Connection) -> bool:
    data = connection.established.frame.get("data")
    server = data.get("server") if isinstance(data, Mapping) else None
    return isinstance(server, str) and server.startswith(REFSTACK_SERVER_PREFIX)
