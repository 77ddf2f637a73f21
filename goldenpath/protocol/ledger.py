"""Every frame of one user, checked as it arrives, on every socket of that user.

Pure, no I/O: the caller reads the sockets and hands each frame over (raw text and its
decoded object). One ``UserLedger`` per simulated user (1..K sockets, numbered by the
caller; messages sent one after the other or several at once), one ``CanaryBook`` shared by
all users of a run. A frame is checked for:

- another user's text: a canary (``gpc-`` and 16 hex digits, placed in every message
  the runner sends) that is not this user's, anywhere in the raw frame (``FOREIGN_CANARY``);
  one regex scan of the raw text, so O(frame);
- another user's event: a ``user_id`` that is not this user's, or a run of a message this
  user never sent (``FOREIGN_EVENT``);
- a replay of an earlier run: ``agent_started`` again for a run that already ended on
  this socket, or a new run under the ``message_id`` of an earlier one (``STALE_REPLAY``);
- the same frame twice on one socket (``DUPLICATE_DELIVERY``; equal raw text);
- a frame of a run after that run's ending frame on the same socket
  (``EVENT_AFTER_COMPLETION``; each socket is checked against its own copy of the run,
  since copies on two sockets are not ordered with each other);
- the run's contract: when a run's ending frame arrives on a socket, the frames that
  socket got for it go through ``check_events``; ``finish()`` checks the runs that never ended.

Each finding carries its evidence: the users, the run, the event type and the first 200
characters of the frame.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from goldenpath.protocol.contract import PROTOCOL, Code, Contract, Violation, check_events
from goldenpath.protocol.events import Event

CANARY = re.compile(r"gpc-[0-9a-f]{16}")
EVIDENCE_CHARS = 200
_NONE: tuple[Finding, ...] = ()


def new_canary() -> str:
    """A unique marker to put in a message's text: 64 random bits, recognisable by its prefix."""
    return f"gpc-{secrets.token_hex(8)}"


@dataclass(frozen=True, slots=True)
class Finding:
    """One violation with its evidence."""

    code: str
    message: str
    user_id: str
    run_id: str | None = None
    event_type: str | None = None
    frame: str = ""  # the first EVIDENCE_CHARS characters of the raw frame
    other_user: str | None = None
    socket: int | None = None

    def violation(self) -> Violation:
        """As the contract module's Violation, the evidence folded into its message."""
        return Violation(self.code, self.run_id, f"{self.message} [{self.evidence()}]")

    def evidence(self) -> str:
        parts = [f"user {self.user_id}"]
        if self.other_user:
            parts.append(f"other user {self.other_user}")
        if self.socket is not None:
            parts.append(f"socket {self.socket}")
        parts.append(f"run {self.run_id or '?'}")
        parts.append(f"event {self.event_type or '?'}")
        if self.frame:
            parts.append(f"frame {self.frame!r}")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "user_id": self.user_id,
                "other_user": self.other_user, "socket": self.socket, "run_id": self.run_id,
                "event_type": self.event_type, "frame": self.frame}  # fmt: skip


class CanaryBook:
    """Which user each canary belongs to; shared by all the ledgers of a run."""

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}

    def issue(self, owner: str) -> str:
        canary = new_canary()
        self._owner[canary] = owner
        return canary

    def register(self, canary: str, owner: str) -> None:
        if CANARY.fullmatch(canary) is None:
            raise ValueError(f"{canary!r} is not a canary (gpc- and 16 hex digits)")
        self._owner[canary] = owner

    def owner(self, canary: str) -> str | None:
        return self._owner.get(canary)

    def __len__(self) -> int:
        return len(self._owner)


@dataclass(slots=True)
class _Stream:
    """What one socket received of one run."""

    frames: list[Mapping[str, Any]] = field(default_factory=list)
    ended: bool = False
    replaying: bool = False  # a replay of this ended run is coming in, flagged once at its start


@dataclass(slots=True)
class _Message:
    """One message the user sent, and its run once the server named it."""

    message_id: str
    thread_id: str | None
    socket: int
    run_id: str | None = None
    streams: dict[int, _Stream] = field(default_factory=dict)
    checked: bool = False  # the sending socket's stream went through the contract


@dataclass
class LedgerStats:
    frames: int = 0
    run_events: int = 0
    runs_checked: int = 0
    replayed_frames: int = 0


class UserLedger:
    """One user's sockets, messages and runs; ``receive`` checks each frame as it arrives."""

    def __init__(self, user_id: str, canaries: CanaryBook, contract: Contract = PROTOCOL) -> None:
        self.user_id = user_id
        self.canaries = canaries
        self.contract = contract
        self.findings: list[Finding] = []
        self.stats = LedgerStats()
        self.unrouted_errors: list[Mapping[str, Any]] = []  # error_message naming no message of ours
        self._by_message: dict[str, _Message] = {}
        self._by_run: dict[str, _Message] = {}
        self._seen: dict[int, set[int]] = {}  # socket -> hashes of the raw frames it received
        self._own_canaries: set[str] = set()
        c = contract
        self._run_types = c.run_event_types
        self._ending = c.ending_types
        self._quiet = frozenset((c.pong, c.connection_established))

    # ------------------------------------------------------------------ what the user did

    def canary(self) -> str:
        """A new canary of this user's, for the next message's text."""
        canary = self.canaries.issue(self.user_id)
        self._own_canaries.add(canary)
        return canary

    def sent(self, message_id: str, *, socket: int = 0, thread_id: str | None = None) -> None:
        """The user sent a message with this id on this socket (before its first frame can come)."""
        if message_id in self._by_message:
            raise ValueError(f"message_id {message_id} was already sent by user {self.user_id}")
        self._by_message[message_id] = _Message(message_id, thread_id, socket)

    def run_of(self, message_id: str) -> str | None:
        message = self._by_message.get(message_id)
        return message.run_id if message else None

    def ended(self, message_id: str) -> bool:
        """True once the message's run ended on the socket that sent it."""
        message = self._by_message.get(message_id)
        stream = message.streams.get(message.socket) if message else None
        return stream is not None and stream.ended

    # ------------------------------------------------------------------ what arrived

    def receive(self, socket: int, raw: str, frame: Mapping[str, Any]) -> tuple[Finding, ...] | list[Finding]:
        """Check one frame that arrived on ``socket``; the findings are also kept in ``findings``."""
        self.stats.frames += 1
        found: list[Finding] | None = None
        for canary in CANARY.findall(raw):
            if canary in self._own_canaries:
                continue
            owner = self.canaries.owner(canary)
            found = found or []
            found.append(self._finding(
                Code.FOREIGN_CANARY, socket, raw, frame,
                f"another user's message text (canary {canary}) in a frame on this user's socket",
                other=owner or "unknown (a canary this run did not issue)"))
        kind = frame.get("type")
        if kind in self._quiet:
            return self._keep(found)
        owner = frame.get("user_id")
        if isinstance(owner, str) and owner and owner != self.user_id:
            found = found or []
            found.append(self._finding(Code.FOREIGN_EVENT, socket, raw, frame,
                                       f"a frame for user {owner} on this user's socket", other=owner))
            return self._keep(found)
        if kind not in self._run_types:
            found = found or []
            found.append(self._finding(Code.FOREIGN_EVENT, socket, raw, frame,
                                       f"a frame of type {str(kind)[:40]!r}, which is not an event of a run"))
            return self._keep(found)
        more = self._route(socket, raw, frame, kind)
        if more:
            found = (found or []) + more
        return self._keep(found)

    def observer(self, socket: int, on_finding: Callable[[], None] | None = None,
                 ) -> Callable[[Event, str], None]:
        """A connection observer (goldenpath.client.websocket) that hands this user's frames
        on ``socket`` to ``receive``; ``on_finding`` is told when one breaks a rule."""
        def observe(event: Event, raw: str) -> None:
            if self.receive(socket, raw, event.frame) and on_finding is not None:
                on_finding()

        return observe

    def finish(self, *, lost_sockets: frozenset[int] = frozenset()) -> list[Finding]:
        """Check every run whose ending never came (on sockets that did not break); the findings
        are also kept. Call once, after the sockets were drained."""
        found: list[Finding] = []
        for message in self._by_message.values():
            for socket, stream in message.streams.items():
                if not stream.ended and socket not in lost_sockets:
                    found += self._check(message, socket, stream)
            if message.socket not in message.streams and message.socket not in lost_sockets:
                found += self._check(message, message.socket, _Stream())
        self.findings += found
        return found

    # ------------------------------------------------------------------ inside

    def _keep(self, found: list[Finding] | None) -> tuple[Finding, ...] | list[Finding]:
        if not found:
            return _NONE
        self.findings += found
        return found

    def _route(self, socket: int, raw: str, frame: Mapping[str, Any], kind: object) -> list[Finding] | None:
        run_id = frame.get("run_id")
        run_id = run_id if isinstance(run_id, str) and run_id else None
        message_id = frame.get("message_id")
        message_id = message_id if isinstance(message_id, str) and message_id else None
        message = self._by_run.get(run_id) if run_id else None
        if message is None and message_id is not None:
            named = self._by_message.get(message_id)
            if named is not None and named.run_id is not None and run_id and run_id != named.run_id and (
                    self._finished(named)):
                return [self._finding(
                    Code.STALE_REPLAY, socket, raw, frame,
                    f"run {run_id} reuses the message_id {message_id} of the earlier run {named.run_id}")]
            if named is not None and named.run_id is None and run_id and kind != self.contract.error_message:
                named.run_id = run_id
                self._by_run[run_id] = named
            message = named
        if message is None:
            what = f"message {message_id}" if message_id else "no message_id"
            return [self._finding(Code.FOREIGN_EVENT, socket, raw, frame,
                                  f"a run of {what}, which this user never sent")]
        self.stats.run_events += 1
        seen = self._seen.setdefault(socket, set())
        digest = hash(raw)
        duplicate = digest in seen
        seen.add(digest)
        stream = message.streams.get(socket)
        if stream is None:
            stream = message.streams[socket] = _Stream()
        if stream.ended:
            return self._after_end(message, stream, socket, raw, frame, kind, duplicate)
        if duplicate:
            return [self._finding(Code.DUPLICATE_DELIVERY, socket, raw, frame,
                                  "the same frame a second time on this socket")]
        stream.frames.append(frame)
        if kind in self._ending:
            stream.ended = True
            return self._check(message, socket, stream) or None
        return None

    def _after_end(self, message: _Message, stream: _Stream, socket: int, raw: str,
                   frame: Mapping[str, Any], kind: object,
                   duplicate: bool) -> list[Finding] | None:  # fmt: skip
        if kind == self.contract.agent_started:
            # A run that ended starting again is the server replaying it: flagged once, at its start.
            stream.replaying = True
            self.stats.replayed_frames += 1
            return [self._finding(Code.STALE_REPLAY, socket, raw, frame,
                                  f"run {message.run_id} (message {message.message_id}) starts again after "
                                  "it ended: an earlier run replayed")]
        if stream.replaying:
            self.stats.replayed_frames += 1
            if kind in self._ending:
                stream.replaying = False
                self._answered_by_replay(socket)
            return None
        if duplicate:
            return [self._finding(Code.DUPLICATE_DELIVERY, socket, raw, frame,
                                  "the same frame a second time on this socket")]
        return [self._finding(Code.EVENT_AFTER_COMPLETION, socket, raw, frame,
                              f"a frame of run {message.run_id} after its ending frame on this socket")]

    def _answered_by_replay(self, socket: int) -> None:
        # The replay came instead of the run of the oldest message still waiting on this socket:
        # that message is over (STALE_REPLAY said why), so nobody waits for it and finish()
        # does not report it a second time as missing.
        for message in self._by_message.values():
            if message.socket == socket and message.run_id is None and not message.streams:
                message.streams[socket] = _Stream(ended=True)
                message.checked = True
                return

    def _finished(self, message: _Message) -> bool:
        return any(stream.ended for stream in message.streams.values())

    def _check(self, message: _Message, socket: int, stream: _Stream) -> list[Finding]:
        if socket == message.socket:
            message.checked = True
        self.stats.runs_checked += socket == message.socket
        violations = check_events(stream.frames, user_id=self.user_id, message_id=message.message_id,
                                  thread_id=message.thread_id, contract=self.contract)  # fmt: skip
        frames = stream.frames
        stream.frames = []  # checked: the decoded frames are not needed any more
        found = []
        for v in violations:
            at = frames[v.index] if v.index is not None and v.index < len(frames) else (
                frames[-1] if frames else {})
            kind = at.get("type")
            found.append(Finding(v.code, v.message, self.user_id, v.run_id or message.run_id,
                                 kind if isinstance(kind, str) else None, _head_of(at), socket=socket))
        return found

    def _finding(self, code: Code, socket: int, raw: str, frame: Mapping[str, Any], text: str,
                 *, other: str | None = None) -> Finding:  # fmt: skip
        run_id, kind = frame.get("run_id"), frame.get("type")
        return Finding(code.value, text, self.user_id, run_id if isinstance(run_id, str) else None,
                       kind if isinstance(kind, str) else None, raw[:EVIDENCE_CHARS], other, socket)


def _head_of(frame: Mapping[str, Any]) -> str:
    # The contract checks decoded frames; their evidence is re-encoded only for the few that fail.
    return json.dumps(frame, default=str)[:EVIDENCE_CHARS] if frame else ""
