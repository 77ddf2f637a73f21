"""Who is connected, and delivery of a run's events to the right sockets.

A run's events go to every open socket of the run's user (the sender's socket among them)
and never to another user's, unless a leak fault is deliberately switched on. Each run gets
a Route when it starts, which carries what a fault decides once per run (leak_rare).
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


class Route:
    """Where the events of one run go: every open socket of its user. `origin` is the
    connection the user message came from; `leaking` is fault leak_rare's draw for the run."""

    __slots__ = ("leaking", "origin", "user_id", "victim")

    def __init__(self, user_id: str, origin: str | None, leaking: bool) -> None:
        self.user_id = user_id
        self.origin = origin
        self.leaking = leaking
        self.victim: Connection | None = None


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

    def route(self, user_id: str, origin: str | None = None) -> Route:
        """The delivery of one run, made when the run starts."""
        rare = self._faults.leak_rare
        leaking = rare is not None and random.random() < rare  # noqa: S311
        return Route(user_id, origin, leaking)

    async def deliver(self, route: Route, text: str, event: dict[str, Any]) -> None:
        """Send one serialized event of a run to all of its user's sockets."""
        sockets = self._by_user.get(route.user_id)
        if sockets:
            if len(sockets) == 1:
                for conn in sockets.values():
                    await conn.send(text)
            else:
                twice = self._faults.second_socket_duplicate
                for conn in list(sockets.values()):
                    await conn.send(text)
                    if twice and conn.connection_id != route.origin:
                        # Fault second_socket_duplicate: the user's other sockets get it twice.
                        await conn.send(text)
        if self._faults.leaks:
            await self._leak(route, text, event)

    # random, not secrets: the leak faults only need a spread, not unpredictability.
    async def _leak(self, route: Route, text: str, event: dict[str, Any]) -> None:
        faults = self._faults
        user_id = route.user_id
        if faults.leak is not None and random.random() < faults.leak:  # noqa: S311
            victim = self._someone_else(user_id)
            if victim is not None:
                await victim.send(text)
        if faults.leak_rewrite is not None and random.random() < faults.leak_rewrite:  # noqa: S311
            victim = self._someone_else(user_id)
            if victim is not None:
                rewritten = {**event, "user_id": victim.user_id}
                await victim.send(json.dumps(rewritten, separators=(",", ":")))
        if route.leaking:
            # leak_rare: the whole run also goes to one socket of one other user.
            if route.victim is None or not route.victim.open:
                route.victim = self._someone_else(user_id)
            if route.victim is not None:
                await route.victim.send(text)
        if faults.leak_crowd_users is not None and len(self._by_user) >= faults.leak_crowd_users:
            victim = self._someone_else(user_id)
            if victim is not None:
                await victim.send(text)

    def _someone_else(self, user_id: str) -> Connection | None:
        """A random open socket of a user other than user_id, if anyone else is connected."""
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
