"""Every frame a user receives, on every socket, checked against every run of that user.

One user keeps two sockets open while it sends several messages on the first: a frame of a
finished run arriving later (late), a run delivered twice to one socket (duplicate), a run
that replays an earlier one (stale replay) or another user's frame all land on a socket that
is still open, and the per-user ledger (goldenpath.protocol.ledger, the load runner's own)
sees each as it arrives. Both sockets are drained at the end: no sleep stands in for that.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from goldenpath.client.websocket import Connection
from goldenpath.protocol.events import Run
from goldenpath.protocol.ledger import CanaryBook, Finding, UserLedger

from .helpers import Harness, Scenario

pytestmark = [pytest.mark.golden_path, pytest.mark.websocket]

# Enough runs that a late or replayed frame of one run lands while the next is under way.
RUNS = 3


async def ended_or_found(run: Run, found: asyncio.Event) -> None:
    """Wait for the run's end, or stop at the first finding: a replayed run never ends, and
    waiting out its service-level deadline would add nothing to the verdict."""
    waiting = asyncio.ensure_future(run.wait())
    finding = asyncio.ensure_future(found.wait())
    try:
        await asyncio.wait({waiting, finding}, return_when=asyncio.FIRST_COMPLETED)
        if waiting.done():
            waiting.result()  # the run's own timeout or lost connection, with its message
    finally:
        for task in (waiting, finding):
            task.cancel()


def test_every_frame_of_a_user_is_checked_across_runs_and_sockets(scenario: Scenario) -> None:
    async def body(h: Harness) -> list[Finding]:
        tokens = await h.new_account()
        assert tokens.user_id, "the auth service's token pair names no user_id"
        ledger = UserLedger(tokens.user_id, CanaryBook(), h.gp.contract)
        found = asyncio.Event()
        sockets: list[Connection] = []
        try:
            for number in range(2):
                sockets.append(await h.gp.connect(tokens, observers=[ledger.observer(number, found.set)]))
            first = sockets[0]
            for turn in range(RUNS):
                message_id = str(uuid.uuid4())
                ledger.sent(message_id, socket=0)
                run = await first.send_message(
                    f"{ledger.canary()} question {turn + 1} of {RUNS}", message_id=message_id)
                await ended_or_found(run, found)
                if found.is_set():
                    break
        finally:
            for connection in sockets:
                await connection.drain(h.settings.timeout_s)
        return [*ledger.findings, *ledger.finish()]

    findings = scenario(body)
    scenario.report.add_violations([finding.violation() for finding in findings])
    assert not findings, "frames that break the contract or isolation: " + "; ".join(
        f"{f.code}: {f.message} [{f.evidence()}]" for f in findings[:5])
