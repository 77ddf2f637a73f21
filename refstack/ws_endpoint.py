"""WebSocket /ws: authentication before the upgrade, connection_established, the receive loop.

What each client frame means is ws_messages' business; this module owns the socket's life.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from starlette.websockets import WebSocket, WebSocketDisconnect

from refstack.app_state import agent_of, services_of
from refstack.frames import established_frame
from refstack.hub import Connection
from refstack.services import Services
from refstack.tokens import TokenError
from refstack.ws_messages import handle_frame


async def ws_endpoint(websocket: WebSocket) -> None:
    services = services_of(websocket)
    faults = services.settings.faults
    token, subprotocol = ws_credentials(websocket)
    user_id = ws_user(services, token)
    if user_id is None:
        # Before accept, uvicorn turns this into an HTTP 403 and sends nothing else.
        await websocket.close(code=1008)
        return
    try:
        await websocket.accept(subprotocol=subprotocol)
    except WebSocketDisconnect:
        return  # the client left during the handshake; nothing to clean up
    accepted = time.monotonic()
    conn = Connection(str(uuid.uuid4()), user_id, websocket)
    hub = services.hub
    try:
        if faults.slow_connect_ms:
            await asyncio.sleep(faults.slow_connect_ms / 1000)
        if "connection_established" not in faults.drop:
            variants = services.settings.variants
            epoch = variants.now()
            await conn.send(established_frame(variants, user_id, conn.connection_id, epoch))
            analytics = services.analytics
            if analytics is not None:
                latency = (time.monotonic() - accepted) * 1000
                analytics.record(epoch, "connection_established", user_id, "", "", "", "", latency)
        # Registered only now, so that connection_established is always the first frame
        # even when another socket of the same user has a run in flight.
        hub.add(conn)
        await receive_loop(websocket, conn, services)
    finally:
        hub.remove(conn)


async def receive_loop(websocket: WebSocket, conn: Connection, services: Services) -> None:
    agent = agent_of(websocket)
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        received = time.monotonic()
        text = message.get("text")
        if text is None:
            raw = message.get("bytes") or b""
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = ""
        if not await handle_frame(services, agent, conn, text, received):
            return


def ws_user(services: Services, token: str | None) -> str | None:
    """The user a WebSocket authenticates as, or None to refuse it."""
    faults = services.settings.faults
    if token is None:
        return f"anonymous-{uuid.uuid4().hex[:12]}" if faults.ws_no_auth else None
    tokens = services.tokens
    try:
        return tokens.decode_access(token).user_id
    except TokenError:
        if faults.ws_invalid_token:
            return tokens.decode_unverified(token).user_id
        return None


def ws_credentials(websocket: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to echo): subprotocol jwt.<token>, then Bearer header, then ?token=."""
    for offered in websocket.scope.get("subprotocols") or ():
        if offered.startswith("jwt.") and len(offered) > 4:
            return offered[4:], offered
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), None
    query_token = websocket.query_params.get("token")
    return (query_token or None), None
