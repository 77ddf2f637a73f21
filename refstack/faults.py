"""Fault injection: deliberate, named defects the validators must catch.

REFSTACK_FAULTS="name[:arg],name[:arg]", e.g. "leak:0.1,drop:tool_completed". Every fault is
off unless named, and naming any fault in production mode is refused at start, so a fault can
never reach a real deployment by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from refstack.specs import items, whole_number

# The events a run (or a connection) can emit; `drop` accepts exactly these.
DROPPABLE_EVENTS = (
    "connection_established",
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
)

# name -> kind of argument: "none", "probability", "ms", "kb", "users" or "event".
FAULT_ARGS: dict[str, str] = {
    "leak": "probability",
    "leak_rewrite": "probability",
    "drop": "event",
    "reorder_tools": "none",
    "duplicate_completed": "none",
    "delay_event": "ms",
    "slow_first_event": "ms",
    "never_complete": "none",
    "slow_connect": "ms",
    "ws_no_auth": "none",
    "ws_invalid_token": "none",
    "accept_expired": "none",
    "accept_refresh_as_access": "none",
    "idor": "none",
    "ready_lies": "none",
    "wrong_run_id": "none",
    "json_close": "none",
    "memory_leak": "kb",
    "error_result": "none",
    "blank_result": "none",
    "stale_replay": "none",
    "late_event": "ms",
    "second_socket_duplicate": "none",
    "accept_wrong_issuer": "none",
    "accept_wrong_audience": "none",
    "ready_lies_redis": "none",
    "ready_hides_redis": "none",
    "memory_creep": "kb",
    "leak_rare": "probability",
    "leak_crowd": "users",
    "latency_creep": "ms",
}

KNOWN_FAULTS = tuple(FAULT_ARGS)

DEFAULT_DELAY_EVENT_MS = 1500
DEFAULT_SLOW_FIRST_EVENT_MS = 6000
DEFAULT_SLOW_CONNECT_MS = 3000
DEFAULT_LATE_EVENT_MS = 200
DEFAULT_LATENCY_CREEP_MS = 2
DEFAULT_MEMORY_LEAK_KB = 256
DEFAULT_MEMORY_CREEP_KB = 16
DEFAULT_LEAK_RARE = 0.02
DEFAULT_LEAK_CROWD_USERS = 25
# latency_creep never holds a run back longer than this, however many runs were served.
LATENCY_CREEP_CAP_MS = 10_000

# The argument a fault gets when it is named without one.
_DEFAULTS: dict[str, float] = {
    "leak": 1.0,
    "leak_rewrite": 1.0,
    "leak_rare": DEFAULT_LEAK_RARE,
    "leak_crowd": DEFAULT_LEAK_CROWD_USERS,
    "delay_event": DEFAULT_DELAY_EVENT_MS,
    "slow_first_event": DEFAULT_SLOW_FIRST_EVENT_MS,
    "slow_connect": DEFAULT_SLOW_CONNECT_MS,
    "late_event": DEFAULT_LATE_EVENT_MS,
    "latency_creep": DEFAULT_LATENCY_CREEP_MS,
    "memory_leak": DEFAULT_MEMORY_LEAK_KB,
    "memory_creep": DEFAULT_MEMORY_CREEP_KB,
}


class FaultError(ValueError):
    """REFSTACK_FAULTS cannot be parsed; the message is one line fit for stderr."""


@dataclass(frozen=True)
class Faults:
    """The parsed fault set. A None probability or delay means the fault is off."""

    leak: float | None = None
    leak_rewrite: float | None = None
    leak_rare: float | None = None
    leak_crowd_users: int | None = None
    drop: frozenset[str] = field(default_factory=frozenset)
    reorder_tools: bool = False
    duplicate_completed: bool = False
    error_result: bool = False
    blank_result: bool = False
    stale_replay: bool = False
    late_event_ms: int | None = None
    second_socket_duplicate: bool = False
    delay_event_ms: int | None = None
    slow_first_event_ms: int | None = None
    latency_creep_ms: int | None = None
    never_complete: bool = False
    slow_connect_ms: int | None = None
    ws_no_auth: bool = False
    ws_invalid_token: bool = False
    accept_expired: bool = False
    accept_refresh_as_access: bool = False
    accept_wrong_issuer: bool = False
    accept_wrong_audience: bool = False
    idor: bool = False
    ready_lies: bool = False
    ready_lies_redis: bool = False
    ready_hides_redis: bool = False
    wrong_run_id: bool = False
    json_close: bool = False
    memory_leak_kb: int | None = None
    memory_creep_kb: int | None = None
    spec: str = ""

    @property
    def active(self) -> bool:
        return any(
            getattr(self, f.name) not in (None, False, frozenset()) for f in fields(self) if f.name != "spec"
        )

    @property
    def leaks(self) -> bool:
        return (
            self.leak is not None
            or self.leak_rewrite is not None
            or self.leak_rare is not None
            or self.leak_crowd_users is not None
        )


def parse_faults(spec: str | None) -> Faults:
    """Parse REFSTACK_FAULTS; an empty or missing value means no fault."""
    if not spec or not spec.strip():
        return Faults()
    values: dict[str, object] = {}
    drops: set[str] = set()
    for item in items(spec):
        name, arg = item.name, item.arg
        kind = FAULT_ARGS.get(name)
        if kind is None:
            raise FaultError(
                f"unknown fault {name!r} in REFSTACK_FAULTS; known faults: {', '.join(KNOWN_FAULTS)}"
            )
        if kind == "none":
            if item.has_arg:
                raise FaultError(f"fault {name!r} takes no argument (got {item.text!r})")
            values[name] = True
        elif kind == "probability":
            values[name] = _probability(name, arg) if item.has_arg else _DEFAULTS[name]
        elif kind == "event":
            if arg not in DROPPABLE_EVENTS:
                raise FaultError(
                    f"fault 'drop' needs an event type, one of: {', '.join(DROPPABLE_EVENTS)} "
                    f"(got {item.text!r})"
                )
            drops.add(arg)
        else:  # a whole number: ms, kb or users
            minimum = 1 if kind == "users" else 0
            values[f"{name}_{kind}"] = _whole(name, arg, minimum) if item.has_arg else int(_DEFAULTS[name])
    return Faults(drop=frozenset(drops), spec=spec.strip(), **values)  # type: ignore[arg-type]


def _probability(name: str, arg: str) -> float:
    try:
        value = float(arg)
    except ValueError:
        raise FaultError(f"fault {name!r} needs a probability between 0 and 1 (got {arg!r})") from None
    if not 0.0 <= value <= 1.0:
        raise FaultError(f"fault {name!r} needs a probability between 0 and 1 (got {arg!r})")
    return value


def _whole(name: str, arg: str, minimum: int) -> int:
    value = whole_number(arg, minimum)
    if value is None:
        raise FaultError(f"fault {name!r} needs a whole number >= {minimum} (got {arg!r})")
    return value
