"""WebSocket authentication: the three transports, and refusal of every unusable token."""

from __future__ import annotations

import pytest

from .wire import (
    TRANSPORTS,
    UNUSABLE,
    Target,
    Transport,
    attempt,
    bypass_user,
    greeting,
    run,
    unusable_tokens,
)

pytestmark = [pytest.mark.websocket, pytest.mark.auth]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_each_transport_authenticates(target: Target, transport: Transport) -> None:
    user = bypass_user(target)
    first, subprotocol = run(greeting(target, user.access_token, transport))
    assert first["type"] == "connection_established"
    assert first["data"]["user_id"] == user.user_id
    if transport == "subprotocol":
        assert subprotocol == f"jwt.{user.access_token}", "the server must select and echo jwt.<token>"


def test_missing_token_is_refused(target: Target) -> None:
    outcome = run(attempt(target, None))
    assert outcome.refused, outcome


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", UNUSABLE)
def test_unusable_token_is_refused(target: Target, kind: str, transport: Transport) -> None:
    token = unusable_tokens(bypass_user(target), target.jwt_secret)[kind]
    outcome = run(attempt(target, token, transport))
    assert outcome.refused, outcome
