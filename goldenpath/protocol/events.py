"""What a connection received: frames with their receive times, grouped into runs.

Kept small on purpose, since a multi-user run holds millions of these: an ``Event`` is the
decoded frame (decoded once, never re-encoded) plus two integers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from goldenpath.core.errors import GoldenPathError, GoldenPathTimeout


@dataclass(slots=True)
class Event:
    """One server frame: the decoded JSON object and when it was received.

    ``mono_ns`` is ``time.perf_counter_ns()`` (intervals on this machine), ``wall_ns`` is
    ``time.time_ns()`` (comparable with the server's timestamps once the offset is known).
    Both are taken when the connection's reader task got the frame, so under heavy client
    load they include the client's own scheduling delay.
    """

    frame: dict[str, Any]
    mono_ns: int
    wall_ns: int

    @property
    def type(self) -> str | None:
        kind = self.frame.get("type")
        return kind if isinstance(kind, str) else None


@dataclass(slots=True, eq=False)
class Run:
    """One ``user_message`` and every frame routed to it, in arrival order."""

    message_id: str
    text: str
    thread_id: str | None
    sent_mono_ns: int
    sent_wall_ns: int
    where: str = ""
    run_id: str | None = None
    events: list[Event] = field(default_factory=list)
    # The frame that ended the run: agent_completed, agent_error or an error_message.
    terminal: Event | None = None
    failure: GoldenPathError | None = None
    # Seconds from sending that the run may take, given what has arrived so far (a run that
    # starts more tools is allowed more): the connection derives it from the service levels.
    allowance: Callable[[Run], float] | None = field(default=None, repr=False)
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    @property
    def outcome(self) -> str:
        """'pending', 'lost' (the connection broke), or the type of the ending frame."""
        if self.failure is not None:
            return "lost"
        if self.terminal is None:
            return "pending"
        return self.terminal.type or "?"

    @property
    def reported_thread_id(self) -> str | None:
        """The thread the run's events name (a message sent with thread_id null starts one)."""
        for event in self.events:
            thread_id = event.frame.get("thread_id")
            if isinstance(thread_id, str) and thread_id:
                return thread_id
        return None

    @property
    def answer(self) -> Any:
        """data.result of the ending frame, None when there is none."""
        data = self.terminal.frame.get("data") if self.terminal else None
        return data.get("result") if isinstance(data, dict) else None

    def finish(self, event: Event) -> None:
        # Only the first ending counts; a duplicate completion stays in events for the contract.
        if self.terminal is None:
            self.terminal = event
        self._done.set()

    def fail(self, error: GoldenPathError) -> None:
        if not self._done.is_set():
            self.failure = error
            self._done.set()

    async def wait(self, timeout_s: float | None = None) -> Run:
        """Wait for the run's ending frame, within its deadline (or ``timeout_s`` from now).

        The deadline is ``allowance`` counted from sending, re-read whenever it is reached (a
        tool that started meanwhile extends it), so a run is given what its service levels
        allow, never a per-call network timeout. Frames that arrive after the ending one are
        not waited for here: draining the connection (``Connection.drain``) collects them.

        Raises GoldenPathTimeout, or the connection's failure (ConnectionLost, ProtocolError).
        """
        if timeout_s is not None:
            await self._wait_for(timeout_s, f"within {timeout_s:g}s")
        elif self.allowance is None:
            raise ValueError(f"run of message {self.message_id}: no timeout given and no deadline known")
        else:
            await self._wait_until_deadline(self.allowance)
        if self.failure is not None:
            raise self.failure
        return self

    async def _wait_until_deadline(self, allowance: Callable[[Run], float]) -> None:
        while not self._done.is_set():
            allowed_s = allowance(self)
            left_s = allowed_s - (time.perf_counter_ns() - self.sent_mono_ns) / 1e9
            if left_s <= 0:
                raise self._timeout(f"within its service-level deadline of {allowed_s:g}s after sending")
            try:
                async with asyncio.timeout(left_s):
                    await self._done.wait()
            except TimeoutError:
                continue  # re-read the allowance: a tool that started meanwhile extends it

    async def _wait_for(self, timeout_s: float, within: str) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await self._done.wait()
        except TimeoutError:
            raise self._timeout(within) from None

    def _timeout(self, within: str) -> GoldenPathTimeout:
        last = f", the last {self.events[-1].type!r}" if self.events else ""
        return GoldenPathTimeout(
            f"run of message {self.message_id} on {self.where} not finished {within}: "
            f"{len(self.events)} event(s) received{last}"
        )
