"""The golden-path contract as data, and a pure check of one run's events against it.

``Contract()`` is protocol version 1 (docs/protocol.md). A deployment
that names things differently is described by settings, never by a code change:
``Contract.from_settings(settings)`` reads the optional keys in ``SETTING_KEYS``, e.g.
``GOLDENPATH_EVENT_AGENT_COMPLETED=agent_finished`` or ``GOLDENPATH_CONTRACT_AUTH_TRANSPORTS=query``
(comma-separated lists). Unknown keys under those two prefixes are refused, with a hint.

``check_events`` takes the events routed to one run and returns violations: short stable
codes (``Code``) with a one-line message naming the run, the event index and the fault.
It never raises on malformed input: a malformed event is exactly what it reports.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any

from goldenpath.core.errors import ConfigError
from goldenpath.core.settings import Settings
from goldenpath.protocol.clock import parse_server_time
from goldenpath.protocol.events import Event, Run

TRANSPORTS = ("subprotocol", "header", "query")
# The auth service's E2E bypass: the header its key travels in, and the setting that holds it.
E2E_KEY_HEADER = "X-E2E-Bypass-Key"
E2E_KEY_SETTING = "E2E_OAUTH_SIMULATION_KEY"
ENVELOPE_FIELDS = ("type", "run_id", "thread_id", "user_id", "message_id", "agent_name", "timestamp", "data")
EVENT_NAME_FIELDS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed",
                     "agent_completed", "agent_error", "connection_established", "error_message",
                     "user_message", "ping", "pong")  # fmt: skip


class Code(StrEnum):
    MISSING_EVENT = "MISSING_EVENT"
    ORDER = "ORDER"
    DUPLICATE_START = "DUPLICATE_START"
    DUPLICATE_COMPLETION = "DUPLICATE_COMPLETION"
    EVENT_AFTER_COMPLETION = "EVENT_AFTER_COMPLETION"
    TOOL_UNPAIRED = "TOOL_UNPAIRED"
    TOOL_ORDER = "TOOL_ORDER"
    RUN_ID_MISMATCH = "RUN_ID_MISMATCH"
    THREAD_ID_MISMATCH = "THREAD_ID_MISMATCH"
    USER_ID_MISMATCH = "USER_ID_MISMATCH"
    MESSAGE_ID_MISMATCH = "MESSAGE_ID_MISMATCH"
    BAD_TIMESTAMP = "BAD_TIMESTAMP"
    MISSING_FIELD = "MISSING_FIELD"
    FOREIGN_EVENT = "FOREIGN_EVENT"
    AGENT_ERROR = "AGENT_ERROR"
    REJECTED = "REJECTED"
    ERROR_RESULT = "ERROR_RESULT"
    # The per-user ledger's (goldenpath.protocol.ledger): replays, redelivery, another user's text.
    STALE_REPLAY = "STALE_REPLAY"
    DUPLICATE_DELIVERY = "DUPLICATE_DELIVERY"
    FOREIGN_CANARY = "FOREIGN_CANARY"


@dataclass(frozen=True)
class Violation:
    code: str
    run_id: str | None
    message: str
    index: int | None = None  # the offending event's position in the run, None for the run as a whole

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class Contract:
    """Names and required fields of the protocol; every default is protocol version 1."""

    # Event types on the wire.
    agent_started: str = "agent_started"
    agent_thinking: str = "agent_thinking"
    tool_executing: str = "tool_executing"
    tool_completed: str = "tool_completed"
    agent_completed: str = "agent_completed"
    agent_error: str = "agent_error"
    connection_established: str = "connection_established"
    error_message: str = "error_message"
    user_message: str = "user_message"
    ping: str = "ping"
    pong: str = "pong"
    # Required fields: of every run event, of tool events (top level), inside data.
    envelope_fields: tuple[str, ...] = ENVELOPE_FIELDS
    tool_fields: tuple[str, ...] = ("tool_name",)
    tool_key: str = "tool_name"
    completed_data_fields: tuple[str, ...] = ("result",)
    error_data_fields: tuple[str, ...] = ("error_message",)
    # WebSocket authentication: the transports the deployment accepts, and their spelling.
    auth_transports: tuple[str, ...] = TRANSPORTS
    subprotocol_prefix: str = "jwt."
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    token_query_param: str = "token"  # noqa: S105 - a parameter name, not a secret

    def __post_init__(self) -> None:
        names = [getattr(self, name) for name in EVENT_NAME_FIELDS]
        if not all(names):
            raise ValueError("an event name is empty")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"event name(s) {', '.join(duplicates)} used for two events")
        unknown = [t for t in self.auth_transports if t not in TRANSPORTS]
        if unknown or not self.auth_transports:
            raise ValueError(
                f"auth transports must be some of {', '.join(TRANSPORTS)}, got {unknown or 'none'}"
            )
        if self.tool_key not in self.tool_fields:
            raise ValueError(f"tool_key {self.tool_key!r} is not among tool_fields {self.tool_fields}")

    @property
    def golden_path_events(self) -> tuple[str, ...]:
        return (self.agent_started, self.agent_thinking, self.tool_executing,
                self.tool_completed, self.agent_completed)  # fmt: skip

    @property
    def run_event_types(self) -> frozenset[str]:
        """Every type a frame routed to a run may have."""
        return frozenset((*self.golden_path_events, self.agent_error, self.error_message))

    @property
    def ending_types(self) -> frozenset[str]:
        return frozenset((self.agent_completed, self.agent_error, self.error_message))

    @classmethod
    def from_settings(cls, settings: Settings) -> Contract:
        """The protocol, with whatever the profile overrides (keys in SETTING_KEYS)."""
        _reject_unknown_keys(settings.values)
        changes: dict[str, Any] = {}
        for name, key in SETTING_KEYS.items():
            raw = settings.get(key)
            if raw is None:
                continue
            if name in _TUPLE_FIELDS:
                changes[name] = tuple(part.strip() for part in raw.split(",") if part.strip())
            else:
                changes[name] = raw.strip()
        try:
            return replace(cls(), **changes)
        except ValueError as exc:
            keys = ", ".join(SETTING_KEYS[name] for name in changes)
            raise ConfigError(f"contract settings ({keys}): {exc}") from None


_TUPLE_FIELDS = frozenset(
    ("envelope_fields", "tool_fields", "completed_data_fields", "error_data_fields", "auth_transports")
)


def _setting_key(name: str) -> str:
    if name in EVENT_NAME_FIELDS:
        return f"GOLDENPATH_EVENT_{name.upper()}"
    return f"GOLDENPATH_CONTRACT_{name.upper()}"


# Contract field -> the settings key overriding it, e.g. agent_completed -> GOLDENPATH_EVENT_AGENT_COMPLETED.
SETTING_KEYS: dict[str, str] = {f.name: _setting_key(f.name) for f in fields(Contract)}
_KEY_PREFIXES = ("GOLDENPATH_EVENT_", "GOLDENPATH_CONTRACT_")


def _reject_unknown_keys(values: Mapping[str, str]) -> None:
    # config passes GOLDENPATH_* keys through unchecked, so a typo would silently do nothing.
    known = set(SETTING_KEYS.values())
    for key in values:
        if key.startswith(_KEY_PREFIXES) and key not in known:
            guess = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {guess[0]}?" if guess else ""
            raise ConfigError(f"unknown contract setting {key}{hint}")


PROTOCOL = Contract()


def check_run(run: Run, user_id: str, contract: Contract = PROTOCOL) -> list[Violation]:
    """``check_events`` for a run the client collected (its message and thread as sent)."""
    return check_events(run.events, user_id=user_id, message_id=run.message_id,
                        thread_id=run.thread_id, contract=contract)  # fmt: skip


def check_events(
    events: Sequence[Event | Mapping[str, Any]],
    *,
    user_id: str,
    message_id: str,
    thread_id: str | None = None,
    contract: Contract = PROTOCOL,
) -> list[Violation]:
    """Every contract violation of one run's events, in arrival order.

    ``user_id`` is the connection's user, ``message_id`` the id sent, ``thread_id`` the
    thread the message was sent to (None for a new thread: then the events only have to agree).
    """
    frames = [e.frame if isinstance(e, Event) else e for e in events]
    return _RunCheck(frames, user_id, message_id, thread_id, contract).run()


def check_stray(
    events: Sequence[Event | Mapping[str, Any]],
    user_id: str,
    sent_message_ids: Collection[str] | None = None,
) -> list[Violation]:
    """Frames that reached a connection outside its own runs: another user's are a leak.

    The same user's events from another socket are allowed by the protocol. Given the ids
    of every message the user sent (on all its sockets), an event for any other message is
    foreign too, even under this user's id (a leak that rewrote the user_id).
    """
    found = []
    for index, event in enumerate(events):
        frame = event.frame if isinstance(event, Event) else event
        owner, message_id, run_id = frame.get("user_id"), frame.get("message_id"), frame.get("run_id")
        run_id = run_id if isinstance(run_id, str) else None
        what = f"connection of user {user_id}: received {frame.get('type')!r} of"
        if isinstance(owner, str) and owner != user_id:
            text = f"{what} user {owner}'s run {_short(run_id)} (another user's event)"
        elif isinstance(message_id, str) and sent_message_ids is not None and (
                message_id not in sent_message_ids):
            text = (f"{what} run {_short(run_id)} for message {_short(message_id)}, which this user never "
                    "sent (another user's event under this user's id)")  # fmt: skip
        else:
            continue
        found.append(Violation(Code.FOREIGN_EVENT.value, run_id, text, index))
    return found


def _short(value: str | None) -> str:
    return value[:8] if value else "?"


def _absent(value: object) -> bool:
    return value is None or value == ""


# A completion saying it failed (7.1): these statuses, case-insensitive, or a non-blank error.
ERROR_STATUSES = frozenset(("error", "failed", "failure"))
ERROR_KEYS = ("error", "errors")
_SHOWN_RESULT = 80


def _blank(value: object) -> bool:
    """The protocol's blank: absent, null, empty or whitespace-only text, {} or []."""
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Mapping | list | tuple):
        return not value
    return value is None


def _error_marker(holder: object) -> str | None:
    """Where a mapping says it failed (``status`` 'error', or a non-blank ``error``), else None."""
    if not isinstance(holder, Mapping):
        return None
    status = holder.get("status")
    if isinstance(status, str) and status.strip().lower() in ERROR_STATUSES:
        return f"status {status!r}"
    for key in ERROR_KEYS:
        value = holder.get(key)
        if value and not _blank(value):  # null, false, 0, "" and {} say "no error"
            return f"{key} {str(value)[:_SHOWN_RESULT]!r}"
    return None


class _RunCheck:
    """One pass of the checks over one run; a class only to share the run's facts."""

    def __init__(self, frames: list[Mapping[str, Any]], user_id: str, message_id: str,
                 thread_id: str | None, contract: Contract) -> None:  # fmt: skip
        self.frames = frames
        self.kinds: list[object] = [f.get("type") for f in frames]
        self.user_id = user_id
        self.message_id = message_id
        self.c = contract
        self.run_id = self._first("run_id")
        self.thread_id = thread_id if thread_id is not None else self._first("thread_id")
        self.label = f"run {_short(self.run_id)}" if self.run_id else f"message {_short(message_id)}"
        self.found: list[Violation] = []

    def run(self) -> list[Violation]:
        c = self.c
        if not self.frames:
            self.add(Code.MISSING_EVENT, None, f"no event received (expected {c.agent_started} first)")
            return self.found
        for i, frame in enumerate(self.frames):
            self.check_event(i, frame)
        if all(kind == c.error_message for kind in self.kinds):
            return self.found  # refused before it started: REJECTED says it all
        self.check_counts_and_order()
        self.check_tools()
        return self.found

    def add(self, code: Code, index: int | None, text: str) -> None:
        self.found.append(Violation(code.value, self.run_id, f"{self.label}: {text}", index))

    def _first(self, field: str) -> str | None:
        # agent_started names the run when present; otherwise the first event that names one.
        ordered = sorted(self.frames, key=lambda f: f.get("type") != self.c.agent_started)
        for frame in ordered:
            value = frame.get(field)
            if isinstance(value, str) and value and frame.get("type") != self.c.error_message:
                return value
        return None

    def where(self, i: int) -> str:
        return f"event {i} ({self.kinds[i]})"

    def check_event(self, i: int, frame: Mapping[str, Any]) -> None:
        c, kind = self.c, self.kinds[i]
        if kind == c.error_message:
            detail = f"{frame.get('error_code')}: {frame.get('error_message')}"
            self.add(Code.REJECTED, i, f"server refused the message ({detail[:120]})")
            return
        if kind not in c.run_event_types:
            self.add(Code.FOREIGN_EVENT, i, f"event {i} has type {kind!r}, which is not an event of a run")
            return
        self.check_fields(i, frame)
        self.check_ids(i, frame)

    def check_fields(self, i: int, frame: Mapping[str, Any]) -> None:
        c, kind = self.c, self.kinds[i]
        missing = [name for name in c.envelope_fields if _absent(frame.get(name))]
        if kind in (c.tool_executing, c.tool_completed):
            missing += [name for name in c.tool_fields if _absent(frame.get(name))]
        data = frame.get("data")
        if isinstance(data, Mapping):
            inner = c.completed_data_fields if kind == c.agent_completed else (
                c.error_data_fields if kind == c.agent_error else ())
            missing += [f"data.{name}" for name in inner if _absent(data.get(name))]
        elif data is not None:
            missing.append("data (not an object)")
        if missing:
            self.add(Code.MISSING_FIELD, i, f"{self.where(i)} lacks {', '.join(missing)}")
        if kind == c.agent_completed:
            self.check_answer(i, frame, missing)
        stamp = frame.get("timestamp")
        if stamp is not None and parse_server_time(stamp) is None:
            self.add(Code.BAD_TIMESTAMP, i, f"{self.where(i)} timestamp {str(stamp)[:40]!r} is not ISO 8601 "
                                            "in UTC (Z or +00:00)")

    def check_answer(self, i: int, frame: Mapping[str, Any], missing: list[str]) -> None:
        """A completed run carries a real answer (7.1): not blank, and no error marker.

        MISSING_FIELD already reported an answer that is absent, null or ""; ERROR_RESULT
        covers the other blanks (whitespace, {}, []) and a completion that says it failed: in
        its result (a mapping with an error status or error), in ``data`` or at the top level.
        """
        data = frame.get("data")
        if not isinstance(data, Mapping):
            return  # MISSING_FIELD: data not an object
        answer_key = self.c.completed_data_fields[0] if self.c.completed_data_fields else None
        result = data.get(answer_key) if answer_key else None
        shown = repr(result)[:_SHOWN_RESULT]
        if answer_key and f"data.{answer_key}" not in missing and _blank(result):
            self.add(Code.ERROR_RESULT, i, f"{self.where(i)} data.{answer_key} is blank: {shown} "
                                           "(a completed run carries an answer)")
            return
        for holder, named in ((result, f"data.{answer_key}"), (data, "data"), (frame, "the frame")):
            marker = _error_marker(holder)
            if marker is not None:
                self.add(Code.ERROR_RESULT, i, f"{self.where(i)} says the run failed ({named} has {marker}); "
                                               f"data.{answer_key} was {shown}")
                return

    def check_ids(self, i: int, frame: Mapping[str, Any]) -> None:
        expected = (
            ("run_id", self.run_id, Code.RUN_ID_MISMATCH, ""),
            ("thread_id", self.thread_id, Code.THREAD_ID_MISMATCH, ""),
            ("user_id", self.user_id, Code.USER_ID_MISMATCH, " (the connection's user)"),
            ("message_id", self.message_id, Code.MESSAGE_ID_MISMATCH, " (the id sent)"),
        )
        for field, want, code, why in expected:
            got = frame.get(field)
            if _absent(got) or want is None:
                continue  # an absent id is MISSING_FIELD already
            if got != want:
                self.add(code, i, f"{self.where(i)} has {field} {str(got)[:60]!r}, expected {want!r}{why}")

    def positions(self, kind: str) -> list[int]:
        return [i for i, k in enumerate(self.kinds) if k == kind]

    def check_counts_and_order(self) -> None:
        c = self.c
        starts = self.positions(c.agent_started)
        if not starts:
            self.add(Code.MISSING_EVENT, None, f"no {c.agent_started}")
        elif starts[0] != 0:
            self.add(Code.ORDER, starts[0],
                     f"{c.agent_started} is event {starts[0]}, expected first (event 0 is {self.kinds[0]})")
        for i in starts[1:]:
            self.add(Code.DUPLICATE_START, i, f"another {c.agent_started} at event {i} (exactly one per run)")

        errors = self.positions(c.agent_error)
        for i in errors:
            message = self.frames[i].get("data")
            detail = message.get("error_message") if isinstance(message, Mapping) else None
            self.add(Code.AGENT_ERROR, i, f"the run failed: {c.agent_error} {str(detail)[:120]!r}")
        completions = self.positions(c.agent_completed)
        if not errors:
            # A failed run legitimately stops early; AGENT_ERROR above is its finding.
            self.check_present(completions)

        thinking = self.positions(c.agent_thinking)
        tools = self.positions(c.tool_executing) + self.positions(c.tool_completed)
        if thinking and tools and thinking[0] > min(tools):
            first = min(tools)
            self.add(Code.ORDER, first, f"{self.where(first)} came before any {c.agent_thinking}")

        ends = sorted(completions + errors)
        if not ends:
            return
        end = ends[0]
        for i in range(end + 1, len(self.kinds)):
            if self.kinds[i] == c.agent_completed and self.kinds[end] == c.agent_completed:
                self.add(Code.DUPLICATE_COMPLETION, i,
                         f"another {c.agent_completed} at event {i} (exactly one per run)")
            elif self.kinds[i] != c.error_message:
                self.add(Code.EVENT_AFTER_COMPLETION, i, f"{self.where(i)} arrived after {self.where(end)}")

    def check_present(self, completions: list[int]) -> None:
        c = self.c
        if not self.positions(c.agent_thinking):
            self.add(Code.MISSING_EVENT, None, f"no {c.agent_thinking}")
        if not self.positions(c.tool_executing):
            self.add(Code.MISSING_EVENT, None, f"no {c.tool_executing} (the golden path has a tool pair)")
        if not self.positions(c.tool_completed):
            self.add(Code.MISSING_EVENT, None, f"no {c.tool_completed}")
        if not completions:
            last = self.kinds[-1]
            self.add(Code.MISSING_EVENT, None,
                     f"no {c.agent_completed} ({len(self.kinds)} event(s) received, the last {last})")

    def check_tools(self) -> None:
        c = self.c
        waiting: dict[str, list[int]] = {}  # tool name -> its executing events not yet completed
        early: list[tuple[int, str]] = []
        for i, kind in enumerate(self.kinds):
            if kind not in (c.tool_executing, c.tool_completed):
                continue
            name = self.frames[i].get(c.tool_key)
            if not isinstance(name, str) or not name:
                continue  # MISSING_FIELD already
            if kind == c.tool_executing:
                waiting.setdefault(name, []).append(i)
            elif waiting.get(name):
                waiting[name].pop(0)
            else:
                early.append((i, name))
        for i, name in early:
            later = waiting.get(name)
            if later:
                j = later.pop(0)
                self.add(Code.TOOL_ORDER, i, f"{c.tool_completed} for {name!r} (event {i}) arrived "
                                             f"before its {c.tool_executing} (event {j})")
            else:
                self.add(Code.TOOL_UNPAIRED, i, f"{c.tool_completed} for {name!r} (event {i}) "
                                                f"has no {c.tool_executing}")
        for name, left in waiting.items():
            for j in left:
                self.add(Code.TOOL_UNPAIRED, j, f"{c.tool_executing} for {name!r} (event {j}) "
                                                f"was never completed")
