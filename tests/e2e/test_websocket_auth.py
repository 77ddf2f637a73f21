"""Who may open the chat WebSocket: a user's access token by every transport the contract
names; never no token, a garbage or wrongly signed one, an expired one, a refresh token, or
one with another issuer or audience than the deployment declares (which are refused on the
REST API and /auth/validate too)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest

from goldenpath.client.auth import Tokens
from goldenpath.core.settings import Settings
from goldenpath.output.reports import LayerReport
from goldenpath.protocol.contract import Contract
from goldenpath.testkit.support import current_settings, service_missing

from .helpers import DECLARED_CLAIMS, JWT_SECRET_SETTING, Harness, Scenario, forged_token, token_problem

pytestmark = [pytest.mark.auth, pytest.mark.websocket]

# Only the transports the profile's contract lists: a deployment may accept any subset (4.1).
PROFILE_TRANSPORTS = Contract.from_settings(current_settings()).auth_transports


@pytest.mark.golden_path
@pytest.mark.parametrize("transport", PROFILE_TRANSPORTS)
def test_handshake_by_each_transport_establishes_and_serves_a_run(
    scenario: Scenario, account: Tokens, transport: str
) -> None:
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
        service_missing("a re-signable access token", problem)
    token = INVALID_TOKENS[kind](account)
    _assert_refused(scenario, token, f"an invalid token ({kind.replace('_', ' ')})")


def _signing_key(settings: Settings, account: Tokens, what: str) -> str:
    """The profile's JWT_SECRET_KEY, when tokens can be signed with it; else not run."""
    secret = settings.get(JWT_SECRET_SETTING)
    if not secret:
        service_missing("the target's signing key", f"{JWT_SECRET_SETTING} is not in the profile's settings, "
                        f"so {what} cannot be signed for this target")  # fmt: skip
    problem = token_problem(account.access_token)
    if problem:
        service_missing("a re-signable access token", f"cannot sign {what}: {problem}")
    return secret


def test_expired_token_is_refused(scenario: Scenario, account: Tokens) -> None:
    secret = _signing_key(scenario.settings, account, "an expired token")

    async def body(h: Harness) -> str | None:
        return await h.ws_accepts(forged_token(account.access_token, secret))

    if scenario(body) is None:
        service_missing("the target's signing key",
                        f"{JWT_SECRET_SETTING} of the profile is not the target's signing key: a token "
                        "signed with it and not expired is refused, so an expired one would prove nothing")
    _assert_refused(scenario, forged_token(account.access_token, secret, expired=True), "an expired token")


def test_refresh_token_is_refused_as_access_token(scenario: Scenario, account: Tokens) -> None:
    assert account.refresh_token is not None
    _assert_refused(scenario, account.refresh_token, "a refresh token as an access token")


CLAIM_NAMES = {"iss": "issuer", "aud": "audience"}


@pytest.mark.parametrize("claim", sorted(DECLARED_CLAIMS))
def test_token_with_a_wrong_issuer_or_audience_is_refused(
    scenario: Scenario, gp_report: LayerReport, account: Tokens, claim: str
) -> None:
    """Where the deployment declares what it issues (JWT_ISSUER, JWT_AUDIENCE), an access token
    that is right in every way (signature, sub, email, type, times) but that claim is refused
    on the WebSocket, REST and /auth/validate (docs/protocol.md 2.2, 7.1)."""
    settings, name, setting = scenario.settings, CLAIM_NAMES[claim], DECLARED_CLAIMS[claim]
    declared = settings.get(setting)
    if not declared:
        gp_report.notes.append(f"not run: tokens with a wrong {name} were not tried, because the "
                               f"deployment declares no {name} ({setting} is not set)")  # fmt: skip
        service_missing(f"a declared token {name}",
                        f"the deployment declares no {name} ({setting} is not set), so a token with a "
                        f"wrong {name} cannot be told from a right one")
    secret = _signing_key(settings, account, f"a token with a wrong {name}")
    right = {key: value for key, value in
             ((c, settings.get(s)) for c, s in DECLARED_CLAIMS.items()) if value}  # fmt: skip
    wrong_value = f"goldenpath-wrong-{name}-{secrets.token_hex(4)}"
    control = forged_token(account.access_token, secret, claims=right)
    wrong = forged_token(account.access_token, secret, claims={**right, claim: wrong_value})
    what = f"a token with a wrong {name} ({claim}={wrong_value!r}, declared {declared!r})"

    async def body(h: Harness) -> list[str]:
        # Without this, a refusal below could be of the signature or another claim, not of the one varied.
        accepted_as = await h.ws_accepts(control)
        assert accepted_as == account.user_id, (
            f"a token signed with the profile's {JWT_SECRET_SETTING} and carrying its declared "
            f"{', '.join(f'{c}={v!r}' for c, v in right.items())} was "
            f"{'refused' if accepted_as is None else f'accepted as user {accepted_as}'}: the profile's "
            "JWT settings are not the target's, so refusing a wrong one would prove nothing"
        )
        return await h.token_accepted_on(wrong, what)

    findings = scenario(body)
    assert not findings, f"the platform accepted a token with a wrong {name}: " + "; ".join(findings)


def _assert_refused(scenario: Scenario, token: str, what: str) -> None:
    async def body(h: Harness) -> list[str]:
        return await h.token_accepted_on(token, what)

    findings = scenario(body)
    assert not findings, f"the platform accepted {what}: " + "; ".join(findings)
