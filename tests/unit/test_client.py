"""The client against small real servers on loopback: a protocol-speaking WebSocket server
(in refstack's style or in the other styles a healthy platform may have), servers that
misbehave (garbage, silence, plain HTTP, not HTTP, no close handshake), and a closed port.

pytest-asyncio is not used: each test is a sync function around asyncio.run, bounded by
asyncio.wait_for so that a client bug shows up as a failure, never a hang. No test asserts
on elapsed time: a timeout is shown by its exception and message, an early end by the wait
having had a deadline far beyond the test's bound.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol
from websockets.utils import accept_key

from goldenpath.client.auth import AuthClient, Tokens, new_http_client
from goldenpath.client.websocket import Connection, GoldenPathClient, connect
from goldenpath.core.errors import (
    AuthRefused,
    ConnectionLost,
    GoldenPathError,
    GoldenPathTimeout,
    HttpStatusError,
    ProtocolError,
    Unreachable,
)
from goldenpath.core.http import free_port
from goldenpath.core.settings import Settings, Sla, load_settings
from goldenpath.protocol.clock import parse_server_stamp
from goldenpath.protocol.contract import check_run, check_stray
from goldenpath.protocol.events import Event
from goldenpath.protocol.sla import SlaRecorder, run_deadline_s

REPO = Path(__file__).resolve().parents[2]
USERS = {"token-1": "user-1", "token-2": "user-2"}
LATE_REFUSAL = "token-refused-after-upgrade"
LIMIT_S = 5.0
T = TypeVar("T")


def run(coro: Awaitable[T], limit_s: float = LIMIT_S) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, limit_s)

    return asyncio.run(bounded())


def iso_stamp(ns: int, digits: int = 3, zone: str = "Z") -> str:
    """UTC, truncated to ``digits`` fraction digits (0: none), as servers format it."""
    seconds, rest = divmod(ns, 1_000_000_000)
    fraction = f".{rest:09d}"[: digits + 1] if digits else ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + fraction + zone


def iso_now() -> str:
    return iso_stamp(time.time_ns())


@dataclass(frozen=True)
class Style:
    """How a healthy platform may differ from refstack's defaults (docs/protocol.md 7.2)."""

    digits: int = 3  # timestamp fraction digits
    zone: str = "Z"
    ahead_ns: int = 0  # the server clock's error
    extra: bool = False  # unknown fields at the top level and in data
    error_message_id: bool = True  # echo the message_id in error_message
    tool_s: float = 0.0  # how long the tool takes


SLOW_TOOL_S = 0.5
# A tool slower than the per-call timeout, inside its service level.
SMALL_SLA = Sla(ws_connect_ms=1000, first_event_ms=1000, tool_result_ms=2000, event_delivery_ms=500,
                concurrent_users=1, percentile=95)  # fmt: skip
TINY_SLA = Sla(ws_connect_ms=100, first_event_ms=100, tool_result_ms=100, event_delivery_ms=50,
               concurrent_users=1, percentile=95)  # fmt: skip
LATE_FRAMES = 50


# ----------------------------------------------------------------------- a protocol server


@dataclass
class ProtocolServer:
    """Speaks the golden-path protocol in a Style; a message's text picks a misbehaviour."""

    url: str = ""
    style: Style = Style()
    users: dict[int, str] = field(default_factory=dict)
    late_sent: asyncio.Event = field(default_factory=asyncio.Event)

    def stamp(self) -> str:
        return iso_stamp(time.time_ns() + self.style.ahead_ns, self.style.digits, self.style.zone)

    def frame(self, kind: str, data: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": kind, **fields, "timestamp": self.stamp()}
        if data is not None:
            frame["data"] = data
        if self.style.extra:
            frame["trace_id"] = os.urandom(16).hex()
            if isinstance(frame.get("data"), dict):
                frame["data"] = {**frame["data"], "extra": {"note": "a field no client knows"}}
        return frame

    def token_of(self, request: Request) -> str | None:
        for offered in request.headers.get_all("Sec-WebSocket-Protocol"):
            for value in offered.split(","):
                if value.strip().startswith("jwt."):
                    return value.strip()[4:]
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme == "Bearer":
            return token
        return parse_qs(urlsplit(request.path).query).get("token", [None])[0]

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        token = self.token_of(request)
        if token == LATE_REFUSAL:
            return None
        if token not in USERS:
            return connection.respond(403, "forbidden\n")
        self.users[id(connection)] = USERS[token]
        return None

    @staticmethod
    def select_subprotocol(
        connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        return next((p for p in offered if p.startswith("jwt.")), None)

    async def handler(self, ws: ServerConnection) -> None:
        user = self.users.get(id(ws))
        if user is None:
            await ws.close(1008, "token refused")
            return
        await send(ws, self.frame("connection_established",
                                  {"user_id": user, "connection_id": str(uuid.uuid4())}))  # fmt: skip
        async for raw in ws:
            try:
                message = json.loads(raw)
            except ValueError:
                await send(ws, self.frame("error_message", error_code="JSON_PARSE_ERROR",
                                          error_message="not JSON"))  # fmt: skip
                continue
            if message.get("type") == "ping":
                await send(ws, self.frame("pong"))
            elif message.get("type") == "user_message":
                await self.answer(ws, user, message["payload"])

    async def answer(self, ws: ServerConnection, user: str, payload: dict[str, Any]) -> None:
        text = payload["text"]
        run_id, thread_id = str(uuid.uuid4()), payload["thread_id"] or str(uuid.uuid4())

        def event(kind: str, data: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
            return self.frame(kind, data or {}, run_id=run_id, thread_id=thread_id, user_id=user,
                              message_id=payload["message_id"], agent_name="stand-in", **extra)  # fmt: skip

        if text == "silent":
            return
        if text == "refuse":
            named = {"message_id": payload["message_id"]} if self.style.error_message_id else {}
            await send(ws, self.frame("error_message", error_code="VALIDATION_ERROR",
                                      error_message="unknown thread_id", **named))  # fmt: skip
            return
        await send(ws, event("agent_started"))
        if text == "hang":
            return
        if text == "hang-in-tools":
            await send(ws, event("agent_thinking"))
            await send(ws, event("tool_executing", tool_name="search"))
            await send(ws, event("tool_executing", tool_name="lookup"))
            return
        if text == "garbage":
            await ws.send("<<not json>>")
            return
        if text == "close":
            await ws.close(1011, "agent crashed")
            return
        if text == "leak":
            await send(ws, {**event("agent_thinking"), "user_id": "user-2", "run_id": "their-run",
                            "message_id": "their-message"})  # fmt: skip
        await send(ws, event("agent_thinking"))
        await send(ws, event("tool_executing", tool_name="search"))
        if self.style.tool_s:
            await asyncio.sleep(self.style.tool_s)  # the stand-in's tool at work, not synchronisation
        await send(ws, event("tool_completed", {"result": 1}, tool_name="search"))
        await send(ws, event("agent_completed", {"result": f"answer to {text}"}))
        if text == "twice":
            await send(ws, event("agent_completed", {"result": "again"}))
        if text == "late":
            for _ in range(LATE_FRAMES):
                await send(ws, event("agent_thinking"))
            self.late_sent.set()


async def send(ws: ServerConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


@asynccontextmanager
async def protocol_server(style: Style = Style()) -> AsyncIterator[ProtocolServer]:
    server = ProtocolServer(style=style)
    async with serve(server.handler, "127.0.0.1", 0, process_request=server.process_request,
                     select_subprotocol=server.select_subprotocol) as running:  # fmt: skip
        server.url = f"ws://127.0.0.1:{port_of(running)}/ws"
        yield server


def port_of(server: Any) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


@asynccontextmanager
async def connected(
    style: Style = Style(), **options: Any
) -> AsyncIterator[tuple[ProtocolServer, Connection]]:
    timeout_s = options.pop("timeout_s", 2)
    async with protocol_server(style) as server, await connect(
        server.url, "token-1", timeout_s=timeout_s, **options
    ) as connection:
        yield server, connection


@asynccontextmanager
async def misbehaving_ws(handler: Callable[[ServerConnection], Awaitable[None]]) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0) as running:
        yield f"ws://127.0.0.1:{port_of(running)}/ws"


@asynccontextmanager
async def raw_tcp(greeting: bytes | None) -> AsyncIterator[str]:
    """Accepts TCP; sends greeting (not HTTP) or nothing at all, and never answers."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if greeting is not None:
            writer.write(greeting)
            await writer.drain()
            writer.close()
            return
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"ws://127.0.0.1:{port_of(server)}/ws"


# ----------------------------------------------------------------------- an HTTP server


class AuthStandIn(BaseHTTPRequestHandler):
    """The auth service's endpoints in memory; any other path answers 200 plain text."""

    users: dict[str, str] = {}  # noqa: RUF012 - shared on purpose, reset per server
    revoked: set[str] = set()  # noqa: RUF012

    def log_message(self, format: str, *args: Any) -> None:
        return  # keep pytest's output clean

    def reply(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        data = b"just a web page"
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        email = body.get("email", "")
        pair = {"access_token": f"access-{email}", "refresh_token": f"refresh-{email}",
                "token_type": "Bearer", "expires_in": 900, "user_id": f"id-{email}"}  # fmt: skip
        if self.path == "/auth/register":
            if email in self.users:
                return self.reply(409, {"error": "exists"})
            self.users[email] = body["password"]
            return self.reply(201, {"user_id": f"id-{email}", "email": email})
        if self.path == "/auth/login":
            if self.users.get(email) != body.get("password"):
                # A careless server echoes what it was sent: the client must not repeat it.
                return self.reply(401, {"error": "invalid_credentials", "tried": body.get("password")})
            return self.reply(200, pair)
        if self.path == "/auth/e2e/test-auth":
            if self.headers.get("X-E2E-Bypass-Key") != "the-key":
                return self.reply(403, {"error": "forbidden", "key": self.headers.get("X-E2E-Bypass-Key")})
            return self.reply(200, pair)
        if self.path == "/auth/refresh":
            token = body.get("refresh_token", "")
            if token in self.revoked or not token.startswith("refresh-"):
                return self.reply(401, {"error": "invalid_token"})
            return self.reply(200, {"access_token": "access-new", "expires_in": 900})  # no rotation
        if self.path == "/auth/validate":
            ok = body.get("token", "").startswith("access-")
            answer = {"valid": True, "user_id": "id-x"} if ok else {"valid": False}
            return self.reply(200 if ok else 401, answer)
        if self.path == "/auth/logout":
            self.revoked.add(body.get("refresh_token", ""))
            return self.reply(204)
        if self.path == "/not-json":
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")
            return None
        return self.reply(404, {"error": "not_found"})


@contextmanager
def http_server(protocol: str = "HTTP/1.1") -> Iterator[str]:
    AuthStandIn.users, AuthStandIn.revoked = {}, set()
    handler = type("Handler", (AuthStandIn,), {"protocol_version": protocol})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=LIMIT_S)


def settings_for(backend: str, auth: str, **extra: str) -> Settings:
    return load_settings(REPO, "local", environ={
        "BACKEND_URL": backend, "AUTH_SERVICE_URL": auth, "GOLDENPATH_TIMEOUT_S": "2", **extra,
    })  # fmt: skip


# ----------------------------------------------------------------------- the golden path


@pytest.mark.parametrize("transport", ["subprotocol", "header", "query"])
def test_each_transport_connects_and_a_run_meets_the_contract(transport: str) -> None:
    async def scenario() -> None:
        async with protocol_server() as server:
            connection = await connect(server.url, "token-1", transport=transport, timeout_s=2,
                                       user_id="user-1")  # fmt: skip
            async with connection:
                assert connection.user_id == "user-1"
                assert connection.connect_ns > 0
                assert connection.established.type == "connection_established"
                if transport == "subprotocol":
                    assert connection.subprotocol == "jwt.token-1"
                run_ = await connection.ask("hello")
                await connection.drain(2)
                assert run_.outcome == "agent_completed"
                assert run_.answer == "answer to hello"
                assert run_.run_id is not None
                assert [e.type for e in run_.events] == [
                    "agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
                assert all(e.mono_ns > run_.sent_mono_ns and e.wall_ns > 0 for e in run_.events)
                assert check_run(run_, connection.user_id) == []

    run(scenario())


def test_runs_are_collected_apart_and_foreign_frames_kept_aside() -> None:
    async def scenario() -> None:
        async with connected() as (_, connection):
            runs = [await connection.send_message(text) for text in ("one", "leak", "twice")]
            for each in runs:
                await each.wait()
            await connection.drain(2)  # the duplicate completion is read before the close completes
            assert [r.answer for r in runs] == ["answer to one", "answer to leak", "answer to twice"]
            assert len({r.run_id for r in runs}) == 3
            assert check_run(runs[0], "user-1") == []
            codes = [v.code for v in check_run(runs[2], "user-1")]
            assert codes == ["DUPLICATE_COMPLETION"]
            assert [v.code for v in check_stray(connection.stray, "user-1")] == ["FOREIGN_EVENT"]
            assert connection.runs == runs

    run(scenario())


def test_a_message_can_continue_a_thread_with_its_own_id() -> None:
    async def scenario() -> None:
        async with connected() as (_, connection):
            run_ = await connection.ask("again", thread_id="thread-7", message_id="mine-1")
            assert run_.message_id == "mine-1"
            assert {e.frame["thread_id"] for e in run_.events} == {"thread-7"}
            with pytest.raises(ValueError, match="already sent"):
                await connection.send_message("again", message_id="mine-1")

    run(scenario())


def test_pings_give_a_clock_offset_and_an_sla_report() -> None:
    async def scenario() -> None:
        async with connected() as (_, connection):
            offset = await connection.sync_clock(samples=5)
            assert connection.clock is offset
            assert offset.samples == 5
            # Same machine, same clock: zero is within the estimate's error, by construction.
            assert abs(offset.offset_ns) <= offset.uncertainty_ns
            assert offset.resolution_ns == 1_000_000  # the stand-in's stamps carry milliseconds
            recorder = SlaRecorder()
            recorder.add_connection_time(connection.connect_ns)
            recorder.add_run(await connection.ask("hello"), connection.clock)
            report = recorder.evaluate(load_settings(REPO, "local", environ={}).sla)
            # Measured, and trustworthy; whether a loaded machine met the bounds is not this test's.
            assert [(r.metric, r.count, r.measured) for r in report.results] == [
                ("ws_connect", 1, True), ("first_event", 1, True), ("tool_result", 1, True),
                ("event_delivery", 5, True)]  # fmt: skip
            assert "not trustworthy" not in report.result("event_delivery").message

    run(scenario())


def test_a_malformed_frame_gets_an_error_that_names_no_message() -> None:
    async def scenario() -> None:
        async with connected() as (_, connection):
            await connection.send_raw("{not json")
            error = await connection.next_error(timeout_s=2)
            assert error.frame["error_code"] == "JSON_PARSE_ERROR"
            with pytest.raises(GoldenPathTimeout, match=r"no error_message within 0.2s from ws://"):
                await connection.next_error(timeout_s=0.2)

    run(scenario())


def test_the_client_facade_logs_in_and_connects_from_settings() -> None:
    async def scenario() -> None:
        with http_server() as auth:
            async with protocol_server() as server:
                backend = server.url.removesuffix("/ws").replace("ws://", "http://")
                settings = settings_for(backend, auth, E2E_OAUTH_SIMULATION_KEY="the-key")
                async with GoldenPathClient(settings) as client:
                    tokens = await client.auth.e2e_login("a@example.com")
                    assert tokens.user_id == "id-a@example.com"
                    assert "access-" not in repr(tokens)  # tokens stay out of logs
                    with pytest.raises(GoldenPathError, match="use the header or query transport") as bad:
                        await client.connect(tokens)  # '@' cannot travel in a subprotocol
                    assert tokens.access_token not in str(bad.value)
                    with pytest.raises(AuthRefused, match="HTTP 403 before the upgrade"):
                        await client.connect(tokens, transport="query")  # the stand-in knows other tokens
                    async with await client.connect("token-2", transport="header") as connection:
                        assert connection.user_id == "user-2"
                        assert connection.timeout_s == 2

    run(scenario())


# ----------------------------------------------------------------------- healthy differences


@pytest.mark.parametrize("style", [
    pytest.param(Style(digits=6), id="microseconds"),
    pytest.param(Style(digits=9), id="nanoseconds"),
    pytest.param(Style(digits=0), id="no-fraction"),
    pytest.param(Style(zone="+00:00"), id="plus-00-00"),
    pytest.param(Style(digits=6, zone="+00:00"), id="microseconds-plus-00-00"),
    pytest.param(Style(extra=True), id="extra-fields"),
    pytest.param(Style(ahead_ns=5_000_000_000), id="clock-5s-ahead"),
])  # fmt: skip
def test_a_healthy_platform_that_differs_passes_the_contract(style: Style) -> None:
    async def scenario() -> None:
        async with connected(style) as (_, connection):
            offset = await connection.sync_clock(samples=3)
            run_ = await connection.ask("hello")
            await connection.drain(2)
            assert check_run(run_, connection.user_id) == []
            stamp = parse_server_stamp(run_.events[0].frame["timestamp"])
            assert stamp is not None
            assert stamp.resolution_ns == 10 ** (9 - style.digits)  # the digits present, not a fixed 1 ms
            # The estimate is within its own error of the server's true lead, by construction.
            assert abs(offset.offset_ns - style.ahead_ns) <= offset.uncertainty_ns
            recorder = SlaRecorder()
            recorder.add_run(run_, offset)
            delivery = recorder.evaluate(SMALL_SLA, metrics=("event_delivery",)).result("event_delivery")
            # Computed through the offset: a 5 s lead uncorrected would put every sample 5 s below zero.
            assert (delivery.measured, delivery.count) == (True, 5)
            assert "not trustworthy" not in delivery.message

    run(scenario())


def test_an_error_without_message_id_ends_the_only_waiting_message() -> None:
    async def scenario() -> None:
        async with connected(Style(error_message_id=False)) as (_, connection):
            refused = await connection.ask("refuse", message_id="m-refused")
            assert refused.outcome == "error_message"
            assert refused.terminal is not None
            assert refused.terminal.frame["error_code"] == "VALIDATION_ERROR"
            assert [v.code for v in check_run(refused, connection.user_id)] == ["REJECTED"]
            # A raw frame's error comes first and is the raw frame's; the refusal is still the message's.
            await connection.send_raw("{not json")
            second = await connection.ask("refuse")
            assert second.outcome == "error_message"
            assert (await connection.next_error()).frame["error_code"] == "JSON_PARSE_ERROR"

    run(scenario())


def test_an_error_without_message_id_is_not_guessed_when_two_messages_wait() -> None:
    async def scenario() -> None:
        async with connected(Style(error_message_id=False)) as (_, connection):
            silent = await connection.send_message("silent")
            refused = await connection.send_message("refuse")
            error = await connection.next_error()
            assert error.frame["error_code"] == "VALIDATION_ERROR"
            assert (silent.outcome, refused.outcome) == ("pending", "pending")

    run(scenario())


# ----------------------------------------------------------------------- run deadlines


def test_a_tool_slower_than_the_call_timeout_but_inside_its_sla_completes() -> None:
    async def scenario() -> None:
        with http_server() as auth:
            async with protocol_server(Style(tool_s=SLOW_TOOL_S)) as server:
                backend = server.url.removesuffix("/ws").replace("ws://", "http://")
                settings = settings_for(backend, auth, GOLDENPATH_TIMEOUT_S="0.2",
                                        SLA_FIRST_EVENT_MS="1000", SLA_TOOL_RESULT_MS="2000")  # fmt: skip
                assert settings.timeout_s < SLOW_TOOL_S < settings.sla.tool_result_ms / 1000
                async with GoldenPathClient(settings) as client, await client.connect(
                    "token-1", transport="header"
                ) as connection:
                    assert connection.timeout_s == 0.2
                    run_ = await connection.send_message("slow")
                    # What a wait bounded by the per-call timeout did: fail a healthy platform.
                    with pytest.raises(GoldenPathTimeout, match=r"not finished within 0.2s"):
                        await run_.wait(settings.timeout_s)
                    await run_.wait()  # the service levels' deadline: 1 + 2 + 1.5 s
                    assert run_.outcome == "agent_completed"
                    assert connection.run_deadline_s(run_) == run_deadline_s(settings.sla) == 4.5
                    assert check_run(run_, connection.user_id) == []

    run(scenario(), limit_s=10)


def test_a_run_past_its_service_level_deadline_times_out_saying_so() -> None:
    async def scenario() -> None:
        async with connected(sla=TINY_SLA) as (server, connection):
            hung = await connection.send_message("hang", message_id="m-hang")
            with pytest.raises(GoldenPathTimeout) as caught:
                await hung.wait()
            assert str(caught.value) == (
                f"run of message m-hang on {server.url} not finished within its service-level deadline "
                "of 0.35s after sending: 1 event(s) received, the last 'agent_started'"
            )
            # Each tool started earns its own tool bound: two tools, one more 0.1 s.
            tools = await connection.send_message("hang-in-tools", message_id="m-tools")
            with pytest.raises(GoldenPathTimeout, match=r"deadline of 0.45s after sending: 4 event"):
                await tools.wait()

    run(scenario())


# ----------------------------------------------------------------------- every frame seen, drained


def test_observers_see_every_frame_in_arrival_order() -> None:
    async def scenario() -> None:
        seen: list[tuple[str | None, str]] = []

        def observe(event: Event, raw: str) -> None:
            seen.append((event.type, raw))

        async with protocol_server() as server:
            connection = await connect(server.url, "token-1", timeout_s=2, observers=[observe])
            async with connection:
                await connection.ping()
                hello = await connection.ask("leak")
                await connection.drain(2)
                with pytest.raises(RuntimeError, match=r"observer added after 7 frame\(s\) were read"):
                    connection.add_observer(lambda event, raw: None)
        assert [kind for kind, _ in seen] == [
            "connection_established", "pong", "agent_started", "agent_thinking", "agent_thinking",
            "tool_executing", "tool_completed", "agent_completed"]  # fmt: skip
        assert all(json.loads(raw)["type"] == kind for kind, raw in seen)
        # The other user's frame was seen by the observer although it belongs to no run here.
        assert [e.frame["user_id"] for e in connection.stray] == ["user-2"]
        assert len(hello.events) == 5

    run(scenario())


def test_drain_reads_a_finished_runs_late_frames_into_that_run() -> None:
    async def scenario() -> None:
        observed: list[Event] = []
        async with connected() as (server, connection):
            connection.add_observer(lambda event, raw: observed.append(event))
            run_ = await connection.ask("late")
            async with asyncio.timeout(2):
                await server.late_sent.wait()  # all were sent before our close could arrive
            await connection.drain(2)
            assert len(run_.events) == 5 + LATE_FRAMES
            codes = [v.code for v in check_run(run_, connection.user_id)]
            assert codes == ["EVENT_AFTER_COMPLETION"] * LATE_FRAMES
            assert len(observed) == 1 + 5 + LATE_FRAMES
            assert run_.outcome == "agent_completed"

    run(scenario())


@asynccontextmanager
async def no_close_handshake() -> AsyncIterator[str]:
    """A WebSocket server that opens, says connection_established, and then ignores everything,
    the client's close frame included (written by hand: websockets always answers a close)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))  # fmt: skip
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept_key(key.decode()).encode() + b"\r\n\r\n")  # fmt: skip
        payload = json.dumps({"type": "connection_established", "timestamp": iso_now(),
                              "data": {"user_id": "u"}}).encode()  # fmt: skip
        writer.write(bytes([0x81, len(payload)]) + payload)  # one unmasked text frame, < 126 bytes
        await writer.drain()
        await reader.read()  # until the client drops the socket

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"ws://127.0.0.1:{port_of(server)}/ws"


def test_drain_of_a_server_that_never_completes_the_close_fails_at_its_deadline() -> None:
    async def scenario() -> None:
        async with no_close_handshake() as url:
            connection = await connect(url, "t", transport="query", timeout_s=2, compression=None)
            with pytest.raises(GoldenPathTimeout) as caught:
                await connection.drain(0.3)
            assert str(caught.value) == (
                f"{url} did not complete the close handshake within 0.3s (0 frame(s) read on this connection)"
            )

    run(scenario())


# ----------------------------------------------------------------------- refusals


@pytest.mark.parametrize("transport", ["subprotocol", "header", "query"])
def test_a_refused_token_before_the_upgrade_is_auth_refused_without_the_token(transport: str) -> None:
    async def scenario() -> None:
        async with protocol_server() as server:
            with pytest.raises(AuthRefused) as caught:
                await connect(server.url, "secret-bad-token", transport=transport, timeout_s=2)
            assert caught.value.status == 403
            assert str(caught.value) == (
                f"{server.url} refused the credentials with HTTP 403 before the upgrade "
                f"({transport} transport)"
            )

    run(scenario())


def test_no_token_at_all_is_refused_too() -> None:
    async def scenario() -> None:
        async with protocol_server() as server:
            with pytest.raises(AuthRefused):
                await connect(server.url, None, timeout_s=2)

    run(scenario())


def test_close_1008_after_the_upgrade_is_auth_refused() -> None:
    async def scenario() -> None:
        async with protocol_server() as server:
            with pytest.raises(AuthRefused, match=r"code 1008 .* right after the upgrade") as caught:
                await connect(server.url, LATE_REFUSAL, transport="header", timeout_s=2)
            assert caught.value.close_code == 1008
            assert LATE_REFUSAL not in str(caught.value)

    run(scenario())


# ----------------------------------------------------------------------- bad targets


def test_a_closed_port_is_unreachable() -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws"
    with pytest.raises(Unreachable) as caught:
        run(connect(url, "token-1", timeout_s=2))
    assert str(caught.value) == f"cannot connect to {url}: connection refused (is the backend running?)"


@pytest.mark.parametrize("protocol", ["HTTP/1.1", "HTTP/1.0"])
def test_a_plain_http_server_is_not_a_websocket_endpoint(protocol: str) -> None:
    with http_server(protocol) as base:
        url = base.replace("http://", "ws://") + "/ws"
        with pytest.raises(ProtocolError) as caught:
            run(connect(url, "token-1", transport="query", timeout_s=2))
    assert str(caught.value) == (
        f"HTTP server at {url} answered 200 without upgrading: not a WebSocket endpoint"
    )


def test_a_server_that_is_not_http_is_named_so() -> None:
    async def scenario() -> None:
        async with raw_tcp(b"SSH-2.0-OpenSSH_9.6\r\n") as url:
            with pytest.raises(ProtocolError, match="did not answer the upgrade with HTTP: not a WebSocket"):
                await connect(url, "token-1", timeout_s=2)

    run(scenario())


def test_a_tcp_server_that_never_answers_times_out() -> None:
    async def scenario() -> None:
        async with raw_tcp(None) as url:
            with pytest.raises(GoldenPathTimeout) as caught:
                await connect(url, "token-1", timeout_s=0.5)
            assert str(caught.value) == f"WebSocket upgrade at {url} not answered within 0.5s"

    run(scenario())


def test_a_websocket_that_accepts_and_never_speaks_times_out() -> None:
    async def silent(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async def scenario() -> None:
        async with misbehaving_ws(silent) as url:
            with pytest.raises(GoldenPathTimeout) as caught:
                await connect(url, "token-1", timeout_s=0.5)
            assert str(caught.value) == f"no connection_established within 0.5s from {url}"

    run(scenario())


def test_garbage_as_the_first_frame_is_a_protocol_error() -> None:
    async def garbage(ws: ServerConnection) -> None:
        await ws.send("hello, I am not JSON")
        await ws.wait_closed()

    async def scenario() -> None:
        async with misbehaving_ws(garbage) as url:
            with pytest.raises(ProtocolError) as caught:
                await connect(url, "token-1", timeout_s=2)
            assert str(caught.value) == (
                f"{url}: server sent non-JSON frame: b'hello, I am not JSON' (first 60 bytes)"
            )

    run(scenario())


def test_a_wrong_first_frame_is_a_protocol_error() -> None:
    async def wrong(ws: ServerConnection) -> None:
        await send(ws, {"type": "pong", "timestamp": iso_now()})
        await ws.wait_closed()

    async def scenario() -> None:
        async with misbehaving_ws(wrong) as url:
            with pytest.raises(ProtocolError, match=r"first frame was 'pong', expected connection_estab"):
                await connect(url, "token-1", timeout_s=2)

    run(scenario())


def test_an_unechoed_subprotocol_is_a_protocol_error() -> None:
    async def established(ws: ServerConnection) -> None:
        await send(ws, {"type": "connection_established", "data": {"user_id": "u"}, "timestamp": iso_now()})
        await ws.wait_closed()

    async def scenario() -> None:
        async with misbehaving_ws(established) as url:  # selects no subprotocol
            with pytest.raises(ProtocolError, match=r"without echoing the jwt\.<token> subprotocol"):
                await connect(url, "token-1", timeout_s=2)
            async with await connect(url, "token-1", transport="header", timeout_s=2) as connection:
                assert connection.user_id == "u"
            with pytest.raises(ProtocolError, match="names user u, but the token is user someone"):
                await connect(url, "token-1", transport="header", timeout_s=2, user_id="someone")

    run(scenario())


# ----------------------------------------------------------------------- failures mid-run


def test_a_run_that_never_ends_times_out_with_what_arrived() -> None:
    async def scenario() -> None:
        async with connected() as (server, connection):
            run_ = await connection.send_message("hang", message_id="m-hang")
            with pytest.raises(GoldenPathTimeout) as caught:
                await run_.wait(0.3)
            assert str(caught.value) == (
                f"run of message m-hang on {server.url} not finished within 0.3s: "
                "1 event(s) received, the last 'agent_started'"
            )
            assert run_.outcome == "pending"

    run(scenario())


def test_garbage_mid_run_fails_the_run_at_once() -> None:
    async def scenario() -> None:
        async with connected() as (_, connection):
            # The run's deadline (40.5 s) is far beyond the test's bound: only the failure can end it.
            with pytest.raises(ProtocolError, match=r"server sent non-JSON frame: b'<<not json>>'"):
                await connection.ask("garbage")
            assert isinstance(connection.failure, ProtocolError)
            with pytest.raises(ProtocolError):
                await connection.ping()

    run(scenario())


def test_a_server_close_mid_run_is_connection_lost() -> None:
    async def scenario() -> None:
        async with connected() as (_, connection):
            with pytest.raises(ConnectionLost) as caught:
                await connection.ask("close", message_id="m-close")
            assert str(caught.value) == (
                f"{connection.where} closed the connection (code 1011 'agent crashed'), "
                "before the run of message m-close ended"
            )

    run(scenario())


def test_a_ping_without_pong_times_out() -> None:
    async def no_pong(ws: ServerConnection) -> None:
        await send(ws, {"type": "connection_established", "data": {"user_id": "u"}, "timestamp": iso_now()})
        await ws.wait_closed()

    async def scenario() -> None:
        async with misbehaving_ws(no_pong) as url:
            connection: Connection = await connect(url, "t", transport="query", timeout_s=2)
            async with connection:
                with pytest.raises(GoldenPathTimeout, match=f"no pong within 0.2s from {url}$"):
                    await connection.ping(timeout_s=0.2)

    run(scenario())


# ----------------------------------------------------------------------- auth calls


def test_password_users_register_log_in_refresh_validate_and_log_out() -> None:
    async def scenario(base: str) -> None:
        async with new_http_client() as http:
            auth = AuthClient(base, http, timeout_s=2)
            tokens = await auth.register_or_login("b@example.com", "pw-123456")
            assert tokens.user_id == "id-b@example.com"
            again = await auth.register_or_login("b@example.com", "pw-123456")  # 409 on register is fine
            assert again.access_token == tokens.access_token
            with pytest.raises(HttpStatusError) as exists:
                await auth.register("b@example.com", "pw-123456")
            assert exists.value.status == 409
            assert tokens.refresh_token is not None
            refreshed = await auth.refresh(tokens.refresh_token)
            assert (refreshed.access_token, refreshed.refresh_token) == ("access-new", tokens.refresh_token)
            assert (await auth.validate(tokens.access_token))["valid"] is True
            await auth.logout(tokens.refresh_token)
            with pytest.raises(AuthRefused) as revoked:
                await auth.refresh(tokens.refresh_token)
            assert revoked.value.status == 401
            assert tokens.refresh_token not in str(revoked.value)

    with http_server() as base:
        run(scenario(base))


def test_refusals_never_show_the_password_or_the_key() -> None:
    async def scenario(base: str) -> None:
        async with new_http_client() as http:
            auth = AuthClient(base, http, timeout_s=2, e2e_key="wrong-key-1234")
            with pytest.raises(AuthRefused) as wrong_password:
                await auth.login("nobody@example.com", "hunter2-secret")
            assert str(wrong_password.value) == (
                f'POST {base}/auth/login answered 401: {{"error": "invalid_credentials", "tried": "****"}}'
            )
            with pytest.raises(AuthRefused) as wrong_key:
                await auth.e2e_login("c@example.com")
            assert wrong_key.value.status == 403
            assert "wrong-key-1234" not in str(wrong_key.value)
            assert '"key": "****"' in str(wrong_key.value)
            tokens = await auth.e2e_login("c@example.com", key="the-key")
            assert isinstance(tokens, Tokens)
            with pytest.raises(GoldenPathError, match="E2E_OAUTH_SIMULATION_KEY is not set"):
                await AuthClient(base, http).e2e_login("c@example.com")
            with pytest.raises(ProtocolError, match="answered 200 with non-JSON: 'hello'"):
                await auth.call("POST", "/not-json", {}, expect=(200,))

    with http_server() as base:
        run(scenario(base))


def test_an_unreachable_or_silent_auth_service_fails_in_time() -> None:
    async def scenario() -> None:
        async with new_http_client() as http:
            closed = f"http://127.0.0.1:{free_port()}"
            with pytest.raises(Unreachable, match=f"cannot connect to {closed} .*is the auth service"):
                await AuthClient(closed, http, timeout_s=2).login("a@example.com", "pw")
            async with raw_tcp(None) as url:
                silent = url.replace("ws://", "http://").removesuffix("/ws")
                with pytest.raises(GoldenPathTimeout) as caught:
                    await AuthClient(silent, http, timeout_s=0.5).login("a@example.com", "pw")
                assert str(caught.value) == f"POST {silent}/auth/login not answered within 0.5s"

    run(scenario())
