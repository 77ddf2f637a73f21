"""Baseline for bench/refstack_fanout.py: a bare `websockets` server, no auth, no storage.

For every text frame it receives it sends five frames shaped like the golden path's
events (same fields, same size), so the two servers are compared frame for frame.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def handle(ws: ServerConnection) -> None:
    await ws.send(json.dumps({"type": "connection_established", "data": {}, "timestamp": now()}))
    async for raw in ws:
        message = json.loads(raw)
        run_id = uuid.uuid4().hex
        for kind in EVENTS:
            event = {"type": kind, "run_id": run_id, "thread_id": "t", "user_id": "u",
                     "message_id": message.get("payload", {}).get("message_id"),
                     "agent_name": "bench", "timestamp": now(), "data": {"step": kind}}
            if kind.startswith("tool_"):
                event["tool_name"] = "search"
            await ws.send(json.dumps(event))


def health(connection: ServerConnection, request: Request) -> Response | None:
    # goldenpath.core.stack waits for an HTTP 200 on /health, as it does for refstack.
    if request.path == "/health":
        return connection.respond(HTTPStatus.OK, "ok\n")
    return None


async def main(port: int) -> None:
    async with serve(handle, "127.0.0.1", port, max_queue=None, process_request=health) as server:
        print(f"bare server on {port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
