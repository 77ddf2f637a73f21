"""``GoldenPathUser``: a Locust user that walks the golden path and checks every frame.

Each user logs in (E2E bypass or password, as the profile allows), opens one WebSocket with
the profile's first auth transport, estimates the server clock's offset with pings, and
sends ``messages`` user messages, each carrying a canary, waiting for each run to end within
its service-level deadline. A reader greenlet hands every frame to the user's
``UserLedger`` (goldenpath.protocol.ledger, the load runner's own checks) as it arrives, also
while the user waits between messages and after its last one: a leak into an idle user is
still seen.

Locust sees: a request event per metric sample (``WS`` ``ws_connect``, ``first_event``,
``tool_result``, ``event_delivery``; the auth calls as Locust's HttpSession records them),
and a failure per finding, named by
its code, with the evidence (users, run, event type, first 200 characters of the frame) as
the error. So stats, the HTML report and ``--exit-code-on-error`` work unchanged.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gevent
import websocket
from gevent.event import Event as GeventEvent
from gevent.queue import Empty, Queue
from locust import User, task
from locust.clients import HttpSession
from locust.exception import StopUser

from goldenpath.core.errors import ConnectionLost, GoldenPathError, ProtocolError
from goldenpath.protocol.clock import ClockOffset, PingSample, estimate_offset, parse_server_stamp
from goldenpath.protocol.events import Event
from goldenpath.protocol.ledger import Finding, UserLedger
from goldenpath.protocol.sla import delivery_samples, run_margin_ms, tool_durations_ns

from .plugin import Process, messages_per_user, process_of, think_time
from .wire import decode, drop, login, open_socket, text_of

SOCKET = 0  # the ledger's number for this user's one socket
_NS_PER_MS = 1_000_000


@dataclass
class _Pending:
    """One message in flight, and what its run's frames measured so far."""

    message_id: str
    sent_mono_ns: int
    events: list[Event] = field(default_factory=list)
    tools_started: int = 0
    timed_out: bool = False  # its deadline passed: judged at the end with what did arrive
    done: GeventEvent = field(default_factory=GeventEvent)


class GoldenPathUser(User):
    """Subclass it in a locustfile; every knob has a default from the goldenpath profile."""

    abstract = True
    #: Messages per user (0: until the run stops). ``--gp-messages`` overrides it; None: the
    #: profile's MULTI_USER_MESSAGES.
    messages: ClassVar[int | None] = None
    #: Auth transport (subprotocol, header, query); None: the first the profile accepts.
    transport: ClassVar[str | None] = None
    #: The message text; each message gets its own canary appended.
    text: ClassVar[str] = "goldenpath under Locust: plan a trip"
    #: Pings for the clock offset that delivery latency is measured against.
    pings: ClassVar[int] = 3

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._process: Process = process_of(environment)
        self._ws: websocket.WebSocket | None = None
        self._reader: gevent.Greenlet | None = None
        self._ledger: UserLedger | None = None
        self._pending: dict[str, _Pending] = {}
        self._pongs: Queue[tuple[int, Mapping[str, Any]]] = Queue()
        self._clock: ClockOffset | None = None
        self._sent = 0
        self._quota = 0
        self._done = False  # counted in users_done (sent everything, or gave up)
        self._lost: GoldenPathError | None = None
        self._failed_runs: set[str] = set()

    # ------------------------------------------------------------------ Locust's hooks

    def wait_time(self) -> float:
        """``--gp-think`` when given, else 0.5 to 1.5 s; a subclass's ``wait_time`` replaces it."""
        think = think_time(self.environment)
        return think if think is not None else random.uniform(0.5, 1.5)  # noqa: S311 - pacing, not security

    def on_start(self) -> None:
        process = self._process
        settings = process.settings
        process.evidence.counts["users"] += 1
        self._quota = messages_per_user(self.environment, process, self.messages)
        try:
            auth = HttpSession(settings.auth_service_url, self.environment.events.request, self)
            who = login(auth, settings)  # a refusal is already a failure in Locust's stats
        except GoldenPathError as exc:
            self._give_up("login", exc, fire=False)
            raise StopUser() from None
        try:
            transport = self.transport or process.contract.auth_transports[0]
            opened = open_socket(settings.websocket_url, who.access_token, transport=transport,
                                 contract=process.contract, timeout_s=settings.timeout_s)  # fmt: skip
        except GoldenPathError as exc:
            self._give_up("ws_connect", exc, fire=True)
            raise StopUser() from None
        self._ws = opened.ws
        self._fire("WS", "ws_connect", opened.connect_ns, len(opened.raw))
        process.evidence.record("ws_connect", opened.connect_ns)
        self._ledger = UserLedger(who.user_id, process.canaries, process.contract)
        self._ledger.receive(SOCKET, opened.raw, opened.established)
        self._reader = gevent.spawn(self._read)
        self._clock = self._sync_clock()

    @task
    def golden_path(self) -> None:
        if self._done or self._lost is not None:
            return  # listening only: frames still reach the ledger through the reader
        if self._quota and self._sent >= self._quota:
            self._finish_sending()
            return
        self._send_and_wait()

    def on_stop(self) -> None:
        in_flight = any(not p.done.is_set() and not p.timed_out for p in self._pending.values())
        if self._reader is not None:
            self._reader.kill(block=True)
        if self._ws is not None:
            drop(self._ws)  # no closing handshake to wait for: the run is over
        ledger = self._ledger
        if ledger is not None:
            # A run still inside its deadline when Locust stopped us was cut short, not broken.
            lost = frozenset({SOCKET}) if in_flight or self._lost is not None else frozenset()
            self._process.evidence.counts["cut_short"] += sum(
                1 for p in self._pending.values() if not p.done.is_set() and not p.timed_out)
            for finding in ledger.finish(lost_sockets=lost):
                self._violation(finding, len(finding.frame))
            self._process.evidence.counts["runs"] += ledger.stats.runs_checked
            self._process.evidence.counts["failed_runs"] += len(self._failed_runs)
        self._finish_sending()

    # ------------------------------------------------------------------ one message

    def _send_and_wait(self) -> None:
        ledger, ws = self._ledger, self._ws
        assert ledger is not None  # on_start set them, or stopped the user
        assert ws is not None
        message_id = str(uuid.uuid4())
        text = f"{self.text} {ledger.canary()}"
        contract = self._process.contract
        frame = {"type": contract.user_message,
                 "payload": {"text": text, "thread_id": None, "message_id": message_id}}  # fmt: skip
        pending = _Pending(message_id, time.perf_counter_ns())
        # Known before sending: the first event can arrive before send() returns.
        ledger.sent(message_id, socket=SOCKET, thread_id=None)
        self._pending[message_id] = pending
        self._sent += 1
        try:
            ws.send(_json(frame))
        except (websocket.WebSocketException, OSError) as exc:
            self._lose(ConnectionLost(f"sending a message failed: {type(exc).__name__}"))
            return
        self._wait(pending)

    def _wait(self, pending: _Pending) -> None:
        # The run may take what its service levels allow: first event + margin + each tool
        # started so far; the deadline grows as tools start (goldenpath.protocol.sla).
        sla = self._process.settings.sla
        while not pending.done.is_set() and self._lost is None:
            tools = max(1, pending.tools_started)
            allowed_ms = sla.first_event_ms + run_margin_ms(sla) + tools * sla.tool_result_ms
            remaining_s = (pending.sent_mono_ns + allowed_ms * _NS_PER_MS - time.perf_counter_ns()) / 1e9
            if remaining_s <= 0:
                # Judged by the ledger at the end (finish), with what did arrive; the user stops
                # sending, so no later run is mistaken for this one.
                pending.timed_out = True
                self._process.evidence.counts["timed_out"] += 1
                self._finish_sending()
                return
            pending.done.wait(remaining_s)

    # ------------------------------------------------------------------ what arrives

    def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        ws.settimeout(self._process.settings.timeout_s)
        while True:
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue  # an idle socket is fine; the timeout only keeps every call bounded
            except (websocket.WebSocketException, OSError) as exc:
                self._lose(ConnectionLost(f"the socket broke: {type(exc).__name__}: {str(exc)[:80]}"))
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self._lose(ConnectionLost("the server closed the socket"))
                return
            self._on_frame(text_of(data), time.perf_counter_ns(), time.time_ns())

    def _on_frame(self, raw: str, mono_ns: int, wall_ns: int) -> None:
        ledger = self._ledger
        assert ledger is not None
        frame = decode(raw)
        kind = frame.get("type")
        contract = self._process.contract
        self._process.evidence.counts["events"] += 1
        if kind == contract.pong:
            self._pongs.put((mono_ns, frame))
        for finding in ledger.receive(SOCKET, raw, frame):
            self._violation(finding, len(raw))
        message_id = frame.get("message_id")
        pending = self._pending.get(message_id) if isinstance(message_id, str) else None
        if pending is None or pending.done.is_set() or frame.get("user_id") != ledger.user_id:
            return
        event = Event(frame, mono_ns, wall_ns)
        pending.events.append(event)
        if kind == contract.agent_started and not any(e.type == kind for e in pending.events[:-1]):
            self._sample("first_event", mono_ns - pending.sent_mono_ns, len(raw))
        elif kind == contract.tool_executing:
            pending.tools_started += 1
        if ledger.ended(pending.message_id):
            self._run_ended(pending)

    def _run_ended(self, pending: _Pending) -> None:
        for duration in tool_durations_ns(pending.events, self._process.contract):
            self._sample("tool_result", duration)
        if self._clock is not None:
            for latency, resolution in delivery_samples(pending.events, self._clock):
                self._sample("event_delivery", latency)
                self._process.evidence.use_clock(self._clock, resolution)
        pending.events = []
        pending.done.set()
        del self._pending[pending.message_id]

    def _sync_clock(self) -> ClockOffset | None:
        ws = self._ws
        assert ws is not None
        ping = _json({"type": self._process.contract.ping})
        samples: list[PingSample] = []
        for _ in range(self.pings):
            sent_mono, sent_wall = time.perf_counter_ns(), time.time_ns()
            try:
                ws.send(ping)
                recv_mono, pong = self._pongs.get(timeout=self._process.settings.timeout_s)
            except (Empty, websocket.WebSocketException, OSError):
                break  # delivery then goes unmeasured, which the SLA gate reports
            stamp = parse_server_stamp(pong.get("timestamp"))
            if stamp is not None:
                samples.append(PingSample(sent_mono, sent_wall, recv_mono, stamp.ns, stamp.resolution_ns))
        return estimate_offset(samples)

    # ------------------------------------------------------------------ reporting to Locust

    def _sample(self, metric: str, value_ns: int, length: int = 0) -> None:
        self._process.evidence.record(metric, value_ns)
        self._fire("WS", metric, value_ns, length)

    def _fire(self, kind: str, name: str, value_ns: int, length: int = 0,
              exception: BaseException | None = None) -> None:  # fmt: skip
        self.environment.events.request.fire(
            request_type=kind, name=name, response_time=max(0, value_ns) / _NS_PER_MS,
            response_length=length, exception=exception, context={},
        )  # fmt: skip

    def _violation(self, finding: Finding, length: int) -> None:
        kept = self._process.evidence.add(finding)
        if finding.run_id:
            self._failed_runs.add(finding.run_id)
        # Locust groups failures by their text: past the first findings the evidence is left
        # out, so a leak in every run does not grow the failure table without bound.
        detail = f"{finding.message} [{finding.evidence()}]" if kept else finding.message
        self._fire("WS", finding.code, 0, length, ProtocolError(f"{finding.code}: {detail}"))

    def _give_up(self, step: str, exc: GoldenPathError, *, fire: bool) -> None:
        self._process.evidence.error(f"{step}: {exc}")
        if fire:
            self._fire("WS", step, 0, 0, exc)
        self._finish_sending()

    def _lose(self, exc: GoldenPathError) -> None:
        if self._lost is not None:
            return
        self._lost = exc
        if not self.environment.runner or self.environment.runner.state not in ("stopping", "stopped"):
            self._process.evidence.error(f"socket: {exc}")
            self._fire("WS", "socket", 0, 0, exc)
        for pending in list(self._pending.values()):
            pending.done.set()
        self._finish_sending()

    def _finish_sending(self) -> None:
        if not self._done:
            self._done = True
            self._process.evidence.counts["users_done"] += 1


def _json(frame: Mapping[str, Any]) -> str:
    return json.dumps(frame)
