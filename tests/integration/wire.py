"""The integration tests' own small client of the golden-path protocol.

Written from the protocol document alone, so that refstack is tested as a black box and
not through goldenpath's client (which is itself under test elsewhere). Every network call
here is bounded: HTTP by TIMEOUT_S, each WebSocket receive by asyncio.wait_for.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

import httpx
import jwt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from goldenpath.protocol.contract import PROTOCOL

TIMEOUT_S = 5.0
SCENARIO_TIMEOUT_S = 30.0

GOLDEN_PATH_EVENTS = PROTOCOL.golden_path_events
TOOL_EVENTS = frozenset({"tool_executing", "tool_completed"})
TERMINAL_EVENTS = frozenset({"agent_completed", "agent_error"})
ENVELOPE_FIELDS = frozenset(
    {"type", "run_id", "thread_id", "user_id", "message_id", "agent_name", "timestamp", "data"}
)
# "ISO 8601 UTC with milliseconds": exactly three fractional digits and a UTC designator.
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(Z|\+00:00)$")
CHECK_FIELDS = frozenset({"status", "connected", "response_time_ms", "error"})

Transport = Literal["subprotocol", "header", "query"]
TRANSPORTS: tuple[Transport, ...] = ("subprotocol", "header", "query")
Event = dict[str, Any]
T = TypeVar("T")


def run(scenario: Coroutine[Any, Any, T], timeout_s: float = SCENARIO_TIMEOUT_S) -> T:
    """Run one async scenario from a sync test (pytest-asyncio is not a dependency), bounded."""
    return asyncio.run(asyncio.wait_for(scenario, timeout_s))


def new_id(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:16]}"


def unique_email(tag: str = "user") -> str:
    return f"{new_id(tag)}@example.test"


@dataclass(frozen=True)
class Target:
    """A running refstack as the tests see it: addresses, secrets we gave it, its pid."""

    auth_url: str
    backend_url: str
    ws_url: str
    pid: int
    jwt_secret: str
    e2e_key: str | None
    env: Mapping[str, str] = field(default_factory=dict)  # what refstack was started with


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    access_token: str
    refresh_token: str


# ------------------------------------------------------------------------------- HTTP


def auth_post(
    target: Target,
    path: str,
    body: object = None,
    *,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST to the auth service: `body` as JSON, or `content` as raw bytes (malformed on purpose)."""
    sent_headers = {"Content-Type": "application/json", **(headers or {})}
    raw = content if content is not None else json.dumps(body).encode()
    return httpx.post(f"{target.auth_url}{path}", content=raw, headers=sent_headers, timeout=TIMEOUT_S)


def get(url: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(url, headers=headers, timeout=TIMEOUT_S)


def user_from(pair: Mapping[str, Any], email: str) -> User:
    return User(pair["user_id"], email, pair["access_token"], pair["refresh_token"])


def bypass_user(target: Target, email: str | None = None) -> User:
    """A user and its token pair through the E2E bypass: no password hashing, so it is fast."""
    assert target.e2e_key is not None, "this stack was started without an E2E bypass key"
    email = email or unique_email()
    answer = auth_post(
        target, "/auth/e2e/test-auth", {"email": email}, headers={"X-E2E-Bypass-Key": target.e2e_key}
    )
    assert answer.status_code == 200, answer.text
    return user_from(answer.json(), email)


def threads_of(target: Target, user: User) -> list[dict[str, Any]]:
    answer = get(f"{target.backend_url}/api/threads", user.access_token)
    assert answer.status_code == 200, answer.text
    threads: list[dict[str, Any]] = answer.json()["threads"]
    return threads


def history(target: Target, user: User, thread_id: str) -> httpx.Response:
    return get(f"{target.backend_url}/api/threads/{thread_id}/messages", user.access_token)


# ------------------------------------------------------------------------------ tokens


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def reissued(token: str, secret: str, **changes: Any) -> str:
    """The same token with some claims changed, signed with `secret` (ours, or a wrong one)."""
    return jwt.encode({**claims_of(token), **changes}, secret, algorithm="HS256")


def expired_copy(token: str, secret: str) -> str:
    now = int(time.time())
    return reissued(token, secret, iat=now - 7200, exp=now - 3600)


WRONG_SECRET = "a-signing-key-the-server-does-not-have-0123456789"
UNUSABLE = ("refresh", "expired", "bad-signature", "unsigned", "garbage")


def unusable_tokens(user: User, secret: str) -> dict[str, str]:
    """Stand-ins for the user's access token that must be refused wherever one is required."""
    return {
        "refresh": user.refresh_token,
        "expired": expired_copy(user.access_token, secret),
        "bad-signature": reissued(user.access_token, WRONG_SECRET),
        "unsigned": jwt.encode(claims_of(user.access_token), "", algorithm="none"),
        "garbage": "not.a.jwt",
    }


def parse_timestamp(value: object) -> datetime | None:
    """The server timestamp as an aware datetime, or None when it is not the protocol's format."""
    if not isinstance(value, str) or not TIMESTAMP.match(value):
        return None
    return datetime.fromisoformat(value)


def user_message(**payload: object) -> str:
    """A user_message frame with exactly the payload fields given (bad ones included)."""
    return json.dumps({"type": "user_message", "payload": payload})


@dataclass(frozen=True)
class Received:
    at: float  # time.time() when the frame was read, to compare with server timestamps
    event: Event


def delivery_latencies(received: list[Received]) -> list[float]:
    """Seconds from each frame's server timestamp to its receipt (one clock: loopback)."""
    latencies = []
    for frame in received:
        stamp = parse_timestamp(frame.event.get("timestamp"))
        assert stamp is not None, f"no protocol timestamp on {frame.event}"
        latencies.append(frame.at - stamp.timestamp())
    return latencies


# ----------------------------------------------------------------------------- WebSocket


def ws_request(target: Target, token: str | None, transport: Transport) -> tuple[str, dict[str, Any]]:
    """The URL and connect() options that present `token` through one of the three transports."""
    if token is None:
        return target.ws_url, {}
    if transport == "subprotocol":
        return target.ws_url, {"subprotocols": [f"jwt.{token}"]}
    if transport == "header":
        return target.ws_url, {"additional_headers": {"Authorization": f"Bearer {token}"}}
    return f"{target.ws_url}?{httpx.QueryParams({'token': token})}", {}


class Socket:
    """One open connection; every frame read is also kept in `log` with its receipt time."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.log: list[Received] = []
        self.greeting: Event | None = None

    async def send_json(self, value: object) -> None:
        await self.ws.send(json.dumps(value))

    async def recv(self, timeout_s: float = TIMEOUT_S) -> Event:
        raw = await asyncio.wait_for(self.ws.recv(), timeout_s)
        event = json.loads(raw)
        self.log.append(Received(time.time(), event))
        assert isinstance(event, dict), f"a server frame that is not a JSON object: {raw!r}"
        return event

    async def send_message(
        self, text: str, thread_id: str | None = None, message_id: str | None = None
    ) -> str:
        message_id = message_id or new_id("msg")
        await self.ws.send(user_message(text=text, thread_id=thread_id, message_id=message_id))
        return message_id

    async def until(self, stop: Callable[[Event], bool], timeout_s: float = TIMEOUT_S) -> list[Event]:
        """Frames up to and including the first one `stop` accepts; TimeoutError if none comes."""
        deadline = time.monotonic() + timeout_s
        frames: list[Event] = []
        while True:
            frames.append(await self.recv(max(deadline - time.monotonic(), 0.001)))
            if stop(frames[-1]):
                return frames

    async def run_of(self, message_id: str, timeout_s: float = TIMEOUT_S) -> list[Event]:
        """Frames until the run of `message_id` ends (agent_completed or agent_error)."""
        return await self.until(
            lambda e: e.get("message_id") == message_id and e.get("type") in TERMINAL_EVENTS, timeout_s
        )

    async def run(
        self, text: str, thread_id: str | None = None, message_id: str | None = None
    ) -> list[Event]:
        return await self.run_of(await self.send_message(text, thread_id, message_id))

    async def drain(self) -> list[Event]:
        """Everything the server had queued for us: ping, then the frames before the pong.

        The server answers a ping in order on this socket, so a frame that was already on
        its way (a leaked or a trailing event) shows up here, without guessing a sleep.
        """
        await self.send_json({"type": "ping"})
        frames = await self.until(lambda e: e.get("type") == "pong")
        return frames[:-1]

    async def frames_for(self, seconds: float) -> list[Event]:
        """Whatever arrives within `seconds` (for faults where no end-of-run ever comes)."""
        deadline = time.monotonic() + seconds
        frames: list[Event] = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                frames.append(await self.recv(left))
            except TimeoutError:
                break
        return frames

    async def closed(self, timeout_s: float = TIMEOUT_S) -> tuple[int | None, list[Event]]:
        """Read until the server closes: its close code and the frames that came first."""
        frames: list[Event] = []
        try:
            while True:
                frames.append(await self.recv(timeout_s))
        except ConnectionClosed as exc:
            return (exc.rcvd.code if exc.rcvd else None), frames

    async def error(self, raw: str | bytes) -> Event:
        """Send a (bad) frame and return the server's next frame, expected to be an error."""
        await self.ws.send(raw)
        return await self.recv()


@asynccontextmanager
async def session(
    target: Target, token: str | None, transport: Transport = "subprotocol", *, greet: bool = True
) -> AsyncIterator[Socket]:
    """An authenticated connection; with greet, connection_established has been read already."""
    url, options = ws_request(target, token, transport)
    async with connect(url, open_timeout=TIMEOUT_S, close_timeout=1, **options) as ws:
        sock = Socket(ws)
        if greet:
            sock.greeting = await sock.recv()
            assert sock.greeting.get("type") == "connection_established", sock.greeting
        yield sock


async def greeting(
    target: Target, token: str, transport: Transport = "subprotocol"
) -> tuple[Event, str | None]:
    """The first frame of a connection and the subprotocol the server selected."""
    async with session(target, token, transport, greet=False) as sock:
        return await sock.recv(), sock.ws.subprotocol


async def user_run(target: Target, user: User, text: str) -> list[Event]:
    """One message on a fresh connection, for tests that need a finished run and nothing more."""
    async with session(target, user.access_token) as sock:
        return await sock.run(text)


@dataclass(frozen=True)
class Attempt:
    """What an authentication attempt got: a refused upgrade, a close, or frames."""

    http_status: int | None
    close_code: int | None
    frames: tuple[str | bytes, ...]

    @property
    def refused(self) -> bool:
        """The protocol's refusal: HTTP 403 before the upgrade, or 1008 after it with nothing sent."""
        if self.http_status is not None:
            return self.http_status == 403
        return self.close_code == 1008 and not self.frames


async def attempt(target: Target, token: str | None, transport: Transport = "subprotocol") -> Attempt:
    url, options = ws_request(target, token, transport)
    try:
        async with connect(url, open_timeout=TIMEOUT_S, close_timeout=1, **options) as ws:
            try:
                # One frame is enough to tell that the connection was not refused.
                first = await asyncio.wait_for(ws.recv(), TIMEOUT_S)
            except ConnectionClosed as exc:
                return Attempt(None, exc.rcvd.code if exc.rcvd else None, ())
            except TimeoutError:
                return Attempt(None, None, ())
            return Attempt(None, None, (first,))
    except InvalidStatus as exc:
        return Attempt(exc.response.status_code, None, ())


# ------------------------------------------------------------------------ golden path


def order_problems(events: list[Event]) -> list[str]:
    """Where a run's event sequence breaks the protocol's order; empty when it is right."""
    types = [e.get("type") for e in events]
    problems: list[str] = []
    if types.count("agent_started") != 1 or types[:1] != ["agent_started"]:
        problems.append(f"agent_started is not exactly once and first: {types}")
    if types.count("agent_completed") != 1 or types[-1:] != ["agent_completed"]:
        problems.append(f"agent_completed is not exactly once and last: {types}")
    tools = [i for i, t in enumerate(types) if t in TOOL_EVENTS]
    if not tools:
        problems.append(f"no tool_executing/tool_completed pair: {types}")
    elif "agent_thinking" not in types[: tools[0]]:
        problems.append(f"no agent_thinking before the first tool pair: {types}")
    pending: list[str] = []
    for event in events:
        kind, tool = event.get("type"), event.get("tool_name")
        if kind not in GOLDEN_PATH_EVENTS:
            problems.append(f"{kind!r} is not one of the five events")
        elif kind == "tool_executing":
            pending.append(str(tool))
        elif kind == "tool_completed":
            if str(tool) in pending:
                pending.remove(str(tool))
            else:
                problems.append(f"tool_completed {tool!r} without an earlier tool_executing")
        elif kind == "agent_thinking" and pending:
            problems.append(f"agent_thinking inside the pair of {pending}")
    if pending:
        problems.append(f"tool_executing without its tool_completed: {pending}")
    return problems


def envelope_problems(event: Event, user: User, message_id: str) -> list[str]:
    """Every field the protocol puts on an event, with the values this run must carry."""
    problems: list[str] = []
    expected = ENVELOPE_FIELDS | ({"tool_name"} if event.get("type") in TOOL_EVENTS else set())
    if missing := expected - event.keys():
        problems.append(f"{event.get('type')}: missing {sorted(missing)}")
    for name in ("type", "run_id", "thread_id", "agent_name"):
        if not isinstance(event.get(name), str) or not event.get(name):
            problems.append(f"{event.get('type')}: {name} is not a non-empty string: {event.get(name)!r}")
    if event.get("user_id") != user.user_id:
        problems.append(f"{event.get('type')}: user_id {event.get('user_id')!r} is not the sender's")
    if event.get("message_id") != message_id:
        problems.append(f"{event.get('type')}: message_id {event.get('message_id')!r} does not echo ours")
    if parse_timestamp(event.get("timestamp")) is None:
        problems.append(f"{event.get('type')}: timestamp {event.get('timestamp')!r} is not ISO 8601 UTC ms")
    if not isinstance(event.get("data"), dict):
        problems.append(f"{event.get('type')}: data is not an object")
    return problems


def run_ids(events: list[Event]) -> set[str]:
    return {e["run_id"] for e in events if e.get("type") in GOLDEN_PATH_EVENTS}
