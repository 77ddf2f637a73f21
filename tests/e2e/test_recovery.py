"""A user whose socket drops mid-answer loses nothing: after reconnecting, the thread's
history holds the message, and the conversation goes on in the same thread."""

from __future__ import annotations

import uuid

import pytest

from .helpers import Harness, Scenario, thread_of, user_said

pytestmark = [pytest.mark.websocket, pytest.mark.golden_path]


def test_message_survives_a_dropped_socket_and_the_thread_goes_on_after_reconnect(
    scenario: Scenario,
) -> None:
    # Unique texts, so the history can be searched for exactly these messages.
    before = f"A question whose answer I will not wait for ({uuid.uuid4().hex[:8]})"
    after = f"I am back: where were we? ({uuid.uuid4().hex[:8]})"

    async def body(h: Harness) -> None:
        # Its own user: the abandoned run may go on streaming to the user's other sockets.
        tokens = await h.new_account()
        async with h.connected(tokens) as connection:
            dropped = await connection.send_message(before)
            await h.wait_for_event(dropped, h.gp.contract.agent_started)
        thread_id = thread_of(dropped)
        await h.history_until(tokens, thread_id, user_said(before), "the message sent before the drop")

        await h.one_run(tokens, after, thread_id=thread_id)
        history = await h.history_until(tokens, thread_id, user_said(after), "the message sent after")
        said = [m.get("content") for m in history if m.get("role") == "user"]
        assert said == [before, after], f"user messages of thread {thread_id}: {said}"

    scenario(body)
