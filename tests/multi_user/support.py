"""What the multi-user tests share: a crowd of test users, each with its own sockets, sending
waves of messages all at once, and the checks that no socket saw another user's events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from goldenpath.client.auth import Tokens, new_http_client
from goldenpath.client.rest import BackendApi
from goldenpath.client.websocket import Connection, GoldenPathClient
from goldenpath.core.errors import GoldenPathError, ProtocolError
from goldenpath.core.settings import Settings
from goldenpath.output.reports import LayerReport
from goldenpath.protocol.contract import Violation, check_run, check_stray
from goldenpath.protocol.events import Run
from goldenpath.testkit.plugin import user_email
from goldenpath.testkit.support import run_scenario

LAYER = "multi_user"
# After the last run ends, frames another user's run leaked here may still be on the way.
SETTLE_S = 0.3


# One name for the layer's tests: a scenario bounded by its number of calls.
run = run_scenario


@dataclass(eq=False)
class Member:
    """One test user of the crowd: its tokens, its sockets, and every run it sent on any of them."""

    tokens: Tokens
    sockets: list[Connection] = field(default_factory=list)
    runs: list[tuple[Connection, Run]] = field(default_factory=list)

    @property
    def user_id(self) -> str:
        return self.sockets[0].user_id if self.sockets else self.tokens.user_id or "?"

    @property
    def sent_message_ids(self) -> set[str]:
        return {sent.message_id for _, sent in self.runs}


class Crowd:
    """Test users at once, for one scenario; on leaving, sockets are closed and users logged out.

    The protocol has no user deletion; the users carry user_email's prefix instead.
    """

    def __init__(self, settings: Settings, report: LayerReport) -> None:
        self.settings = settings
        self.report = report
        self.http = new_http_client()
        self.client = GoldenPathClient(settings, http=self.http)
        self.members: list[Member] = []

    async def __aenter__(self) -> Crowd:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        sockets = [socket for member in self.members for socket in member.sockets]
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
        refresh = [m.tokens.refresh_token for m in self.members if m.tokens.refresh_token]
        outcomes = await asyncio.gather(*(self.client.auth.logout(token) for token in refresh),
                                        return_exceptions=True)  # fmt: skip
        await self.http.aclose()
        failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failed and exc is None:
            raise GoldenPathError(f"logging out {len(failed)} test user(s) failed: {failed[0]}")

    async def join(self, count: int, *, sockets: int = 1) -> list[Member]:
        """``count`` new users, each with ``sockets`` connections whose clocks are synced."""
        return list(await asyncio.gather(*(self._member(sockets) for _ in range(count))))

    async def _member(self, sockets: int) -> Member:
        member = Member(await self.client.auth.new_test_user(user_email(LAYER)))
        self.members.append(member)
        for _ in range(sockets):
            connection = await self.client.connect(member.tokens)
            member.sockets.append(connection)
            self.report.add_connection_time(connection.connect_ns)
            await connection.sync_clock()
        return member

    async def wave(self, members: Sequence[Member], messages: int, tag: str) -> list[Run]:
        """Every socket of every member sends ``messages`` messages without waiting for any
        answer, all sockets at once; returns when every run has ended."""
        sends = [self._send(member, socket, messages, tag) for member in members for socket in member.sockets]
        runs = [sent for batch in await asyncio.gather(*sends) for sent in batch]
        await asyncio.gather(*(sent.wait(self.settings.timeout_s) for sent in runs))
        return runs

    async def _send(self, member: Member, socket: Connection, messages: int, tag: str) -> list[Run]:
        batch = []
        for index in range(messages):
            sent = await socket.send_message(f"goldenpath multi-user {tag} #{index + 1}")
            member.runs.append((socket, sent))
            batch.append(sent)
        return batch

    def record(self) -> None:
        """Every run into the layer's report, with its socket's clock for delivery latency."""
        for member in self.members:
            for socket, sent in member.runs:
                if sent.finished:
                    self.report.add_run(sent, socket.clock)

    def violations(self) -> list[Violation]:
        """check_run for every run, check_stray for every socket against all its user sent."""
        found: list[Violation] = []
        for member in self.members:
            sent = member.sent_message_ids
            for socket, own in member.runs:
                found += check_run(own, socket.user_id, self.client.contract)
            for socket in member.sockets:
                found += check_stray(socket.stray, socket.user_id, sent_message_ids=sent)
        self.report.add_violations(found)
        return found

    async def get(self, path: str, member: Member) -> tuple[int, Any]:
        """GET a backend path as the member: (status, the decoded JSON or None), bounded."""
        api = BackendApi(self.settings.backend_url, self.http, self.settings.timeout_s)
        return await api.read(path, member.tokens.access_token)


def thread_of(sent: Run) -> str:
    """The thread named by the frame that ended the run (a new thread's id comes only from there)."""
    thread_id = sent.terminal.frame.get("thread_id") if sent.terminal else None
    if not isinstance(thread_id, str) or not thread_id:
        raise ProtocolError(
            f"the run of message {sent.message_id} ended ({sent.outcome}) without a thread_id"
        )
    return thread_id


def summary(violations: Sequence[Violation], shown: int = 15) -> str:
    """Counts by code, then the first violations, one a line."""
    codes: dict[str, int] = {}
    for violation in violations:
        codes[violation.code] = codes.get(violation.code, 0) + 1
    counts = ", ".join(f"{code} x{n}" for code, n in sorted(codes.items()))
    more = f"\n  ... and {len(violations) - shown} more" if len(violations) > shown else ""
    return f"{counts}:\n  " + "\n  ".join(map(str, violations[:shown])) + more
