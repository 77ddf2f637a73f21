"""Users at once do not interfere: every socket gets its own user's events only, and a
user's threads are invisible to everyone else."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from goldenpath.core.settings import Settings
from goldenpath.output.reports import LayerReport
from goldenpath.protocol.contract import Violation

from .support import SETTLE_S, Crowd, run, summary, thread_of

pytestmark = [pytest.mark.websocket, pytest.mark.golden_path]

MESSAGES_PER_USER = 3


@pytest.mark.sla
def test_concurrent_users_receive_only_their_own_events(
    gp_settings: Settings, gp_report: LayerReport
) -> None:
    """SLA_CONCURRENT_USERS users, one socket each, all sending several messages at once:
    every run keeps the contract, and no socket receives an event of a run its user did not
    send, whether it names another user or (rewritten) its own."""
    users = gp_settings.sla.concurrent_users

    async def scenario() -> list[Violation]:
        async with Crowd(gp_settings, gp_report) as crowd:
            members = await crowd.join(users)
            await crowd.wave(members, MESSAGES_PER_USER, "concurrent")
            await asyncio.sleep(SETTLE_S)
            crowd.record()
            return crowd.violations()

    # Joining (auth, upgrade, clock pings) is a handful of calls a user, all users at once.
    violations = run(scenario(), gp_settings, calls=20 + MESSAGES_PER_USER)
    assert not violations, (
        f"{len(violations)} violation(s) among {users} concurrent users x {MESSAGES_PER_USER} messages: "
        + summary(violations)
    )


def test_a_users_second_socket_is_not_flagged(gp_settings: Settings, gp_report: LayerReport) -> None:
    """A user's runs may reach all of its sockets (the protocol allows it): with two sockets
    both sending, each socket's own runs keep the contract and the copies of the other
    socket's runs are not taken for a leak."""

    async def scenario() -> tuple[list[Violation], int]:
        async with Crowd(gp_settings, gp_report) as crowd:
            [member] = await crowd.join(1, sockets=2)
            await crowd.wave([member], 2, "two sockets")
            await asyncio.sleep(SETTLE_S)
            crowd.record()
            copies = sum(len(socket.stray) for socket in member.sockets)
            return crowd.violations(), copies

    violations, copies = run(scenario(), gp_settings, calls=25)
    gp_report.notes.append(f"a user's two sockets received {copies} copies of each other's run events")
    if copies == 0:
        # Nothing was mirrored, so nothing could have been wrongly flagged: say so, not "passed".
        pytest.skip("the target delivers a run only to the socket that sent it (allowed): "
                    "there were no copies to check")
    assert not violations, "the same user's events on its second socket were flagged: " + summary(violations)


@dataclass(frozen=True)
class Trespass:
    """What user B got when it went after user A's thread, and A's thread afterwards."""

    thread_a: str
    thread_b: str
    owner_read: int
    other_read: int
    other_read_body: str
    other_list: list[object]
    intrusion: dict[str, Any] | None
    owner_history: list[object]
    conversation: list[object]


def thread_ids(listing: Any) -> list[object]:
    threads = listing.get("threads") if isinstance(listing, dict) else None
    return [t.get("thread_id") for t in threads or [] if isinstance(t, dict)]


def contents(history: Any) -> list[object]:
    messages = history.get("messages") if isinstance(history, dict) else None
    return [m.get("content") for m in messages or [] if isinstance(m, dict)]


def test_threads_are_private_to_their_user(gp_settings: Settings, gp_report: LayerReport) -> None:
    """User B cannot read user A's thread (404, never 403: existence is not leaked), does not
    see it in its thread list, and cannot post into it (VALIDATION_ERROR); A's history is untouched."""

    async def scenario() -> Trespass:
        async with Crowd(gp_settings, gp_report) as crowd:
            owner, other = await crowd.join(2)
            [mine] = await crowd.wave([owner], 1, "private")
            [theirs] = await crowd.wave([other], 1, "someone else's")
            thread_a, thread_b = thread_of(mine), thread_of(theirs)
            owner_read, _ = await crowd.get(f"/api/threads/{thread_a}/messages", owner)
            other_read, body = await crowd.get(f"/api/threads/{thread_a}/messages", other)
            _, listing = await crowd.get("/api/threads", other)
            intrusion = await other.sockets[0].ask("goldenpath multi-user: not my thread", thread_id=thread_a)
            _, history = await crowd.get(f"/api/threads/{thread_a}/messages", owner)
            crowd.record()
        return Trespass(thread_a, thread_b, owner_read, other_read, str(body)[:160], thread_ids(listing),
                        intrusion.terminal.frame if intrusion.terminal else None, contents(history),
                        [mine.text, mine.answer])  # fmt: skip

    seen = run(scenario(), gp_settings, calls=30)
    assert seen.owner_read == 200, f"user A cannot read its thread {seen.thread_a}: HTTP {seen.owner_read}"
    assert seen.other_read == 404, (
        f"another user reading thread {seen.thread_a} got HTTP {seen.other_read}, expected 404: "
        f"{seen.other_read_body}"
    )
    assert seen.thread_a not in seen.other_list, f"user A's thread {seen.thread_a} is in user B's thread list"
    assert seen.thread_b in seen.other_list, f"user B's own thread {seen.thread_b} is not in its list"
    assert seen.intrusion is not None, "posting into another user's thread got no answer"
    assert seen.intrusion.get("error_code") == "VALIDATION_ERROR", (
        f"posting into another user's thread was answered {seen.intrusion.get('type')!r} "
        f"{seen.intrusion.get('error_code')!r}, expected error_message VALIDATION_ERROR"
    )
    assert seen.owner_history == seen.conversation, (
        f"thread {seen.thread_a} is not A's conversation after B posted into it: {seen.owner_history}"
    )
