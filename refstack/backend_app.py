"""The backend app: its routing table and its state. The handlers live one module per concern:
routes_health (liveness, readiness), routes_threads (REST history), ws_endpoint and
ws_messages (the /ws event stream)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from refstack.agent import Agent
from refstack.routes_health import backend_health, backend_ready
from refstack.routes_threads import list_threads, thread_messages
from refstack.services import Services
from refstack.store import StoreUnavailable
from refstack.web import EXCEPTION_HANDLERS, dependency_unavailable
from refstack.ws_endpoint import ws_endpoint

ROUTES = [
    Route("/health", backend_health, methods=["GET"]),
    Route("/api/health/ready", backend_ready, methods=["GET"]),
    Route("/api/threads", list_threads, methods=["GET"]),
    Route("/api/threads/{thread_id}/messages", thread_messages, methods=["GET"]),
    WebSocketRoute("/ws", ws_endpoint),
]


def build_backend_app(services: Services) -> Starlette:
    settings = services.settings
    app = Starlette(
        routes=ROUTES,
        exception_handlers={**EXCEPTION_HANDLERS, StoreUnavailable: dependency_unavailable},
    )
    app.state.services = services
    app.state.agent = Agent(
        services.hub,
        services.store,
        services.analytics,
        settings.faults,
        settings.variants,
        settings.agent_tools,
        settings.step_delay_ms,
    )
    return app
