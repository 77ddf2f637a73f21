"""Test users of the auth service: register, log in (password or e2e bypass key), refresh,
validate, log out. One shared ``httpx.AsyncClient`` serves any number of users.

Every call is bounded by one timeout for the whole exchange (httpx's own timeouts are per
phase, so a server trickling bytes could otherwise hold a call far longer). Failures raise
the client's exceptions (goldenpath.core.errors) with one line that never holds a password,
token or bypass key.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from goldenpath.core.errors import (
    AuthRefused,
    GoldenPathError,
    GoldenPathTimeout,
    HttpStatusError,
    ProtocolError,
    Unreachable,
)
from goldenpath.core.masking import mask_text, mask_url
from goldenpath.core.settings import Settings
from goldenpath.protocol.contract import E2E_KEY_HEADER, E2E_KEY_SETTING

_BODY_SHOWN = 160


@dataclass(frozen=True)
class Tokens:
    """A token pair; the tokens themselves are kept out of repr."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    user_id: str | None = None
    email: str | None = None
    expires_in: float | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(t for t in (self.access_token, self.refresh_token) if t)


def new_http_client(*, max_connections: int = 1000) -> httpx.AsyncClient:
    """An AsyncClient sized for many concurrent test users (httpx's default pool is 100)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(limits=limits)


class AuthClient:
    def __init__(self, base_url: str, http: httpx.AsyncClient, *, timeout_s: float = 10.0,
                 e2e_key: str | None = None) -> None:  # fmt: skip
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = http
        self._e2e_key = e2e_key

    @classmethod
    def from_settings(cls, settings: Settings, http: httpx.AsyncClient) -> AuthClient:
        return cls(settings.auth_service_url, http, timeout_s=settings.timeout_s,
                   e2e_key=settings.get(E2E_KEY_SETTING))  # fmt: skip

    async def register(self, email: str, password: str) -> str:
        """The new user's id; HttpStatusError with status 409 when the email exists."""
        body = await self.call("POST", "/auth/register", {"email": email, "password": password},
                               expect=(201, 200), secrets=(password,))  # fmt: skip
        return _text_field(body, "user_id", f"POST {self.base_url}/auth/register")

    async def login(self, email: str, password: str) -> Tokens:
        body = await self.call("POST", "/auth/login", {"email": email, "password": password},
                               expect=(200,), secrets=(password,))  # fmt: skip
        return self._tokens(body, "/auth/login", email)

    async def register_or_login(self, email: str, password: str) -> Tokens:
        """Log in, registering the user first; an existing user (409) is fine."""
        try:
            await self.register(email, password)
        except HttpStatusError as exc:
            if exc.status != 409:
                raise
        return await self.login(email, password)

    async def e2e_login(self, email: str, key: str | None = None) -> Tokens:
        """Tokens by the E2E bypass key (the setting's, unless given)."""
        key = key if key is not None else self._e2e_key
        if not key:
            raise GoldenPathError(f"{E2E_KEY_SETTING} is not set: the e2e bypass login needs it")
        body = await self.call("POST", "/auth/e2e/test-auth", {"email": email}, expect=(200,),
                               headers={E2E_KEY_HEADER: key}, secrets=(key,))  # fmt: skip
        return self._tokens(body, "/auth/e2e/test-auth", email)

    async def new_test_user(self, email: str) -> Tokens:
        """A test user: by the E2E bypass when a key is configured, else registered with a
        password made up here (a staging without the key still has registration)."""
        if self._e2e_key:
            return await self.e2e_login(email)
        return await self.register_or_login(email, secrets.token_urlsafe(24))

    async def refresh(self, refresh_token: str) -> Tokens:
        body = await self.call("POST", "/auth/refresh", {"refresh_token": refresh_token},
                               expect=(200,), secrets=(refresh_token,))  # fmt: skip
        # Refresh need not rotate: an answer without a refresh token keeps the old one.
        return self._tokens(body, "/auth/refresh", None, keep_refresh=refresh_token)

    async def validate(self, token: str) -> dict[str, Any]:
        """The 200 answer ({"valid": true, "user_id", ...}); AuthRefused on 401."""
        return await self.call("POST", "/auth/validate", {"token": token}, expect=(200,), secrets=(token,))

    async def logout(self, refresh_token: str) -> None:
        await self.call("POST", "/auth/logout", {"refresh_token": refresh_token},
                        expect=(204, 200), secrets=(refresh_token,))  # fmt: skip

    async def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        expect: Collection[int],
        headers: Mapping[str, str] | None = None,
        secrets: Collection[str] = (),
    ) -> dict[str, Any]:
        """One bounded request; the decoded JSON object of an expected answer ({} when empty)."""
        response = await self.request(method, path, body, headers=headers, secrets=secrets)
        what = f"{method} {mask_url(self.base_url + path)}"
        shown = mask_text(response.text[:_BODY_SHOWN], secrets).replace("\n", " ")
        if response.status_code not in expect:
            if response.status_code in (401, 403):
                raise AuthRefused(f"{what} answered {response.status_code}: {shown}",
                                  status=response.status_code)  # fmt: skip
            hint = " (the auth service runs in production mode)" if path.startswith("/auth/e2e") and (
                response.status_code == 404) else ""
            raise HttpStatusError(f"{what} answered {response.status_code}{hint}: {shown}",
                                  status=response.status_code, body=shown)  # fmt: skip
        if not response.content:
            return {}
        try:
            decoded = response.json()
        except ValueError:
            raise ProtocolError(f"{what} answered {response.status_code} with non-JSON: {shown!r}") from None
        if not isinstance(decoded, dict):
            raise ProtocolError(f"{what} answered {response.status_code} with JSON that is not an object")
        return decoded

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        secrets: Collection[str] = (),
    ) -> httpx.Response:
        """The raw answer, any status, for tests of the auth service's error answers."""
        url = self.base_url + path
        what = f"{method} {mask_url(url)}"
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._http.request(method, url, json=body, headers=headers,
                                                timeout=self.timeout_s)  # fmt: skip
        except (TimeoutError, httpx.TimeoutException):
            raise GoldenPathTimeout(f"{what} not answered within {self.timeout_s:g}s") from None
        except httpx.ConnectError as exc:
            reason = mask_text(str(exc), secrets) or type(exc).__name__
            raise Unreachable(f"cannot connect to {mask_url(self.base_url)} ({reason}): "
                              "is the auth service running?") from None  # fmt: skip
        except httpx.HTTPError as exc:
            reason = mask_text(str(exc), secrets) or type(exc).__name__
            raise ProtocolError(f"{what} failed: {reason} (is that an HTTP server?)") from None

    def _tokens(self, body: Mapping[str, Any], path: str, email: str | None,
                keep_refresh: str | None = None) -> Tokens:  # fmt: skip
        where = f"POST {mask_url(self.base_url + path)}"
        expires = body.get("expires_in")
        user_id = body.get("user_id")
        return Tokens(
            access_token=_text_field(body, "access_token", where),
            refresh_token=(keep_refresh if keep_refresh and not body.get("refresh_token")
                           else _text_field(body, "refresh_token", where)),
            user_id=user_id if isinstance(user_id, str) else None,
            email=email,
            expires_in=float(expires) if isinstance(expires, int | float) else None,
        )


def _text_field(body: Mapping[str, Any], name: str, where: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{where} answered without a {name} (keys: {', '.join(sorted(body)) or 'none'})")
    return value
