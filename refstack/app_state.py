"""Typed access to the per-app state both apps keep on `app.state`.

Each app is built with its resources on `app.state` (`services`, and for the backend
`agent`); a handler reads them through `request.app.state` (or `websocket.app.state`).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from refstack.agent import Agent
from refstack.services import Services


def services_of(connection: HTTPConnection) -> Services:
    """The shared resources of this process (settings, store, tokens, hub, ...)."""
    services: Services = connection.app.state.services
    return services


def agent_of(connection: HTTPConnection) -> Agent:
    """The backend's agent, which produces each run's events."""
    agent: Agent = connection.app.state.agent
    return agent
