"""The backend's REST API as a test user sees it: bearer-token GETs, each call bounded."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from goldenpath.core.errors import GoldenPathTimeout, ProtocolError, Unreachable
from goldenpath.core.masking import mask_url


@dataclass(frozen=True)
class BackendApi:
    base_url: str
    http: httpx.AsyncClient
    timeout_s: float

    async def get(self, path: str, token: str | None) -> httpx.Response:
        """One GET; a slow, unreachable or broken answer raises the client's one-line errors."""
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        try:
            # httpx's timeout is per phase; this bounds the whole exchange.
            async with asyncio.timeout(self.timeout_s):
                return await self.http.get(url, headers=headers, timeout=self.timeout_s)
        except (TimeoutError, httpx.TimeoutException):
            raise GoldenPathTimeout(f"GET {mask_url(url)} not answered within {self.timeout_s:g}s") from None
        except httpx.ConnectError as exc:
            raise Unreachable(f"cannot connect to {mask_url(self.base_url)}: {exc}") from None
        except httpx.HTTPError as exc:
            raise ProtocolError(f"GET {mask_url(url)} failed: {exc}") from None

    async def read(self, path: str, token: str | None) -> tuple[int, Any]:
        """(status, decoded JSON) of a GET; the JSON is None when the body is not JSON (a 404 may be text)."""
        answer = await self.get(path, token)
        try:
            return answer.status_code, answer.json()
        except ValueError:
            return answer.status_code, None
