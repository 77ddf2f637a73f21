"""Healthy variants: behaviour a correct platform may have that differs from refstack's defaults.

REFSTACK_VARIANTS="name[:arg],name[:arg]", e.g. "usec_timestamps,clock_ahead:5000". Unlike a
fault, a variant breaks no rule of the protocol, so the validators must pass on it; it is
allowed in every mode, production included. Every variant is off unless named.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, fields
from typing import Any

from refstack.clock import iso_ms, iso_us
from refstack.specs import items, whole_number

# name -> kind of argument: "none" or "ms".
VARIANT_ARGS: dict[str, str] = {
    "usec_timestamps": "none",
    "slow_tool": "ms",
    "error_no_message_id": "none",
    "extra_fields": "none",
    "clock_ahead": "ms",
    "offset_timestamps": "none",
}

KNOWN_VARIANTS = tuple(VARIANT_ARGS)

DEFAULT_SLOW_TOOL_MS = 3000
DEFAULT_CLOCK_AHEAD_MS = 5000
# slow_tool stays well inside the protocol's 30 s tool-result bound.
MAX_SLOW_TOOL_MS = 25_000

_DEFAULT_MS = {"slow_tool": DEFAULT_SLOW_TOOL_MS, "clock_ahead": DEFAULT_CLOCK_AHEAD_MS}

# What extra_fields adds inside every `data` object.
EXTRA_DATA = {"note": "a field this client does not know", "variant": "extra_fields"}


class VariantError(ValueError):
    """REFSTACK_VARIANTS cannot be parsed; the message is one line fit for stderr."""


@dataclass(frozen=True)
class Variants:
    """The parsed variant set. A None delay means the variant is off."""

    usec_timestamps: bool = False
    slow_tool_ms: int | None = None
    error_no_message_id: bool = False
    extra_fields: bool = False
    clock_ahead_ms: int | None = None
    offset_timestamps: bool = False
    spec: str = ""

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) not in (None, False) for f in fields(self) if f.name != "spec")

    def now(self) -> float:
        """The server's idea of the current unix time (clock_ahead: a clock that runs ahead)."""
        if self.clock_ahead_ms:
            return time.time() + self.clock_ahead_ms / 1000
        return time.time()

    def stamp(self, epoch: float) -> str:
        """A frame `timestamp` for this unix time, in the variant's spelling."""
        text = iso_us(epoch) if self.usec_timestamps else iso_ms(epoch)
        if self.offset_timestamps:
            return text[:-1] + "+00:00"
        return text

    def timestamp(self) -> str:
        return self.stamp(self.now())

    def decorate(self, frame: dict[str, Any]) -> None:
        """extra_fields: add fields no client knows, at the top level and inside `data`."""
        if not self.extra_fields:
            return
        frame["trace_id"] = uuid.uuid4().hex
        frame["server"] = "refstack"
        data = frame.get("data")
        if isinstance(data, dict):
            frame["data"] = {**data, "extra": dict(EXTRA_DATA)}


def parse_variants(spec: str | None) -> Variants:
    """Parse REFSTACK_VARIANTS; an empty or missing value means no variant."""
    if not spec or not spec.strip():
        return Variants()
    values: dict[str, object] = {}
    for item in items(spec):
        name = item.name
        kind = VARIANT_ARGS.get(name)
        if kind is None:
            raise VariantError(
                f"unknown variant {name!r} in REFSTACK_VARIANTS; known variants: {', '.join(KNOWN_VARIANTS)}"
            )
        if kind == "none":
            if item.has_arg:
                raise VariantError(f"variant {name!r} takes no argument (got {item.text!r})")
            values[name] = True
        else:  # ms
            values[f"{name}_ms"] = _ms(name, item.arg) if item.has_arg else _DEFAULT_MS[name]
    return Variants(spec=spec.strip(), **values)  # type: ignore[arg-type]


def _ms(name: str, arg: str) -> int:
    value = whole_number(arg, 0)
    if value is None:
        raise VariantError(f"variant {name!r} needs a whole number of ms >= 0 (got {arg!r})")
    if name == "slow_tool" and value > MAX_SLOW_TOOL_MS:
        raise VariantError(
            f"variant 'slow_tool' must stay within the 30 s tool bound: at most {MAX_SLOW_TOOL_MS} ms"
            f" (got {value})"
        )
    return value
