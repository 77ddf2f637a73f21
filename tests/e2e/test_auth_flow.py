"""The auth service as a new user meets it: register, log in, validate, refresh, log out,
and the E2E bypass that test automation logs in with."""

from __future__ import annotations

import pytest

from goldenpath.core.settings import Settings
from goldenpath.protocol.contract import E2E_KEY_SETTING
from goldenpath.testkit.plugin import user_email
from goldenpath.testkit.support import service_missing

from .helpers import LAYER, Harness, Scenario, error_status

pytestmark = [pytest.mark.auth, pytest.mark.golden_path]


def test_new_user_registers_logs_in_refreshes_and_logs_out(scenario: Scenario) -> None:
    async def body(h: Harness) -> None:
        tokens = await h.new_account()
        valid = await h.gp.auth.validate(tokens.access_token)
        assert valid.get("valid") is True, f"/auth/validate of a fresh access token answered {valid}"
        assert valid.get("user_id") == tokens.user_id, "/auth/validate names another user than login did"
        assert str(valid.get("email", "")).lower() == str(tokens.email).lower()

        assert tokens.refresh_token is not None
        refreshed = await h.gp.auth.refresh(tokens.refresh_token)
        again = await h.gp.auth.validate(refreshed.access_token)
        assert again.get("user_id") == tokens.user_id, "a refreshed access token belongs to another user"

        await h.gp.auth.logout(tokens.refresh_token)
        status = await error_status(h.gp.auth.refresh(tokens.refresh_token))
        assert status is not None, "the refresh token was still accepted after logout (it must be revoked)"
        assert status == 401, f"refresh after logout answered {status}, expected 401"

    scenario(body)


def test_registering_an_existing_email_conflicts(scenario: Scenario) -> None:
    async def body(h: Harness) -> int | None:
        tokens = await h.new_account()
        return await error_status(h.gp.auth.register(str(tokens.email), "another-password"))

    status = scenario(body)
    assert status == 409, f"registering an existing email answered {status or 'success'}, expected 409"


def test_wrong_password_is_refused(scenario: Scenario) -> None:
    async def body(h: Harness) -> int | None:
        tokens = await h.new_account()
        return await error_status(h.gp.auth.login(str(tokens.email), "not-the-password"))

    status = scenario(body)
    assert status is not None, "login with a wrong password was accepted"
    assert status == 401, f"login with a wrong password answered {status}, expected 401"


def test_e2e_bypass_logs_in_the_same_user_for_the_same_email(
    scenario: Scenario, gp_settings: Settings
) -> None:
    if not gp_settings.get(E2E_KEY_SETTING):
        service_missing("the E2E bypass", f"{E2E_KEY_SETTING} is not set for this profile: "
                        "the e2e bypass cannot be exercised")  # fmt: skip
    email = user_email(LAYER)

    async def body(h: Harness) -> None:
        first = await h.gp.auth.e2e_login(email)
        second = await h.gp.auth.e2e_login(email)
        assert first.user_id, "the e2e bypass answered without a user_id"
        assert first.user_id == second.user_id, f"the e2e bypass gave {email} two users"
        valid = await h.gp.auth.validate(first.access_token)
        assert str(valid.get("email", "")).lower() == email.lower(), "a bypass token names another email"
        assert await h.ws_accepts(first.access_token) == first.user_id, (
            "a WebSocket with a bypass token is not the bypass user's"
        )
        status = await error_status(h.gp.auth.e2e_login(email, key="not-the-bypass-key"))
        assert status is not None, "the e2e bypass issued tokens for a wrong key"
        assert status == 403, f"a wrong bypass key answered {status}, expected 403"

    scenario(body)
