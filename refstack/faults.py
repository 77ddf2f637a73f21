"""Fault injection: deliberate, named defects the validators must catch.

REFSTACK_FAULTS="name[:arg],name[:arg]", e.g. "leak:0.1,drop:tool_completed". Every fault is
off unless named, and naming any fault in production mode is refused at start, so a fault can
never reach a real deployment by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

# The events a run (or a connection) can emit; `drop` accepts exactly these.
DROPPABLE_EVENTS = (
    "connection_established",
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
)

# name -> kind of argument: "none", "probability", "ms", "kb" or "event".
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
}

KNOWN_FAULTS = tuple(FAULT_ARGS)

DEFAULT_DELAY_EVENT_MS = 1500
DEFAULT_SLOW_FIRST_EVENT_MS = 6000
DEFAULT_SLOW_CONNECT_MS = 3000
DEFAULT_MEMORY_LEAK_KB = 256


class FaultError(ValueError):
    """REFSTACK_FAULTS cannot be parsed; the message is one line fit for stderr."""


@dataclass(frozen=True)
class Faults:
    """The parsed fault set. A None probability or delay means the fault is off."""

    leak: float | None = None
    leak_rewrite: float | None = None
    drop: frozenset[str] = field(default_factory=frozenset)
    reorder_tools: bool = False
    duplicate_completed: bool = False
    delay_event_ms: int | None = None
    slow_first_event_ms: int | None = None
    never_complete: bool = False
    slow_connect_ms: int | None = None
    ws_no_auth: bool = False
    ws_invalid_token: bool = False
    accept_expired: bool = False
    accept_refresh_as_access: bool = False
    idor: bool = False
    ready_lies: bool = False
    wrong_run_id: bool = False
    json_close: bool = False
    memory_leak_kb: int | None = None
    spec: str = ""

    @property
    def active(self) -> bool:
        return any(
            getattr(self, f.name) not in (None, False, frozenset()) for f in fields(self) if f.name != "spec"
        )

    @property
    def leaks(self) -> bool:
        return self.leak is not None or self.leak_rewrite is not None


def parse_faults(spec: str | None) -> Faults:
    """Parse REFSTACK_FAULTS; an empty or missing value means no fault."""
    if not spec or not spec.strip():
        return Faults()
    values: dict[str, object] = {}
    drops: set[str] = set()
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, arg = item.partition(":")
        name = name.strip()
        arg = arg.strip()
        kind = FAULT_ARGS.get(name)
        if kind is None:
            raise FaultError(
                f"unknown fault {name!r} in REFSTACK_FAULTS; known faults: {', '.join(KNOWN_FAULTS)}"
            )
        if kind == "none":
            if sep:
                raise FaultError(f"fault {name!r} takes no argument (got {item!r})")
            values[name] = True
        elif kind == "probability":
            values[name] = _probability(name, arg) if sep else 1.0
        elif kind == "ms":
            values[f"{name}_ms"] = _non_negative_int(name, arg) if sep else _default_ms(name)
        elif kind == "kb":
            values["memory_leak_kb"] = _non_negative_int(name, arg) if sep else DEFAULT_MEMORY_LEAK_KB
        else:  # event
            if arg not in DROPPABLE_EVENTS:
                raise FaultError(
                    f"fault 'drop' needs an event type, one of: {', '.join(DROPPABLE_EVENTS)} (got {item!r})"
                )
            drops.add(arg)
    return Faults(drop=frozenset(drops), spec=spec.strip(), **values)  # type: ignore[arg-type]


def _default_ms(name: str) -> int:
    return {
        "delay_event": DEFAULT_DELAY_EVENT_MS,
        "slow_first_event": DEFAULT_SLOW_FIRST_EVENT_MS,
        "slow_connect": DEFAULT_SLOW_CONNECT_MS,
    }[name]


def _probability(name: str, arg: str) -> float:
    try:
        value = float(arg)
    except ValueError:
        raise FaultError(f"fault {name!r} needs a probability between 0 and 1 (got {arg!r})") from None
    if not 0.0 <= value <= 1.0:
        raise FaultError(f"fault {name!r} needs a probability between 0 and 1 (got {arg!r})")
    return value


def _non_negative_int(name: str, arg: str) -> int:
    try:
        value = int(arg)
    except ValueError:
        raise FaultError(f"fault {name!r} needs a whole number >= 0 (got {arg!r})") from None
    if value < 0:
        raise FaultError(f"fault {name!r} needs a whole number >= 0 (got {arg!r})")
    return value
