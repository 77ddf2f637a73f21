"""The auth service, endpoint by endpoint, including every refusal the protocol names."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from .stacks import MAX_BODY_BYTES, launched
from .wire import (
    UNUSABLE,
    WRONG_SECRET,
    Target,
    User,
    auth_post,
    bypass_user,
    claims_of,
    expired_copy,
    reissued,
    unique_email,
    unusable_tokens,
    user_from,
)

pytestmark = pytest.mark.auth

PASSWORD = "correct horse battery staple"
ENDPOINTS = (
    "/auth/register",
    "/auth/login",
    "/auth/refresh",
    "/auth/validate",
    "/auth/logout",
    "/auth/e2e/test-auth",
)
MALFORMED = {
    "truncated": b'{"email": ',
    "form-encoded": b"email=a%40b.test&password=x",
    "array": b"[]",
    "string": b'"hello"',
    "null": b"null",
    "empty": b"",
    "no-fields": b"{}",
    "not-utf8": b'{"email": "\xff\xfe"}',
}


def registered(target: Target) -> tuple[str, str]:
    email = unique_email("reg")
    answer = auth_post(target, "/auth/register", {"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return email, answer.json()["user_id"]


def logged_in(target: Target, email: str) -> User:
    answer = auth_post(target, "/auth/login", {"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return user_from(answer.json(), email)


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_body_is_422(target: Target, path: str, body: bytes) -> None:
    # The bypass key is right, so that the e2e endpoint gets as far as reading the body.
    answer = auth_post(target, path, content=body, headers={"X-E2E-Bypass-Key": target.e2e_key or ""})
    assert answer.status_code == 422, answer.text


@pytest.mark.parametrize("path", ENDPOINTS)
def test_oversized_body_is_refused(target: Target, path: str) -> None:
    padding = "x" * (MAX_BODY_BYTES + 1)
    body = {"email": unique_email(), "password": padding, "token": padding, "refresh_token": padding}
    answer = auth_post(target, path, body, headers={"X-E2E-Bypass-Key": target.e2e_key or ""})
    assert answer.status_code == 413, answer.text
    assert auth_post(target, "/auth/validate", {"token": "x"}).status_code == 401, "the service must go on"


@pytest.mark.parametrize(
    "body",
    [
        {"password": PASSWORD},
        {"email": "a@b.test"},
        {"email": 42, "password": PASSWORD},
        {"email": "a@b.test", "password": None},
        {"email": ["a@b.test"], "password": PASSWORD},
    ],
    ids=["no-email", "no-password", "email-number", "password-null", "email-list"],
)
@pytest.mark.parametrize("path", ["/auth/register", "/auth/login"])
def test_missing_or_mistyped_credentials_are_422(target: Target, path: str, body: dict[str, object]) -> None:
    assert auth_post(target, path, body).status_code == 422


def test_register_then_duplicate(target: Target) -> None:
    email = unique_email("dup")
    first = auth_post(target, "/auth/register", {"email": email, "password": PASSWORD})
    assert first.status_code == 201, first.text
    assert first.json()["email"] == email
    assert isinstance(first.json()["user_id"], str)
    assert first.json()["user_id"]
    again = auth_post(target, "/auth/register", {"email": email, "password": "another password"})
    assert again.status_code == 409, again.text


def test_login_returns_the_token_pair(target: Target) -> None:
    email, user_id = registered(target)
    answer = auth_post(target, "/auth/login", {"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["user_id"] == user_id
    assert isinstance(body["expires_in"], int)
    assert body["expires_in"] > 0
    access, refresh = claims_of(body["access_token"]), claims_of(body["refresh_token"])
    for claims, kind in ((access, "access"), (refresh, "refresh")):
        assert {"sub", "email", "type", "iat", "exp", "jti", "iss", "aud"} <= claims.keys(), claims
        assert (claims["sub"], claims["email"], claims["type"]) == (user_id, email, kind)
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    assert access["jti"] != refresh["jti"]
    assert access["exp"] - access["iat"] < refresh["exp"] - refresh["iat"], "access tokens live shorter"


@pytest.mark.parametrize("case", ["wrong-password", "unknown-email"])
def test_login_refuses_bad_credentials(target: Target, case: str) -> None:
    email, _ = registered(target)
    attempt = (
        {"email": email, "password": "wrong password"}
        if case == "wrong-password"
        else {"email": unique_email("nobody"), "password": PASSWORD}
    )
    assert auth_post(target, "/auth/login", attempt).status_code == 401


def test_validate_accepts_an_access_token(target: Target) -> None:
    email, user_id = registered(target)
    user = logged_in(target, email)
    answer = auth_post(target, "/auth/validate", {"token": user.access_token})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["valid"] is True
    assert (body["user_id"], body["email"]) == (user_id, email)
    assert isinstance(body["permissions"], list)
    assert body["expires_at"]


@pytest.mark.parametrize("kind", UNUSABLE)
def test_validate_refuses_anything_but_a_live_access_token(target: Target, kind: str) -> None:
    token = unusable_tokens(bypass_user(target), target.jwt_secret)[kind]
    answer = auth_post(target, "/auth/validate", {"token": token})
    assert answer.status_code == 401, answer.text
    assert answer.json()["valid"] is False
    assert answer.json()["error"]


def test_refresh_issues_a_working_pair(target: Target) -> None:
    user = bypass_user(target)
    answer = auth_post(target, "/auth/refresh", {"refresh_token": user.refresh_token})
    assert answer.status_code == 200, answer.text
    fresh = user_from(answer.json(), user.email)
    assert fresh.user_id == user.user_id
    assert claims_of(fresh.refresh_token)["type"] == "refresh"
    assert auth_post(target, "/auth/validate", {"token": fresh.access_token}).status_code == 200


@pytest.mark.parametrize("kind", ["access", "expired", "bad-signature", "garbage"])
def test_refresh_refuses_anything_but_a_live_refresh_token(target: Target, kind: str) -> None:
    user = bypass_user(target)
    tokens = {
        "access": user.access_token,
        "expired": expired_copy(user.refresh_token, target.jwt_secret),
        "bad-signature": reissued(user.refresh_token, WRONG_SECRET),
        "garbage": "not.a.jwt",
    }
    answer = auth_post(target, "/auth/refresh", {"refresh_token": tokens[kind]})
    assert answer.status_code == 401, answer.text


def test_logout_revokes_the_refresh_token(target: Target) -> None:
    user = bypass_user(target)
    answer = auth_post(target, "/auth/logout", {"refresh_token": user.refresh_token})
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    assert auth_post(target, "/auth/refresh", {"refresh_token": user.refresh_token}).status_code == 401
    other = bypass_user(target, user.email)
    assert auth_post(target, "/auth/refresh", {"refresh_token": other.refresh_token}).status_code == 200, (
        "logging out one session must not log out the user's other sessions"
    )


def test_logout_with_an_access_token_revokes_nothing(target: Target) -> None:
    user = bypass_user(target)
    answer = auth_post(target, "/auth/logout", {"refresh_token": user.access_token})
    assert 400 <= answer.status_code < 500, answer.text
    assert auth_post(target, "/auth/refresh", {"refresh_token": user.refresh_token}).status_code == 200


def test_e2e_bypass_creates_the_user_once(target: Target) -> None:
    email = unique_email("e2e")
    first, second = bypass_user(target, email), bypass_user(target, email)
    assert first.user_id == second.user_id
    validated = auth_post(target, "/auth/validate", {"token": first.access_token})
    assert validated.status_code == 200, validated.text
    assert validated.json()["email"] == email


@pytest.mark.parametrize("key", ["wrong-key", None], ids=["wrong-key", "no-header"])
def test_e2e_bypass_refuses_a_wrong_or_missing_key(target: Target, key: str | None) -> None:
    headers = {"X-E2E-Bypass-Key": key} if key else {}
    answer = auth_post(target, "/auth/e2e/test-auth", {"email": unique_email()}, headers=headers)
    assert answer.status_code == 403, answer.text


def test_e2e_bypass_is_closed_when_no_key_is_configured(state_dir: Path) -> None:
    with launched(state_dir, env={"E2E_OAUTH_SIMULATION_KEY": ""}) as target:
        for key in ("", "anything", "goldenpath-integration-e2e-bypass-key"):
            answer = auth_post(
                target, "/auth/e2e/test-auth", {"email": unique_email()}, headers={"X-E2E-Bypass-Key": key}
            )
            assert answer.status_code == 403, (key, answer.text)
