"""The backend: liveness, readiness, thread history over REST, and the /ws event stream."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from refstack import __version__
from refstack.agent import GOLDEN_PATH_EVENTS, Agent, Run
from refstack.clock import iso_ms
from refstack.health import NOT_CONFIGURED, probe
from refstack.hub import Connection
from refstack.services import Services
from refstack.store import Message, StoreUnavailable
from refstack.tokens import TokenError
from refstack.web import EXCEPTION_HANDLERS, ApiError, bearer_token, dependency_unavailable

SERVICE_NAME = "backend"
_MAX_ID = 256
_TITLE_LENGTH = 80


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def build_backend_app(services: Services) -> Starlette:
    settings = services.settings
    faults = settings.faults
    store = services.store
    tokens = services.tokens
    hub = services.hub
    analytics = services.analytics
    agent = Agent(hub, store, analytics, faults, settings.agent_tools, settings.step_delay_ms)

    # ------------------------------------------------------------------ REST

    def rest_user(request: Request) -> str:
        token = bearer_token(request)
        challenge = {"WWW-Authenticate": "Bearer"}
        if token is None:
            raise ApiError(401, "missing_token", "Authorization: Bearer <token> required",
                           headers=challenge)  # fmt: skip
        try:
            claims = tokens.decode(
                token,
                expect="access",
                allow_expired=faults.accept_expired,
                allow_other_type=faults.accept_refresh_as_access,
            )
        except TokenError as exc:
            raise ApiError(401, "invalid_token", str(exc), headers=challenge) from None
        return claims.user_id

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "service": SERVICE_NAME,
                "version": __version__,
                "uptime_seconds": services.uptime_seconds,
                "connections": hub.connection_count,
            }
        )

    async def ready(request: Request) -> Response:
        if faults.ready_lies:
            lie = {"status": "healthy", "connected": True, "response_time_ms": 0.1, "error": None}
            checks = {
                "database": lie,
                "redis": lie if settings.redis_url else NOT_CONFIGURED,
                "clickhouse": lie if analytics is not None else NOT_CONFIGURED,
            }
            return JSONResponse({"status": "healthy", "service": SERVICE_NAME, "checks": checks})

        async def not_configured() -> dict[str, Any]:
            return NOT_CONFIGURED

        database, redis, clickhouse = await asyncio.gather(
            probe(store.ping),
            probe(services.sessions.ping) if settings.redis_url else not_configured(),
            probe(analytics.ping) if analytics is not None else not_configured(),
        )
        # Only the database is required; an optional dependency that is configured but
        # down degrades the service (200) rather than taking it out of rotation (503).
        if database["status"] != "healthy":
            status, code = "unhealthy", 503
        elif "unhealthy" in (redis["status"], clickhouse["status"]):
            status, code = "degraded", 200
        else:
            status, code = "healthy", 200
        body = {
            "status": status,
            "service": SERVICE_NAME,
            "checks": {"database": database, "redis": redis, "clickhouse": clickhouse},
        }
        return JSONResponse(body, status_code=code)

    async def list_threads(request: Request) -> Response:
        user_id = rest_user(request)
        threads = await store.list_threads(user_id)
        return JSONResponse({"threads": [t.as_json() for t in threads]})

    async def thread_messages(request: Request) -> Response:
        user_id = rest_user(request)
        thread_id = request.path_params["thread_id"]
        owner = None if faults.idor else user_id
        messages = await store.thread_messages(thread_id, owner)
        if messages is None:
            # Never 403: another user's thread and a missing one must look the same.
            raise ApiError(404, "not_found", "thread not found")
        return JSONResponse({"thread_id": thread_id, "messages": [m.as_json() for m in messages]})

    # ------------------------------------------------------------------ WebSocket

    def ws_user(token: str | None) -> str | None:
        if token is None:
            return f"anonymous-{uuid.uuid4().hex[:12]}" if faults.ws_no_auth else None
        try:
            return tokens.decode(
                token,
                expect="access",
                allow_expired=faults.accept_expired,
                allow_other_type=faults.accept_refresh_as_access,
            ).user_id
        except TokenError:
            if faults.ws_invalid_token:
                return tokens.decode_unverified(token).user_id
            return None

    async def send_error(conn: Connection, code: str, message: str, message_id: str | None) -> None:
        error: dict[str, Any] = {
            "type": "error_message",
            "error_code": code,
            "error_message": message,
            "timestamp": iso_ms(),
        }
        if message_id is not None:
            error["message_id"] = message_id
        await conn.send(_dumps(error))

    async def ws_endpoint(websocket: WebSocket) -> None:
        token, subprotocol = _ws_credentials(websocket)
        user_id = ws_user(token)
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
        try:
            if faults.slow_connect_ms:
                await asyncio.sleep(faults.slow_connect_ms / 1000)
            if "connection_established" not in faults.drop:
                epoch = time.time()
                established = {
                    "type": "connection_established",
                    "data": {
                        "user_id": user_id,
                        "connection_id": conn.connection_id,
                        "golden_path_events": list(GOLDEN_PATH_EVENTS),
                        "protocol_version": 1,
                        "server": f"refstack/{__version__}",
                    },
                    "timestamp": iso_ms(epoch),
                }
                await conn.send(_dumps(established))
                if analytics is not None:
                    latency = (time.monotonic() - accepted) * 1000
                    analytics.record(epoch, "connection_established", user_id, "", "", "", "", latency)
            # Registered only now, so that connection_established is always the first frame
            # even when another socket of the same user has a run in flight.
            hub.add(conn)
            await receive_loop(websocket, conn)
        finally:
            hub.remove(conn)

    async def receive_loop(websocket: WebSocket, conn: Connection) -> None:
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
            try:
                data = json.loads(text)
            except ValueError:
                if faults.json_close:
                    await websocket.close(code=1003)
                    return
                await send_error(conn, "JSON_PARSE_ERROR", "message is not valid JSON", None)
                continue
            kind = data.get("type") if isinstance(data, dict) else None
            if kind == "user_message":
                await user_message(conn, data, received)
            elif kind == "ping":
                await conn.send(_dumps({"type": "pong", "timestamp": iso_ms()}))
            else:
                got = f"type {kind!r}" if isinstance(data, dict) else "JSON that is not an object"
                explanation = f"expected a user_message or a ping, got {got}"
                await send_error(conn, "UNKNOWN_MESSAGE_TYPE", explanation, None)

    async def user_message(conn: Connection, data: dict[str, Any], received: float) -> None:
        payload = data.get("payload")
        if not isinstance(payload, dict):
            await send_error(conn, "VALIDATION_ERROR", "payload must be an object", None)
            return
        message_id = payload.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            message_id = str(uuid.uuid4())
        elif len(message_id) > _MAX_ID:
            await send_error(conn, "VALIDATION_ERROR", f"message_id longer than {_MAX_ID}", None)
            return
        text = payload.get("text")
        if not isinstance(text, str) or not text.strip():
            await send_error(conn, "VALIDATION_ERROR", "payload.text is required", message_id)
            return
        if len(text) > settings.max_text:
            await send_error(
                conn, "VALIDATION_ERROR", f"payload.text exceeds {settings.max_text} characters", message_id
            )
            return
        thread_id = payload.get("thread_id")
        if thread_id is not None and (not isinstance(thread_id, str) or len(thread_id) > _MAX_ID):
            await send_error(conn, "VALIDATION_ERROR", "unknown thread_id", message_id)
            return
        # The run goes on in the background so that pings and further messages are
        # answered while it streams.
        hub.spawn(start_run(conn, text, thread_id, message_id, received))

    async def start_run(
        conn: Connection, text: str, thread_id: str | None, message_id: str, received: float
    ) -> None:
        run_id = str(uuid.uuid4())
        title = " ".join(text.split())[:_TITLE_LENGTH]
        try:
            stored_thread = await store.start_turn(
                conn.user_id, thread_id, title, Message("user", text, message_id, run_id, time.time())
            )
        except StoreUnavailable as exc:
            run = Run(run_id, thread_id or "", conn.user_id, message_id, text, received)
            await agent.fail(run, f"storage unavailable: {exc}")
            return
        if stored_thread is None:
            # Unknown and someone else's look the same, so thread ids cannot be probed.
            await send_error(conn, "VALIDATION_ERROR", "unknown thread_id", message_id)
            return
        await agent.run(Run(run_id, stored_thread, conn.user_id, message_id, text, received))

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/api/health/ready", ready, methods=["GET"]),
        Route("/api/threads", list_threads, methods=["GET"]),
        Route("/api/threads/{thread_id}/messages", thread_messages, methods=["GET"]),
        WebSocketRoute("/ws", ws_endpoint),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={**EXCEPTION_HANDLERS, StoreUnavailable: dependency_unavailable},
    )


def _ws_credentials(websocket: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to echo): subprotocol jwt.<token>, then Bearer header, then ?token=."""
    for offered in websocket.scope.get("subprotocols") or ():
        if offered.startswith("jwt.") and len(offered) > 4:
            return offered[4:], offered
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), None
    query_token = websocket.query_params.get("token")
    return (query_token or None), None
