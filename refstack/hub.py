"""Who is connected, and delivery of a run's events to the right sockets.

A run's events go to every open socket of the run's user (the sender's socket among them)
and never to another user's, unless a leak fault is deliberately switched on.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Coroutine
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from refstack.faults import Faults


class Connection:
    __slots__ = ("connection_id", "open", "user_id", "websocket")

    def __init__(self, connection_id: str, user_id: str, websocket: WebSocket) -> None:
        self.connection_id = connection_id
        self.user_id = user_id
        self.websocket = websocket
        self.open = True

    async def send(self, text: str) -> None:
        """Send one frame; a socket that went away is marked closed, not an error."""
        if not self.open:
            return
        try:
            await self.websocket.send_text(text)
        except (WebSocketDisconnect, OSError, RuntimeError):
            # RuntimeError: Starlette's "after close" state; OSError: uvicorn's
            # ClientDisconnected. Either way the peer is gone and the run goes on.
            self.open = False


class Hub:
    def __init__(self, faults: Faults) -> None:
        self._faults = faults
        self._by_user: dict[str, dict[str, Connection]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, conn: Connection) -> None:
        self._by_user.setdefault(conn.user_id, {})[conn.connection_id] = conn

    def remove(self, conn: Connection) -> None:
        conn.open = False
        sockets = self._by_user.get(conn.user_id)
        if sockets is not None:
            sockets.pop(conn.connection_id, None)
            if not sockets:
                del self._by_user[conn.user_id]

    @property
    def connection_count(self) -> int:
        return sum(len(s) for s in self._by_user.values())

    async def deliver(self, user_id: str, text: str, event: dict[str, Any]) -> None:
        """Send one serialized event to all of user_id's sockets."""
        sockets = self._by_user.get(user_id)
        if sockets:
            if len(sockets) == 1:
                for conn in sockets.values():
                    await conn.send(text)
            else:
                for conn in list(sockets.values()):
                    await conn.send(text)
        if self._faults.leaks:
            await self._leak(user_id, text, event)

    # random, not secrets: the leak faults only need a spread, not unpredictability.
    async def _leak(self, user_id: str, text: str, event: dict[str, Any]) -> None:
        if self._faults.leak is not None and random.random() < self._faults.leak:  # noqa: S311
            victim = self._someone_else(user_id)
            if victim is not None:
                await victim.send(text)
        if self._faults.leak_rewrite is not None and random.random() < self._faults.leak_rewrite:  # noqa: S311
            victim = self._someone_else(user_id)
            if victim is not None:
                rewritten = {**event, "user_id": victim.user_id}
                await victim.send(json.dumps(rewritten, separators=(",", ":")))

    def _someone_else(self, user_id: str) -> Connection | None:
        others = [uid for uid in self._by_user if uid != user_id]
        if not others:
            return None
        sockets = self._by_user[random.choice(others)]  # noqa: S311
        return random.choice(list(sockets.values()))  # noqa: S311

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run an agent run in the background, tracked so shutdown can cancel it."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
