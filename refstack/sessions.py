"""Login sessions and refresh-token revocation: Redis when REDIS_URL is set, else in-process.

Every token pair carries a session id (`sid`). Refresh keeps the sid; logout revokes it, so
every refresh token of that login stops working at once, whichever one the client holds.
Revocations expire with the longest-lived token they could still concern.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

_PREFIX = "refstack"
_MAX_SESSIONS = 100_000


class SessionsUnavailable(Exception):
    """The session store cannot be reached."""


class Sessions(ABC):
    kind: str

    @abstractmethod
    async def open_session(self, sid: str, user_id: str, ttl: int) -> None: ...

    @abstractmethod
    async def revoke(self, sid: str, ttl: int) -> None: ...

    @abstractmethod
    async def is_revoked(self, sid: str) -> bool: ...

    @abstractmethod
    async def ping(self) -> None: ...

    async def close(self) -> None:
        return None


def open_sessions(redis_url: str | None) -> Sessions:
    return RedisSessions(redis_url) if redis_url else MemorySessions()


class MemorySessions(Sessions):
    """Good for one process; lost on restart (a restart then forgets revocations)."""

    kind = "memory"

    def __init__(self) -> None:
        self._sessions: dict[str, tuple[str, float]] = {}
        self._revoked: dict[str, float] = {}

    def _purge(self) -> None:
        now = time.monotonic()
        self._sessions = {k: v for k, v in self._sessions.items() if v[1] >= now}
        self._revoked = {k: v for k, v in self._revoked.items() if v >= now}

    async def open_session(self, sid: str, user_id: str, ttl: int) -> None:
        if len(self._sessions) > _MAX_SESSIONS:
            self._purge()
            # Session records are informational here (only revocations are consulted), so
            # under a login storm the oldest are dropped rather than let memory grow.
            for sid_ in list(self._sessions)[: len(self._sessions) - _MAX_SESSIONS // 2]:
                del self._sessions[sid_]
        self._sessions[sid] = (user_id, time.monotonic() + ttl)

    async def revoke(self, sid: str, ttl: int) -> None:
        if len(self._revoked) > _MAX_SESSIONS:
            self._purge()
        self._sessions.pop(sid, None)
        self._revoked[sid] = time.monotonic() + ttl

    async def is_revoked(self, sid: str) -> bool:
        expiry = self._revoked.get(sid)
        return expiry is not None and expiry >= time.monotonic()

    async def ping(self) -> None:
        return None


class RedisSessions(Sessions):
    kind = "redis"

    def __init__(self, url: str) -> None:
        import redis.asyncio

        # Short timeouts: a dead Redis must turn into a fast 503, not a hung request.
        self._client: Any = redis.asyncio.from_url(
            url,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            health_check_interval=30,
        )

    async def _do(self, method: str, *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return await getattr(self._client, method)(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            raise SessionsUnavailable(f"redis: {exc}") from exc

    async def open_session(self, sid: str, user_id: str, ttl: int) -> None:
        await self._do("set", f"{_PREFIX}:session:{sid}", user_id, ex=ttl)

    async def revoke(self, sid: str, ttl: int) -> None:
        await self._do("set", f"{_PREFIX}:revoked:{sid}", "1", ex=max(ttl, 1))
        await self._do("delete", f"{_PREFIX}:session:{sid}")

    async def is_revoked(self, sid: str) -> bool:
        return bool(await self._do("exists", f"{_PREFIX}:revoked:{sid}"))

    async def ping(self) -> None:
        await self._do("ping")

    async def close(self) -> None:
        await self._client.aclose()
