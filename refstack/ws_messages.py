"""What the client says on /ws: ping, user_message (validated, then a run), or an error.

Errors go only to the socket concerned and never close it; a valid user_message starts a
run in the background, so pings and further messages are answered while it streams.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from refstack.agent import Agent, Run
from refstack.frames import error_frame, pong_frame
from refstack.hub import Connection
from refstack.services import Services
from refstack.store import Message, StoreUnavailable

MAX_ID = 256
TITLE_LENGTH = 80


async def handle_frame(
    services: Services, agent: Agent, conn: Connection, text: str, received: float
) -> bool:
    """Answer one client frame; False when the socket has been closed (fault json_close)."""
    try:
        data = json.loads(text)
    except ValueError:
        if services.settings.faults.json_close:
            await conn.websocket.close(code=1003)
            return False
        await send_error(services, conn, "JSON_PARSE_ERROR", "message is not valid JSON", None)
        return True
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "user_message":
        await user_message(services, agent, conn, data, received)
    elif kind == "ping":
        await conn.send(pong_frame(services.settings.variants))
    else:
        got = f"type {kind!r}" if isinstance(data, dict) else "JSON that is not an object"
        explanation = f"expected a user_message or a ping, got {got}"
        await send_error(services, conn, "UNKNOWN_MESSAGE_TYPE", explanation, None)
    return True


async def send_error(
    services: Services, conn: Connection, code: str, message: str, message_id: str | None
) -> None:
    await conn.send(error_frame(services.settings.variants, code, message, message_id))


async def user_message(
    services: Services, agent: Agent, conn: Connection, data: dict[str, Any], received: float
) -> None:
    """Validate a user_message; a valid one starts its run in the background."""
    payload = data.get("payload")
    if not isinstance(payload, dict):
        await send_error(services, conn, "VALIDATION_ERROR", "payload must be an object", None)
        return
    message_id = payload.get("message_id")
    if not isinstance(message_id, str) or not message_id:
        message_id = str(uuid.uuid4())
    elif len(message_id) > MAX_ID:
        await send_error(services, conn, "VALIDATION_ERROR", f"message_id longer than {MAX_ID}", None)
        return
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        await send_error(services, conn, "VALIDATION_ERROR", "payload.text is required", message_id)
        return
    max_text = services.settings.max_text
    if len(text) > max_text:
        explanation = f"payload.text exceeds {max_text} characters"
        await send_error(services, conn, "VALIDATION_ERROR", explanation, message_id)
        return
    thread_id = payload.get("thread_id")
    if thread_id is not None and (not isinstance(thread_id, str) or len(thread_id) > MAX_ID):
        await send_error(services, conn, "VALIDATION_ERROR", "unknown thread_id", message_id)
        return
    # The run goes on in the background so that pings and further messages are
    # answered while it streams.
    services.hub.spawn(start_run(services, agent, conn, text, thread_id, message_id, received))


async def start_run(
    services: Services,
    agent: Agent,
    conn: Connection,
    text: str,
    thread_id: str | None,
    message_id: str,
    received: float,
) -> None:
    """Store the user message (creating the thread if needed), then let the agent run."""
    run_id = str(uuid.uuid4())
    title = " ".join(text.split())[:TITLE_LENGTH]
    origin = conn.connection_id
    try:
        stored_thread = await services.store.start_turn(
            conn.user_id, thread_id, title, Message("user", text, message_id, run_id, time.time())
        )
    except StoreUnavailable as exc:
        run = Run(run_id, thread_id or "", conn.user_id, message_id, text, received, origin)
        await agent.fail(run, f"storage unavailable: {exc}")
        return
    if stored_thread is None:
        # Unknown and someone else's look the same, so thread ids cannot be probed.
        await send_error(services, conn, "VALIDATION_ERROR", "unknown thread_id", message_id)
        return
    await agent.run(Run(run_id, stored_thread, conn.user_id, message_id, text, received, origin))
