"""The golden-path WebSocket client: connect with a chosen auth transport, send messages
and pings, and collect each run's events with their receive times.

Built to carry a multi-user runner (thousands of connections in one process): one reader
task per connection decodes each frame once (``json.loads``, never re-encoded, no per-event
logging), hands it to the connection's observers (``add_observer``: every frame, in arrival
order, e.g. for a per-user ledger) and routes it to its run, found by ``run_id`` once known
and by ``message_id`` until then. A frame of a run that already ended is still routed to that
run, where the contract sees it as late. Frames that belong to no run of this connection
(another socket's runs of the same user, or a leak) are kept in ``Connection.stray``.

An ``error_message`` need not carry a ``message_id`` (docs/protocol.md 7.2). One that names no
message goes to the only message of this socket still waiting for its first frame, when that is
unambiguous (exactly one such message, and no frame sent through ``send_raw`` still possibly
unanswered); otherwise it waits in ``next_error()``.

Bounds: a single network call (connect, send, ping, close) is bounded by ``timeout_s``, the
profile's GOLDENPATH_TIMEOUT_S by default; a wait on a run by the run's service-level deadline
(goldenpath.protocol.sla.run_deadline_s), never by the per-call timeout. ``drain()`` ends a
connection by reading it until the server completes the close, so nothing sent late is missed.
Failures are goldenpath.core.errors' exceptions, whose messages never show a token.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)
from websockets.typing import Subprotocol

from goldenpath.client.auth import AuthClient, Tokens, new_http_client
from goldenpath.core.errors import (
    AuthRefused,
    ConnectionLost,
    GoldenPathError,
    GoldenPathTimeout,
    ProtocolError,
    Unreachable,
)
from goldenpath.core.masking import mask_text, mask_url
from goldenpath.core.settings import Settings, Sla
from goldenpath.protocol.clock import ClockOffset, PingSample, estimate_offset, parse_server_stamp
from goldenpath.protocol.contract import PROTOCOL, TRANSPORTS, Contract
from goldenpath.protocol.events import Event, Run
from goldenpath.protocol.sla import PROTOCOL_SLA, run_deadline_s

# Sees every frame a connection receives: the decoded frame as an Event, and its raw text.
Observer = Callable[[Event, str], None]

_SHOWN_BYTES = 60
_POLICY_VIOLATION = 1008
_HTTP10_STATUS = re.compile(r"expected HTTP/1\.1: HTTP/1\.0 (\d{3})\b")
_TOKEN_CHARS = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ABNORMAL_CLOSURE = 1006  # websockets' close code when no close frame came back


def _text(raw: str | bytes) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", "replace")


def _head(raw: str | bytes) -> bytes:
    return (raw.encode("utf-8", "replace") if isinstance(raw, str) else raw)[:_SHOWN_BYTES]


def decode_frame(raw: str | bytes, where: str) -> dict[str, Any]:
    """The frame as a JSON object, or ProtocolError showing its first bytes."""
    try:
        frame = json.loads(raw)
    except ValueError:
        raise ProtocolError(
            f"{where}: server sent non-JSON frame: {_head(raw)!r} (first {_SHOWN_BYTES} bytes)"
        ) from None
    if type(frame) is not dict:
        raise ProtocolError(
            f"{where}: server sent JSON that is not an object: {_head(raw)!r} (first {_SHOWN_BYTES} bytes)"
        )
    return frame


def credentials(
    url: str, token: str | None, transport: str, contract: Contract = PROTOCOL
) -> tuple[str, dict[str, str], list[Subprotocol]]:
    """(url, headers, subprotocols) that carry the token by the chosen transport."""
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown auth transport {transport!r}; use one of {', '.join(TRANSPORTS)}")
    if token is None:
        return url, {}, []
    if transport == "subprotocol":
        if not _TOKEN_CHARS.fullmatch(token):
            # Said here, without the token: websockets' own ValueError would print it.
            raise GoldenPathError(
                "the token has characters a Sec-WebSocket-Protocol value cannot carry (RFC 7230 "
                "tchar); use the header or query transport"
            )
        return url, {}, [Subprotocol(contract.subprotocol_prefix + token)]
    if transport == "header":
        return url, {contract.auth_header: f"{contract.auth_scheme} {token}"}, []
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), (contract.token_query_param, token)]
    return urlunsplit(parts._replace(query=urlencode(query))), {}, []


async def connect(
    url: str,
    token: str | None,
    *,
    transport: str = "subprotocol",
    timeout_s: float = 10.0,
    contract: Contract = PROTOCOL,
    user_id: str | None = None,
    compression: str | None = "deflate",
    max_size: int | None = 2**20,
    sla: Sla = PROTOCOL_SLA,
    observers: Iterable[Observer] = (),
) -> Connection:
    """Open a WebSocket and wait for connection_established.

    ``token`` None connects without credentials (to see the refusal). ``user_id``, when
    known, must match the user connection_established names. The connection time runs from
    starting the upgrade (TCP connect included) to receiving connection_established.
    ``sla`` sets the deadline of every run waited for on the connection; ``observers`` see
    every frame from connection_established on.
    """
    target, headers, subprotocols = credentials(url, token, transport, contract)
    where = mask_url(url)
    how = f"{transport} transport" if token is not None else "no token sent"
    deadline = asyncio.get_running_loop().time() + timeout_s
    started = time.perf_counter_ns()
    ws = await _upgrade(
        target, headers, subprotocols, where=where, how=how, timeout_s=timeout_s,
        compression=compression, max_size=max_size, secrets=[token] if token else [],
    )  # fmt: skip
    try:
        async with asyncio.timeout_at(deadline):
            raw = await ws.recv()
        received = Event({}, time.perf_counter_ns(), time.time_ns())
    except TimeoutError:
        await _abandon(ws)
        raise GoldenPathTimeout(
            f"no {contract.connection_established} within {timeout_s:g}s from {where}"
        ) from None
    except ConnectionClosed as exc:
        raise _closed_before_established(exc, where, how, contract) from None
    try:
        received.frame = _established(raw, where, contract)
        if transport == "subprotocol" and token is not None and ws.subprotocol != subprotocols[0]:
            raise ProtocolError(
                f"{where} upgraded without echoing the {contract.subprotocol_prefix}<token> subprotocol "
                "(browsers drop such a connection)"
            )
        owner = _owner(received.frame, user_id, where, contract)
    except ProtocolError:
        await _abandon(ws)
        raise
    connection_id = received.frame["data"].get("connection_id")
    connection = Connection(
        ws,
        where=where,
        transport=transport,
        contract=contract,
        established=received,
        connect_ns=received.mono_ns - started,
        user_id=owner,
        connection_id=connection_id if isinstance(connection_id, str) else None,
        timeout_s=timeout_s,
        sla=sla,
        established_raw=_text(raw),
    )
    for observer in observers:
        connection.add_observer(observer)
    return connection


async def _upgrade(
    target: str, headers: dict[str, str], subprotocols: list[Subprotocol], *, where: str, how: str,
    timeout_s: float, compression: str | None, max_size: int | None, secrets: list[str],
) -> ClientConnection:  # fmt: skip
    try:
        return await ws_connect(
            target,
            additional_headers=headers,
            subprotocols=subprotocols or None,
            compression=compression,
            max_size=max_size,
            open_timeout=timeout_s,
            ping_interval=None,  # library keepalives would add traffic to every measured socket
            close_timeout=min(timeout_s, 2.0),
        )
    except TimeoutError:
        raise GoldenPathTimeout(f"WebSocket upgrade at {where} not answered within {timeout_s:g}s") from None
    except InvalidStatus as exc:
        raise _refused_upgrade(exc.response.status_code, where, how) from None
    except InvalidMessage as exc:
        status = _http10_status(exc)
        if status is not None:
            raise _refused_upgrade(status, where, how) from None
        raise ProtocolError(f"{where} did not answer the upgrade with HTTP: not a WebSocket server") from None
    except InvalidURI:
        raise GoldenPathError(f"not a WebSocket URL: {where}") from None
    except InvalidHandshake as exc:
        raise ProtocolError(f"{where}: WebSocket handshake failed: {mask_text(str(exc), secrets)}") from None
    except socket.gaierror as exc:
        raise Unreachable(f"cannot resolve the host of {where}: {exc.strerror}") from None
    except ConnectionRefusedError:
        raise Unreachable(
            f"cannot connect to {where}: connection refused (is the backend running?)"
        ) from None
    except OSError as exc:
        raise Unreachable(f"cannot connect to {where}: {exc.strerror or type(exc).__name__}") from None
    except ValueError as exc:
        # websockets refuses some header values up front, quoting them: the token may be among them.
        raise GoldenPathError(f"{where}: cannot open: {mask_text(str(exc), secrets)}") from None


def _http10_status(exc: InvalidMessage) -> int | None:
    """The status of an HTTP/1.0 answer, which websockets refuses before looking at it.

    Plain servers (python's http.server among them) answer HTTP/1.0; that is an HTTP
    server without WebSocket, not a non-HTTP peer.
    """
    match = _HTTP10_STATUS.search(str(exc.__cause__ or ""))
    return int(match.group(1)) if match else None


def _established(raw: str | bytes, where: str, contract: Contract) -> dict[str, Any]:
    frame = decode_frame(raw, where)
    if frame.get("type") != contract.connection_established:
        raise ProtocolError(
            f"{where}: first frame was {frame.get('type')!r}, expected "
            f"{contract.connection_established}: {_head(raw)!r} (first {_SHOWN_BYTES} bytes)"
        )
    if not isinstance(frame.get("data"), dict):
        raise ProtocolError(f"{where}: {contract.connection_established} has no data object")
    return frame


def _owner(frame: dict[str, Any], user_id: str | None, where: str, contract: Contract) -> str:
    """The connection's user: the one connection_established names, which must be the token's."""
    named = frame["data"].get("user_id")
    if isinstance(named, str) and user_id is not None and named != user_id:
        raise ProtocolError(
            f"{where}: {contract.connection_established} names user {named}, but the token is user {user_id}"
        )
    owner = named if isinstance(named, str) else user_id
    if owner is None:
        raise ProtocolError(f"{where}: {contract.connection_established} has no data.user_id")
    return owner


def _closed_before_established(
    exc: ConnectionClosed, where: str, how: str, contract: Contract
) -> GoldenPathError:
    code = exc.rcvd.code if exc.rcvd else None
    if code == _POLICY_VIOLATION:
        return AuthRefused(
            f"{where} closed the connection with code 1008 (policy violation) right after the "
            f"upgrade: credentials refused ({how})",
            close_code=code,
        )
    return ConnectionLost(
        f"{where} closed the connection (code {code}) before {contract.connection_established}"
    )


def _refused_upgrade(status: int, where: str, how: str) -> GoldenPathError:
    if status in (401, 403):
        return AuthRefused(
            f"{where} refused the credentials with HTTP {status} before the upgrade ({how})",
            status=status,
        )
    if status == 404:
        return ProtocolError(f"HTTP server at {where} answered 404 to the upgrade: wrong WebSocket path?")
    return ProtocolError(
        f"HTTP server at {where} answered {status} without upgrading: not a WebSocket endpoint"
    )


async def _abandon(ws: ClientConnection) -> None:
    # The connection is being given up on an error already raised; closing is best effort.
    try:
        await ws.close()
    except (OSError, ConnectionClosed):
        return


class Connection:
    """One open WebSocket of one user, with its reader task and its runs."""

    def __init__(
        self,
        ws: ClientConnection,
        *,
        where: str,
        transport: str,
        contract: Contract,
        established: Event,
        connect_ns: int,
        user_id: str,
        connection_id: str | None,
        timeout_s: float = 10.0,
        sla: Sla = PROTOCOL_SLA,
        established_raw: str = "",
    ) -> None:
        self.where = where
        self.transport = transport
        self.contract = contract
        self.established = established
        self.connect_ns = connect_ns
        self.user_id = user_id
        self.connection_id = connection_id
        self.timeout_s = timeout_s
        self.sla = sla
        self.stray: list[Event] = []
        self.clock: ClockOffset | None = None
        self._ws = ws
        self._established_raw = established_raw
        self._observers: list[Observer] = []
        self._frames_read = 0  # frames the reader got after connection_established
        self._by_message_id: dict[str, Run] = {}
        self._by_run_id: dict[str, Run] = {}
        self._unstarted: dict[str, Run] = {}  # sent, no frame yet: what an unnamed error can answer
        self._raw_unanswered = 0  # frames sent with send_raw that an unnamed error may still answer
        self._pings: deque[asyncio.Future[Event]] = deque()
        self._errors: asyncio.Queue[Event | GoldenPathError] = asyncio.Queue()
        self._failure: GoldenPathError | None = None
        self._closing = False
        self._ending = contract.ending_types
        self._reader = asyncio.create_task(self._read(), name=f"goldenpath reader {where}")

    @property
    def subprotocol(self) -> str | None:
        return self._ws.subprotocol

    @property
    def runs(self) -> list[Run]:
        """Every run sent on this connection, in send order."""
        return list(self._by_message_id.values())

    @property
    def failure(self) -> GoldenPathError | None:
        """Why the connection stopped reading (closed, garbage), None while it is healthy."""
        return self._failure

    def add_observer(self, observer: Observer) -> None:
        """Have ``observer(event, raw_text)`` called for every frame this connection receives.

        It gets connection_established at once, then every later frame in arrival order, pongs
        and frames of no run included, before the frame is routed; late frames read by
        ``drain()`` too. Observers must be added before anything was read (right after connect,
        before awaiting): one that missed frames could not vouch for them, so that is refused.
        An observer that raises stops the connection's reader (a bug, surfaced as ProtocolError).
        """
        if self._frames_read:
            raise RuntimeError(
                f"{self.where}: observer added after {self._frames_read} frame(s) were read; add it "
                "right after connecting (or pass observers= to connect)"
            )
        self._observers.append(observer)
        observer(self.established, self._established_raw)

    def run_deadline_s(self, run: Run) -> float:
        """Seconds from sending that ``run`` may take: the service levels for the tools it started."""
        started = sum(1 for event in run.events if event.type == self.contract.tool_executing)
        return run_deadline_s(self.sla, tools=max(1, started))

    async def send_message(
        self, text: str, *, thread_id: str | None = None, message_id: str | None = None,
        timeout_s: float | None = None,
    ) -> Run:  # fmt: skip
        """Send a user_message; the returned Run fills in as its events arrive."""
        message_id = message_id or str(uuid.uuid4())
        if message_id in self._by_message_id:
            raise ValueError(f"message_id {message_id} was already sent on this connection")
        payload = {"text": text, "thread_id": thread_id, "message_id": message_id}
        data = json.dumps({"type": self.contract.user_message, "payload": payload})
        run = Run(message_id, text, thread_id, 0, 0, where=self.where, allowance=self.run_deadline_s)
        # Registered before sending: the first event can arrive before send() returns.
        self._by_message_id[message_id] = run
        self._unstarted[message_id] = run
        run.sent_mono_ns = time.perf_counter_ns()
        run.sent_wall_ns = time.time_ns()
        await self._send(data, timeout_s=timeout_s)
        return run

    async def ask(
        self, text: str, *, thread_id: str | None = None, message_id: str | None = None,
        timeout_s: float | None = None,
    ) -> Run:  # fmt: skip
        """Send a user_message and wait for its run to end (see Run.wait).

        The wait is the run's service-level deadline; ``timeout_s``, when given, bounds the
        send and the wait instead (a test that expects an early end).
        """
        run = await self.send_message(text, thread_id=thread_id, message_id=message_id, timeout_s=timeout_s)
        return await run.wait(timeout_s)

    async def send_raw(self, data: str | bytes, *, timeout_s: float | None = None) -> None:
        """Send one frame as given (tests of malformed input use it directly).

        Its answer, if any, is unknown to the client, so until an error that names no message
        came back for it, such an error is not attributed to a waiting message (next_error).
        """
        self._raw_unanswered += 1
        await self._send(data, timeout_s=timeout_s)

    async def _send(self, data: str | bytes, *, timeout_s: float | None = None) -> None:
        if self._failure is not None:
            raise type(self._failure)(str(self._failure))
        timeout_s = self._timeout(timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                await self._ws.send(data)
        except TimeoutError:
            raise GoldenPathTimeout(f"sending to {self.where} blocked for {timeout_s:g}s") from None
        except ConnectionClosed as exc:
            raise ConnectionLost(
                f"{self.where} closed ({_close_text(exc)}) before a frame could be sent"
            ) from None

    async def ping(self, *, timeout_s: float | None = None) -> PingSample:
        """One ping/pong round trip, as a sample for the clock offset estimate."""
        timeout_s = self._timeout(timeout_s)
        answer: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pings.append(answer)
        sent_mono, sent_wall = time.perf_counter_ns(), time.time_ns()
        await self._send(json.dumps({"type": self.contract.ping}), timeout_s=timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                pong = await answer
        except TimeoutError:
            raise GoldenPathTimeout(
                f"no {self.contract.pong} within {timeout_s:g}s from {self.where}"
            ) from None
        stamp = pong.frame.get("timestamp")
        server = parse_server_stamp(stamp)
        if server is None:
            raise ProtocolError(
                f"{self.where}: {self.contract.pong} timestamp {str(stamp)[:40]!r} is not ISO 8601 in UTC "
                "(Z or +00:00)"
            )
        return PingSample(sent_mono, sent_wall, pong.mono_ns, server.ns, server.resolution_ns)

    async def sync_clock(self, samples: int = 8, *, timeout_s: float | None = None) -> ClockOffset:
        """Estimate the server clock's offset from sequential pings; kept in ``self.clock``."""
        taken = [await self.ping(timeout_s=timeout_s) for _ in range(samples)]
        offset = estimate_offset(taken)
        if offset is None:
            raise ProtocolError(f"{self.where}: no usable ping sample out of {samples}")
        self.clock = offset
        return offset

    async def next_error(self, *, timeout_s: float | None = None) -> Event:
        """The next error_message that names no message sent here (e.g. after malformed JSON)."""
        timeout_s = self._timeout(timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                item = await self._errors.get()
        except TimeoutError:
            raise GoldenPathTimeout(
                f"no {self.contract.error_message} within {timeout_s:g}s from {self.where}"
            ) from None
        if isinstance(item, GoldenPathError):
            self._errors.put_nowait(item)  # every later waiter learns the same
            raise type(item)(str(item))
        return item

    async def drain(self, deadline_s: float) -> None:
        """Close our side, and read until the server completes the close handshake.

        Every frame that arrives meanwhile (a run's late frames included) goes to the observers
        and to its run, as any frame does, so check runs after draining, not before. No sleep:
        the server's close frame is what says nothing more will come. Raises GoldenPathTimeout
        when the handshake is not completed within ``deadline_s`` (the socket is then dropped).
        A connection that had already ended (``failure`` set) has nothing left to read: no error.
        """
        ended = self._failure is not None
        if not await self._shutdown(deadline_s) and not ended:
            raise GoldenPathTimeout(
                f"{self.where} did not complete the close handshake within {deadline_s:g}s "
                f"({self._frames_read} frame(s) read on this connection)"
            )

    async def close(self) -> None:
        """Close, reading what arrives until the server's close (see drain), within the per-call timeout."""
        await self._shutdown(self.timeout_s)

    async def _shutdown(self, deadline_s: float) -> bool:
        """True when the server completed the close handshake within the deadline."""
        self._closing = True
        # websockets waits close_timeout for the server's close frame before dropping the
        # socket; the deadline is ours to choose, not the 2 s set for an ordinary close.
        self._ws.close_timeout = deadline_s
        try:
            async with asyncio.timeout(deadline_s):
                await self._ws.close()
                await self._reader  # ends once every frame received before the close was read
        except TimeoutError:
            self._reader.cancel()
            return False
        return self._ws.close_code not in (None, _ABNORMAL_CLOSURE)

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _timeout(self, timeout_s: float | None) -> float:
        return self.timeout_s if timeout_s is None else timeout_s

    async def _read(self) -> None:
        recv, route, where, observers = self._ws.recv, self._route, self.where, self._observers
        mono, wall = time.perf_counter_ns, time.time_ns
        try:
            while True:
                raw = await recv()
                received_mono, received_wall = mono(), wall()
                self._frames_read += 1
                event = Event(decode_frame(raw, where), received_mono, received_wall)
                if observers:
                    text = _text(raw)
                    for observer in observers:
                        observer(event, text)
                route(event)
        except ConnectionClosed as exc:
            if self._closing:
                self._fail(ConnectionLost(f"connection to {where} closed by the client"))
            else:
                self._fail(ConnectionLost(f"{where} closed the connection ({_close_text(exc)})"))
        except ProtocolError as exc:
            self._fail(exc)
            await _abandon(self._ws)
        except asyncio.CancelledError:
            self._fail(ConnectionLost(f"connection to {where} closed by the client"))
            raise
        except Exception as exc:
            # A bug here must not leave runs waiting for their timeouts: fail them, then surface it.
            self._fail(ProtocolError(f"{where}: reader stopped on {type(exc).__name__}: {exc}"))
            raise

    def _route(self, event: Event) -> None:
        frame = event.frame
        kind = frame.get("type")
        if kind == self.contract.pong:
            while self._pings:
                waiter = self._pings.popleft()
                if not waiter.done():  # a timed-out ping's late pong is consumed here
                    waiter.set_result(event)
                    return
            self.stray.append(event)
            return
        run: Run | None = None
        run_id = frame.get("run_id")
        if type(run_id) is str:
            run = self._by_run_id.get(run_id)
        if run is None:
            message_id = frame.get("message_id")
            if type(message_id) is str:
                run = self._by_message_id.get(message_id)
                if run is not None and run.run_id is None and type(run_id) is str:
                    run.run_id = run_id
                    self._by_run_id[run_id] = run
        if run is None and kind == self.contract.error_message:
            run = self._refused_run(frame)
            if run is None:
                self._errors.put_nowait(event)
                return
        if run is None:
            self.stray.append(event)
            return
        if not run.events:
            self._unstarted.pop(run.message_id, None)
        run.events.append(event)
        if kind in self._ending:
            run.finish(event)

    def _refused_run(self, frame: dict[str, Any]) -> Run | None:
        """The run an error_message naming no message of ours answers, when unambiguous.

        An error without message_id (allowed, 7.2) answers a refused frame; a refusal comes
        instead of the run's first frame (a run that fails later ends with agent_error). So it
        is the sole message still waiting for its first frame, unless a raw frame may be what
        it answers. Otherwise None: it waits in next_error(), matched to a raw frame.
        """
        named = frame.get("message_id")
        if isinstance(named, str) and named:
            return None  # it names a message, just not one sent here (raw frames carry their own)
        if self._raw_unanswered or len(self._unstarted) != 1:
            self._raw_unanswered = max(0, self._raw_unanswered - 1)
            return None
        return next(iter(self._unstarted.values()))

    def _fail(self, error: GoldenPathError) -> None:
        self._failure = error
        text = str(error)
        for run in self._by_message_id.values():
            if not run.finished:
                run.fail(type(error)(f"{text}, before the run of message {run.message_id} ended"))
        while self._pings:
            waiter = self._pings.popleft()
            if not waiter.done():
                waiter.set_exception(type(error)(f"{text}, before the {self.contract.pong}"))
        self._errors.put_nowait(error)


def _close_text(exc: ConnectionClosed) -> str:
    if exc.rcvd is None:
        return "no close frame"
    reason = f" {exc.rcvd.reason!r}" if exc.rcvd.reason else ""
    return f"code {exc.rcvd.code}{reason}"


class GoldenPathClient:
    """One target from a profile's settings: its auth service and its WebSocket, for any
    number of users, over one shared httpx client."""

    def __init__(self, settings: Settings, *, http: httpx.AsyncClient | None = None,
                 contract: Contract | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.contract = contract or Contract.from_settings(settings)
        self.timeout_s = settings.timeout_s
        self._own_http = http is None
        self.http = http or new_http_client()
        self.auth = AuthClient.from_settings(settings, self.http)

    async def connect(
        self, tokens: Tokens | str | None, *, transport: str | None = None,
        timeout_s: float | None = None, observers: Iterable[Observer] = (),
    ) -> Connection:  # fmt: skip
        """Connect as the tokens' user, by the given transport (the contract's first by default),
        with the profile's service levels bounding every run waited for."""
        token = tokens.access_token if isinstance(tokens, Tokens) else tokens
        user_id = tokens.user_id if isinstance(tokens, Tokens) else None
        timeout = self.timeout_s if timeout_s is None else timeout_s
        return await connect(
            self.settings.websocket_url, token,
            transport=transport or self.contract.auth_transports[0],
            timeout_s=timeout, contract=self.contract, user_id=user_id, sla=self.settings.sla,
            observers=observers,
        )  # fmt: skip

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> GoldenPathClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

