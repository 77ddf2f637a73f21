"""The load run itself: N simulated users on one asyncio loop, every frame checked as it arrives.

Each user gets its own account (the E2E bypass when a key is configured, else registration,
through goldenpath.client.auth) and its own socket(s), opened with ``websockets`` directly:
one reader task per socket does no more than take the receive time, decode the frame (orjson:
about 3x faster than the standard library on these frames), hand it to the user's
``UserLedger`` and, for the run in flight on that socket, keep the frame for the latencies.
The heavier ``Connection`` class (per-frame routing tables, error queues) is for tests that
poke at one socket; here the ledger is the router.

Each message carries a fresh canary in its text. A user sends its messages one after the
other, round-robin over its sockets, waits for each run to end (bounded by the run deadline
of the service levels, not by the per-call timeout), then thinks. Sockets stay open until
every user is done, so the whole crowd is connected together. At the end every socket is
closed by the close handshake, which is also the drain: frames the server sent before its
close answer are still read and checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from goldenpath.client.auth import AuthClient, Tokens
from goldenpath.client.rest import BackendApi
from goldenpath.client.websocket import credentials
from goldenpath.core.errors import AuthRefused, GoldenPathError, HttpStatusError
from goldenpath.core.masking import mask_text
from goldenpath.core.settings import Settings
from goldenpath.load.config import LoadPlan
from goldenpath.load.memory import MemoryWatch, memory_watch
from goldenpath.load.metrics import percentile
from goldenpath.load.target_state import ConnectionCount, back_to_baseline, open_connections
from goldenpath.load.transport import new_client
from goldenpath.protocol.clock import ClockOffset, PingSample, estimate_offset, parse_server_stamp
from goldenpath.protocol.contract import Contract
from goldenpath.protocol.events import Event, Run
from goldenpath.protocol.ledger import CanaryBook, Finding, UserLedger
from goldenpath.protocol.sla import SlaRecorder, first_event_ns, run_deadline_s

USER_PREFIX = "goldenpath-test-load"
# Logins, privacy reads and /health polls go through goldenpath.load.transport (h11 over
# asyncio streams, keep-alive): httpx's default transport (httpcore's quadratic pool scan,
# anyio's per-read wrappers) cost more CPU than every WebSocket frame of the run. At most this
# many in flight: the auth service is the bottleneck anyway, and a few kept-alive connections
# serve every user.
LOGIN_CONCURRENCY = 16
PINGS = 4
MEMORY_SAMPLE_S = 0.05
REMOTE_MEMORY_SAMPLE_S = 1.0
CLOSE_TIMEOUT_S = 5.0


@dataclass
class ErrorCount:
    """Failures of one kind: how many, and the first one's message."""

    count: int = 0
    first: str | None = None

    def add(self, message: str) -> None:
        self.count += 1
        if self.first is None:
            self.first = message[:300]


@dataclass
class UserRow:
    """One simulated user's share of the run."""

    index: int
    user_id: str | None = None
    runs: int = 0
    events: int = 0
    first_event_ms: list[float] = field(default_factory=list)

    def p95_ms(self) -> float | None:
        return percentile(self.first_event_ms, 95)


@dataclass
class LoadState:
    """Everything measured so far; read by the live view, and by the report at the end."""

    plan: LoadPlan
    started_mono: float = field(default_factory=time.monotonic)
    users_connected: int = 0
    sockets_open: int = 0
    runs_sent: int = 0
    runs_done: int = 0
    runs_timed_out: int = 0
    events: int = 0
    findings: list[Finding] = field(default_factory=list)
    login_errors: ErrorCount = field(default_factory=ErrorCount)
    connect_errors: ErrorCount = field(default_factory=ErrorCount)
    socket_errors: ErrorCount = field(default_factory=ErrorCount)
    bad_frames: ErrorCount = field(default_factory=ErrorCount)
    users: list[UserRow] = field(default_factory=list)
    first_event_by_seq: dict[int, float] = field(default_factory=dict)
    # (seconds since start, events of the run, first-event ms) per finished run: the report's
    # timeline of events per second and p95 over time.
    completions: list[tuple[float, int, float | None]] = field(default_factory=list)
    tool_result_by_seq: dict[int, float] = field(default_factory=dict)
    privacy_checked: int = 0
    privacy_breaches: list[str] = field(default_factory=list)
    connections: ConnectionCount | None = None
    duration_reached: bool = False
    interrupted: bool = False
    finished_mono: float | None = None

    def elapsed_s(self) -> float:
        return (self.finished_mono or time.monotonic()) - self.started_mono


class _Socket:
    """One WebSocket of one user, and the run in flight on it."""

    def __init__(self, user: _User, index: int, ws: ClientConnection, runner: LoadRunner) -> None:
        self.user = user
        self.index = index
        self.ws = ws
        self.runner = runner
        self.run: Run | None = None
        self.pings: list[tuple[asyncio.Future[Event], int, int]] = []
        self.lost = False
        self.reader = asyncio.create_task(self.read(), name=f"load reader u{user.row.index}s{index}")

    async def read(self) -> None:
        ledger = self.user.ledger
        assert ledger is not None
        loads, receive = orjson.loads, ledger.receive
        mono, wall = time.perf_counter_ns, time.time_ns
        state, row, pong = self.runner.state, self.user.row, self.runner.contract.pong
        try:
            async for raw in self.ws:
                received_mono, received_wall = mono(), wall()
                text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                try:
                    frame = loads(raw)
                except orjson.JSONDecodeError:
                    state.bad_frames.add(f"user {ledger.user_id}: a non-JSON frame {text[:80]!r}")
                    continue
                if type(frame) is not dict:
                    state.bad_frames.add(f"user {ledger.user_id}: JSON that is not an object {text[:80]!r}")
                    continue
                state.events += 1
                row.events += 1
                found = receive(self.index, text, frame)
                if found:
                    state.findings.extend(found)
                kind = frame.get("type")
                if kind == pong:
                    self._pong(Event(frame, received_mono, received_wall))
                    continue
                run = self.run
                if run is None:
                    continue
                if frame.get("message_id") == run.message_id or (
                        run.run_id is not None and frame.get("run_id") == run.run_id):
                    if run.run_id is None and isinstance(frame.get("run_id"), str):
                        run.run_id = frame["run_id"]
                    event = Event(frame, received_mono, received_wall)
                    run.events.append(event)
                    if ledger.ended(run.message_id):
                        run.finish(event)
                elif ledger.ended(run.message_id):
                    run.finish(Event(frame, received_mono, received_wall))  # answered by a replay
        except ConnectionClosed as exc:
            if not self.runner.closing:
                self.lost = True
                self.runner.state.socket_errors.add(
                    f"user {ledger.user_id} socket {self.index}: the server closed it ({exc})")
        finally:
            if self.run is not None and not self.run.finished:
                self.run.fail(GoldenPathError("the socket closed before the run ended"))

    def _pong(self, event: Event) -> None:
        while self.pings:
            waiter, _, _ = self.pings.pop(0)
            if not waiter.done():
                waiter.set_result(event)
                return

    async def ping(self, timeout_s: float) -> PingSample | None:
        waiter: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        sent_mono, sent_wall = time.perf_counter_ns(), time.time_ns()
        self.pings.append((waiter, sent_mono, sent_wall))
        await self.ws.send(orjson.dumps({"type": self.runner.contract.ping}).decode())
        try:
            async with asyncio.timeout(timeout_s):
                pong = await waiter
        except TimeoutError:
            return None
        stamp = parse_server_stamp(pong.frame.get("timestamp"))
        if stamp is None:
            return None
        return PingSample(sent_mono, sent_wall, pong.mono_ns, stamp.ns, stamp.resolution_ns)


@dataclass(eq=False)
class _User:
    row: UserRow
    tokens: Tokens | None = None
    ledger: UserLedger | None = None
    sockets: list[_Socket] = field(default_factory=list)
    clock: ClockOffset | None = None
    thread_id: str | None = None


class LoadRunner:
    """One load run: ``await run()`` returns when every user is done, or the duration is over."""

    def __init__(self, settings: Settings, plan: LoadPlan, *, recorder: SlaRecorder | None = None,
                 contract: Contract | None = None,
                 on_run_done: Callable[[LoadState], None] | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.plan = plan
        self.contract = contract or Contract.from_settings(settings)
        self.recorder = recorder or SlaRecorder(self.contract)
        self.state = LoadState(plan)
        self.book = CanaryBook()
        self.closing = False
        self.memory: MemoryWatch | None = None
        self.cpu_s: float | None = None
        self._users: list[_User] = []
        self._seq = 0
        self._stop = asyncio.Event()
        self._connected = asyncio.Event()
        self._tools = max(1, _int(settings.get("REFSTACK_AGENT_TOOLS")) or 1)
        self._run_deadline_s = run_deadline_s(settings.sla, self._tools)
        self._on_run_done = on_run_done
        self._ready_count = 0
        self._failed_users = 0
        self._start = self._end = 0.0
        self._ws_options = ws_options(settings.websocket_url)

    def stop(self) -> None:
        """Stop sending (Ctrl-C): runs in flight are abandoned, every socket is then closed."""
        self.state.interrupted = True
        self._stop.set()
        self._connected.set()

    async def run(self) -> LoadState:
        raise_fd_limit()
        cpu_before = _cpu_s()
        http = new_client(max_connections=LOGIN_CONCURRENCY)
        state = self.state
        try:
            baseline = await open_connections(http, self.settings.backend_url, self.settings.timeout_s)
            self.memory = memory_watch(self.settings, self.plan.pid, http)
            sampler = asyncio.create_task(self._sample_memory(), name="load memory sampler")
            try:
                await self._crowd(http)
            finally:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            if self.memory.measured:
                await self.memory.sample(state.runs_done)
            await self._close_all()
            self._finish_ledgers()
            if not state.interrupted:
                await self._check_privacy(http)
            state.connections = await back_to_baseline(http, self.settings.backend_url, baseline,
                                                       self.settings.timeout_s)  # fmt: skip
        finally:
            await self._close_all()
            await http.aclose()
            state.finished_mono = time.monotonic()
            self.cpu_s = _cpu_s() - cpu_before
        return state

    # ------------------------------------------------------------------ the crowd

    async def _crowd(self, http: httpx.AsyncClient) -> None:
        auth = AuthClient.from_settings(self.settings, http)
        logins = asyncio.Semaphore(LOGIN_CONCURRENCY)
        self._users = [_User(UserRow(i)) for i in range(self.plan.users)]
        self.state.users = [u.row for u in self._users]
        loop = asyncio.get_running_loop()
        self._start = loop.time()
        self._end = self._start + self.plan.duration_s
        tasks = [asyncio.create_task(self._user(u, auth, logins), name=f"load user {u.row.index}")
                 for u in self._users]  # fmt: skip
        stop: asyncio.Future[Any] = asyncio.create_task(self._stop.wait(), name="load stop")
        everyone: asyncio.Future[Any] = asyncio.gather(*tasks, return_exceptions=True)
        # Every user is bounded by the duration and the run deadline; this is the backstop.
        hard_end = self.plan.duration_s + self._run_deadline_s + self.settings.timeout_s * 4
        try:
            _, pending = await asyncio.wait({everyone, stop}, timeout=hard_end,
                                            return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            if everyone in pending and stop in pending:
                self.state.socket_errors.add(f"the run was not over {hard_end:g}s after it started: stopped")
        finally:
            for task in tasks:
                task.cancel()
            stop.cancel()
            results = await everyone
        for outcome in results:
            if isinstance(outcome, Exception):
                self.state.socket_errors.add(f"a user stopped on {type(outcome).__name__}: {outcome}")

    async def _user(self, user: _User, auth: AuthClient, logins: asyncio.Semaphore) -> None:
        plan, state = self.plan, self.state
        if plan.ramp_per_s > 0:
            start_at = self._start + user.row.index / plan.ramp_per_s
            if await self._stopped_within(start_at - asyncio.get_running_loop().time()):
                self._mark_ready(failed=True)
                return
        if not await self._join(user, auth, logins):
            self._mark_ready(failed=True)
            return
        state.users_connected += 1
        self._mark_ready(failed=False)
        if plan.together:
            await self._connected.wait()
        for number in range(plan.messages):
            if self._stop.is_set():
                return
            if asyncio.get_running_loop().time() >= self._end:
                state.duration_reached = True
                return
            socket = user.sockets[number % len(user.sockets)]
            if socket.lost:
                return
            if not await self._one_run(user, socket, number):
                return
            if plan.think_s > 0 and number + 1 < plan.messages and await self._stopped_within(plan.think_s):
                return

    def _mark_ready(self, *, failed: bool) -> None:
        # A user that could not connect counts for the barrier too, or the rest would wait forever.
        self._failed_users += failed
        self._ready_count += 1
        if self._ready_count >= self.plan.users:
            self._connected.set()

    async def _stopped_within(self, seconds: float) -> bool:
        """Pace (ramp, think time): wait that long unless stopped first; True when stopped."""
        if seconds <= 0:
            return self._stop.is_set()
        try:
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        except TimeoutError:
            return False
        return True

    async def _join(self, user: _User, auth: AuthClient, logins: asyncio.Semaphore) -> bool:
        email = f"{USER_PREFIX}-{secrets.token_hex(6)}@goldenpath.test"
        for attempt in (1, 2):
            try:
                async with logins:
                    user.tokens = await auth.new_test_user(email)
                break
            except (AuthRefused, HttpStatusError) as exc:
                self.state.login_errors.add(str(exc))
                return False
            except GoldenPathError as exc:
                # One retry: a pooled keep-alive connection the server closed just as it was
                # reused (its idle timeout) fails the request without it ever being handled.
                if attempt == 2:
                    self.state.login_errors.add(str(exc))
                    return False
        for index in range(self.plan.sockets_per_user):
            if not await self._open(user, index):
                return False
        first = user.sockets[0]
        samples = [s for s in [await first.ping(self.settings.timeout_s) for _ in range(PINGS)] if s]
        user.clock = estimate_offset(samples)
        return True

    async def _open(self, user: _User, index: int) -> bool:
        tokens = user.tokens
        assert tokens is not None
        token = tokens.access_token
        transport = self.contract.auth_transports[0]
        url, headers, subprotocols = credentials(self.settings.websocket_url, token, transport, self.contract)
        timeout_s = self.settings.sla.ws_connect_ms / 1000 + self.settings.timeout_s
        started = time.perf_counter_ns()
        try:
            async with asyncio.timeout(timeout_s):
                ws = await ws_connect(url, additional_headers=headers, subprotocols=subprotocols or None,
                                      compression=None, max_size=2**20, ping_interval=None,
                                      open_timeout=timeout_s, close_timeout=2.0,
                                      **self._ws_options)  # fmt: skip
                raw = await ws.recv()
        except (TimeoutError, OSError, WebSocketException, ValueError) as exc:
            reason = mask_text(str(exc), [token]) or type(exc).__name__
            self.state.connect_errors.add(f"{type(exc).__name__}: {reason}")
            return False
        connect_ns = time.perf_counter_ns() - started
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            frame = None
        data = frame.get("data") if isinstance(frame, dict) else None
        owner = data.get("user_id") if isinstance(data, dict) else None
        if not isinstance(frame, dict) or frame.get("type") != self.contract.connection_established or (
                not isinstance(owner, str)):
            self.state.connect_errors.add(f"first frame is not {self.contract.connection_established} "
                                          f"with data.user_id: {str(raw)[:80]!r}")  # fmt: skip
            await ws.close()
            return False
        if user.ledger is None:
            user.ledger = UserLedger(owner, self.book, self.contract)
            user.row.user_id = owner
        elif owner != user.ledger.user_id:
            self.state.connect_errors.add(f"socket {index} of user {user.ledger.user_id} was established "
                                          f"for user {owner}")  # fmt: skip
            await ws.close()
            return False
        self.recorder.add_connection_time(connect_ns)
        user.sockets.append(_Socket(user, index, ws, self))
        self.state.sockets_open += 1
        return True

    async def _one_run(self, user: _User, socket: _Socket, number: int) -> bool:
        ledger = user.ledger
        assert ledger is not None
        state = self.state
        canary = ledger.canary()
        message_id = str(uuid.uuid4())
        text = f"goldenpath load {canary}: user {user.row.index} message {number + 1}"
        thread_id = user.thread_id
        payload = {"text": text, "thread_id": thread_id, "message_id": message_id}
        data = orjson.dumps({"type": self.contract.user_message, "payload": payload}).decode()
        self._seq += 1
        seq = self._seq
        ledger.sent(message_id, socket=socket.index, thread_id=thread_id)
        run = Run(message_id, text, thread_id, time.perf_counter_ns(), time.time_ns(),
                  where=f"socket {socket.index}")
        socket.run = run
        state.runs_sent += 1
        try:
            await socket.ws.send(data)
            await run.wait(self._run_deadline_s)
        except ConnectionClosed:
            socket.lost = True
            state.socket_errors.add(f"user {ledger.user_id}: the socket closed while sending")
            return False
        except TimeoutError:
            state.runs_timed_out += 1
            return True
        except GoldenPathError:
            return False  # the socket broke; counted by its reader
        finally:
            socket.run = None
        self._record(user, run, seq)
        return True

    def _record(self, user: _User, run: Run, seq: int) -> None:
        state = self.state
        state.runs_done += 1
        user.row.runs += 1
        self.recorder.add_run(run, user.clock)
        first = first_event_ns(run, self.contract)
        if first is not None:
            state.first_event_by_seq[seq] = first / 1e6
            user.row.first_event_ms.append(first / 1e6)
        state.completions.append((time.monotonic() - state.started_mono, len(run.events),
                                  None if first is None else first / 1e6))
        tools = _tool_ms(run, self.contract)
        if tools:
            state.tool_result_by_seq[seq] = max(tools)
        if user.thread_id is None:
            thread_id = run.terminal.frame.get("thread_id") if run.terminal else None
            user.thread_id = thread_id if isinstance(thread_id, str) and thread_id else None
        if self._on_run_done is not None:
            self._on_run_done(state)

    # ------------------------------------------------------------------ memory, the end, privacy

    async def _sample_memory(self) -> None:
        watch = self.memory
        if watch is None or not watch.measured:
            return
        interval = MEMORY_SAMPLE_S if watch.local else REMOTE_MEMORY_SAMPLE_S
        # Sampled only once the whole crowd is connected: each connection and session costs the
        # server memory too, and while users ramp up that growth would be fitted as a per-run leak.
        await self._connected.wait()
        while True:
            await watch.sample(self.state.runs_done)
            await asyncio.sleep(interval)

    async def _close_all(self) -> None:
        """Close every socket by the close handshake and wait for its reader: the drain."""
        self.closing = True
        sockets = [s for u in self._users for s in u.sockets]
        if not sockets:
            return

        async def close(socket: _Socket) -> None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await socket.ws.close()
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await socket.reader
            except (TimeoutError, asyncio.CancelledError):
                socket.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await socket.reader

        await asyncio.gather(*(close(s) for s in sockets))
        for user in self._users:
            user.sockets.clear()
        self.state.sockets_open = 0

    def _finish_ledgers(self) -> None:
        for user in self._users:
            if user.ledger is None:
                continue
            lost = frozenset(range(self.plan.sockets_per_user)) if self.state.interrupted else frozenset()
            self.state.findings.extend(user.ledger.finish(lost_sockets=lost))

    async def _check_privacy(self, http: httpx.AsyncClient) -> None:
        """After the run, each user reads the next user's thread: it must be refused with 404."""
        api = BackendApi(self.settings.backend_url, http, self.settings.timeout_s)
        owners = [u for u in self._users if u.thread_id and u.tokens]
        if len(owners) < 2:
            return
        limit = asyncio.Semaphore(LOGIN_CONCURRENCY)

        async def trespass(reader: _User, owner: _User) -> None:
            assert reader.tokens is not None
            async with limit:
                try:
                    status, _ = await api.read(f"/api/threads/{owner.thread_id}/messages",
                                               reader.tokens.access_token)  # fmt: skip
                except GoldenPathError as exc:
                    self.state.socket_errors.add(f"reading another user's thread: {exc}")
                    return
            self.state.privacy_checked += 1
            if status != 404:
                self.state.privacy_breaches.append(
                    f"user {reader.row.user_id} reading user {owner.row.user_id}'s thread {owner.thread_id} "
                    f"got HTTP {status}, expected 404")  # fmt: skip

        pairs = [(owners[i], owners[(i + 1) % len(owners)]) for i in range(len(owners))]
        await asyncio.gather(*(trespass(reader, owner) for reader, owner in pairs))


def _tool_ms(run: Run, contract: Contract) -> list[float]:
    started: dict[str, int] = {}
    durations = []
    for event in run.events:
        kind, name = event.frame.get("type"), event.frame.get(contract.tool_key)
        if not isinstance(name, str):
            continue
        if kind == contract.tool_executing:
            started.setdefault(name, event.mono_ns)
        elif kind == contract.tool_completed and name in started:
            durations.append((event.mono_ns - started.pop(name)) / 1e6)
    return durations


def ws_options(url: str) -> dict[str, Any]:
    """The proxy for the target, resolved once: websockets (15+) otherwise reads the proxy
    environment again for every connection it opens (a scan of os.environ each time, a tenth
    of the runner's CPU at 200 users). The same answer it would find, so the same route."""
    try:
        from websockets.proxy import get_proxy
        from websockets.uri import parse_uri
    except ImportError:  # websockets < 15 has no proxy support: nothing to resolve
        return {}
    try:
        return {"proxy": get_proxy(parse_uri(url))}
    except (ValueError, WebSocketException):
        return {}  # a malformed URL: connect reports it, as before


def _int(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() else None


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard one: 1,000 users need about 2,000 descriptors
    (a socket each, plus the login connections), over the usual soft limit of 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)

