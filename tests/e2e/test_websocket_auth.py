"""Who may open the chat WebSocket: a user's access token by every transport the contract
names; never no token, a garbage or wrongly signed one, an expired one or a refresh token
(which are refused on the REST API and /auth/validate too)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest

from goldenpath.client.auth import Tokens
from goldenpath.protocol.contract import TRANSPORTS, Contract

from .helpers import JWT_SECRET_SETTING, Harness, Scenario, forged_token, token_problem

pytestmark = [pytest.mark.auth, pytest.mark.websocket]


@pytest.mark.golden_path
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_handshake_by_each_transport_establishes_and_serves_a_run(
    scenario: Scenario, account: Tokens, transport: str
) -> None:
    if transport not in Contract.from_settings(scenario.settings).auth_transports:
        pytest.skip(f"the profile's contract does not list the {transport} transport")

    async def body(h: Harness) -> None:
        contract = h.gp.contract
        async with h.connected(account, transport) as connection:
            data = connection.established.frame.get("data", {})
            assert data.get("connection_id"), f"{contract.connection_established} has no connection_id"
            assert data.get("golden_path_events") == list(contract.golden_path_events), (
                f"{contract.connection_established} lists {data.get('golden_path_events')}"
            )
            await h.complete(connection, f"Hello over the {transport} transport")

    scenario(body)


def test_websocket_without_token_is_refused(scenario: Scenario) -> None:
    async def body(h: Harness) -> str | None:
        return await h.ws_accepts(None)

    user = scenario(body)
    assert user is None, f"the platform accepted a WebSocket without a token (as user {user})"


def _garbage(account: Tokens) -> str:
    return "not-a-jwt." + secrets.token_urlsafe(24)


def _wrong_signature(account: Tokens) -> str:
    # The user's own claims, so a server that skips verification would accept it as that user.
    return forged_token(account.access_token, secrets.token_urlsafe(32))


INVALID_TOKENS: dict[str, Callable[[Tokens], str]] = {
    "garbage": _garbage,
    "wrong_signature": _wrong_signature,
}


@pytest.mark.parametrize("kind", sorted(INVALID_TOKENS))
def test_invalid_token_is_refused(scenario: Scenario, account: Tokens, kind: str) -> None:
    problem = token_problem(account.access_token)
    if kind == "wrong_signature" and problem:
        pytest.skip(f"cannot re-sign a token: {problem}")
    token = INVALID_TOKENS[kind](account)
    _assert_refused(scenario, token, f"an invalid token ({kind.replace('_', ' ')})")


def test_expired_token_is_refused(scenario: Scenario, account: Tokens) -> None:
    secret = scenario.settings.get(JWT_SECRET_SETTING)
    if not secret:
        pytest.skip(
            f"{JWT_SECRET_SETTING} is not in the profile's settings, so an expired token cannot "
            "be signed for this target (the secret of an autostarted reference stack is)"
        )
    problem = token_problem(account.access_token)
    if problem:
        pytest.skip(f"cannot sign an expired token: {problem}")

    async def body(h: Harness) -> str | None:
        return await h.ws_accepts(forged_token(account.access_token, secret))

    if scenario(body) is None:
        pytest.skip(
            f"{JWT_SECRET_SETTING} of the profile is not the target's signing key: a token "
            "signed with it and not expired is refused, so an expired one would prove nothing"
        )
    _assert_refused(scenario, forged_token(account.access_token, secret, expired=True), "an expired token")


def test_refresh_token_is_refused_as_access_token(scenario: Scenario, account: Tokens) -> None:
    assert account.refresh_token is not None
    _assert_refused(scenario, account.refresh_token, "a refresh token as an access token")


def _assert_refused(scenario: Scenario, token: str, what: str) -> None:
    async def body(h: Harness) -> list[str]:
        return await h.token_accepted_on(token, what)

    findings = scenario(body)
    assert not findings, f"the platform accepted {what}: " + "; ".join(findings)
