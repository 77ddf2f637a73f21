"""The shared resources of one refstack process, started and stopped together."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from refstack.analytics import Analytics
from refstack.hub import Hub
from refstack.sessions import Sessions, open_sessions
from refstack.settings import Settings
from refstack.store import Store, open_store
from refstack.tokens import TokenService

log = logging.getLogger("refstack")


@dataclass
class Services:
    settings: Settings
    tokens: TokenService
    store: Store
    sessions: Sessions
    analytics: Analytics | None
    hub: Hub
    started: float = field(default_factory=time.monotonic)

    @property
    def uptime_seconds(self) -> float:
        return round(time.monotonic() - self.started, 3)

    async def start(self) -> None:
        """Never fails on a dependency that is down: readiness reports it instead."""
        await self.store.open()
        try:
            await self.sessions.ping()
        except Exception as exc:  # reported, not fatal: see the module docstring of sessions
            log.warning("redis unavailable at start (will retry on use): %s", exc)
        if self.analytics is not None:
            await self.analytics.start()

    async def stop(self) -> None:
        await self.hub.close()
        if self.analytics is not None:
            await self.analytics.close()
        await self.sessions.close()
        await self.store.close()


def build_services(settings: Settings, *, analytics: bool) -> Services:
    """analytics=False when the backend does not run here (only it emits events)."""
    return Services(
        settings=settings,
        tokens=TokenService(settings),
        store=open_store(settings.database_url, settings.sqlite_path),
        sessions=open_sessions(settings.redis_url),
        analytics=Analytics(settings.clickhouse) if analytics and settings.clickhouse else None,
        hub=Hub(settings.faults),
    )
