"""The "name[:arg],name[:arg]" lists of REFSTACK_FAULTS and REFSTACK_VARIANTS, read one way."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    name: str
    has_arg: bool
    arg: str
    text: str  # the item as written, for error messages


def items(spec: str) -> Iterator[Item]:
    """Each non-empty item of a comma-separated spec, split at its first colon."""
    for raw in spec.split(","):
        text = raw.strip()
        if not text:
            continue
        name, sep, arg = text.partition(":")
        yield Item(name.strip(), bool(sep), arg.strip(), text)


def whole_number(arg: str, minimum: int) -> int | None:
    """The argument as a whole number of at least ``minimum``; None when it is not one."""
    try:
        value = int(arg)
    except ValueError:
        return None
    return value if value >= minimum else None
