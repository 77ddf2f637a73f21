"""The auth service app: its routing table and its state. The handlers live in routes_auth
(register, login, refresh, validate, logout, E2E bypass) and routes_health."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from refstack.routes_auth import e2e_test_auth, login, logout, refresh, register, validate
from refstack.routes_health import auth_health, auth_ready
from refstack.services import Services
from refstack.sessions import SessionsUnavailable
from refstack.store import StoreUnavailable
from refstack.web import EXCEPTION_HANDLERS, dependency_unavailable

ROUTES = [
    Route("/health", auth_health, methods=["GET"]),
    Route("/health/ready", auth_ready, methods=["GET"]),
    Route("/auth/register", register, methods=["POST"]),
    Route("/auth/login", login, methods=["POST"]),
    Route("/auth/refresh", refresh, methods=["POST"]),
    Route("/auth/validate", validate, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
]
# In production the bypass does not exist at all: 404, like any unknown path.
E2E_ROUTE = Route("/auth/e2e/test-auth", e2e_test_auth, methods=["POST"])


def build_auth_app(services: Services) -> Starlette:
    routes = ROUTES if services.settings.production else [*ROUTES, E2E_ROUTE]
    app = Starlette(
        routes=routes,
        exception_handlers={
            **EXCEPTION_HANDLERS,
            StoreUnavailable: dependency_unavailable,
            SessionsUnavailable: dependency_unavailable,
        },
    )
    app.state.services = services
    return app
