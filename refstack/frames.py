"""Server frames other than run events: connection_established, pong and error_message.

Run events are built by the agent; the other frames a socket receives are built here, with
the same timestamp spelling and the same extra fields when a variant asks for them.
"""

from __future__ import annotations

import json
from typing import Any

from refstack import __version__
from refstack.agent import GOLDEN_PATH_EVENTS
from refstack.variants import Variants


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def established_frame(variants: Variants, user_id: str, connection_id: str, epoch: float) -> str:
    frame: dict[str, Any] = {
        "type": "connection_established",
        "data": {
            "user_id": user_id,
            "connection_id": connection_id,
            "golden_path_events": list(GOLDEN_PATH_EVENTS),
            "protocol_version": 1,
            "server": f"refstack/{__version__}",
        },
        "timestamp": variants.stamp(epoch),
    }
    variants.decorate(frame)
    return dumps(frame)


def pong_frame(variants: Variants) -> str:
    frame: dict[str, Any] = {"type": "pong", "timestamp": variants.timestamp()}
    variants.decorate(frame)
    return dumps(frame)


def error_frame(variants: Variants, code: str, message: str, message_id: str | None) -> str:
    """An error_message; it names the `message_id` once it is known, unless the variant
    error_no_message_id leaves the key out altogether."""
    frame: dict[str, Any] = {
        "type": "error_message",
        "error_code": code,
        "error_message": message,
        "timestamp": variants.timestamp(),
    }
    if message_id is not None and not variants.error_no_message_id:
        frame["message_id"] = message_id
    variants.decorate(frame)
    return dumps(frame)
