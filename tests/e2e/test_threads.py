"""The first-message experience and thread ownership: a new user's first message opens a
thread that is listed for that user alone; another user can neither read nor write it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from goldenpath.client.auth import Tokens

from .helpers import Harness, Scenario, thread_of

pytestmark = [pytest.mark.golden_path, pytest.mark.websocket]


def test_first_message_opens_a_thread_listed_with_its_history(scenario: Scenario) -> None:
    text = f"Hi, this is my very first message ({uuid.uuid4().hex[:8]})"

    async def body(h: Harness) -> None:
        tokens = await h.new_account()
        listed = await h.api.thread_ids(tokens.access_token)
        assert listed == [], f"a brand-new user already has threads: {listed}"
        run = await h.one_run(tokens, text)  # thread_id null: the server opens a thread
        thread_id = thread_of(run)
        listed = await h.api.thread_ids(tokens.access_token)
        assert listed == [thread_id], f"after the first message GET /api/threads lists {listed}"

        def answered(messages: list[dict[str, Any]]) -> bool:
            return any(m.get("role") == "assistant" for m in messages)

        history = await h.history_until(tokens, thread_id, answered, "the answer")
        assert [(m.get("role"), m.get("content")) for m in history] == [
            ("user", text),
            ("assistant", run.answer),
        ], f"history of the new thread {thread_id}"
        assert history[1].get("run_id") == run.run_id, "the answer is stored under another run"

    scenario(body)


def test_another_users_thread_is_neither_served_nor_listed(scenario: Scenario, account: Tokens) -> None:
    async def body(h: Harness) -> None:
        thread_id = thread_of(await h.one_run(account, "Something only I should read"))
        path = f"/api/threads/{thread_id}/messages"
        owner = await h.api.get(path, account.access_token)
        # Without this, a 404 below could mean the thread was never stored at all.
        assert owner.status_code == 200, f"the owner's own GET {path} answered {owner.status_code}"

        intruder = await h.new_account()
        answer = await h.api.get(path, intruder.access_token)
        assert answer.status_code != 200, (
            f"GET {path} served another user's thread: user {intruder.user_id} read user "
            f"{account.user_id}'s messages ({answer.text[:120]})"
        )
        assert answer.status_code == 404, (
            f"another user's thread answered {answer.status_code}; the protocol wants 404, which does not "
            "leak that the thread exists"
        )
        unknown = await h.api.get(f"/api/threads/{uuid.uuid4()}/messages", intruder.access_token)
        assert unknown.status_code == 404, f"an unknown thread answered {unknown.status_code}, expected 404"
        listed = await h.api.thread_ids(intruder.access_token)
        assert thread_id not in listed, "GET /api/threads listed another user's thread"

    scenario(body)


def test_message_into_another_users_thread_is_refused(scenario: Scenario, account: Tokens) -> None:
    async def body(h: Harness) -> None:
        thread_id = thread_of(await h.one_run(account, "My own thread"))
        intruder = await h.new_account()
        async with h.connected(intruder) as connection:
            run = await connection.send_message("Writing into someone else's thread", thread_id=thread_id)
            error = await h.refusal(connection, run)
        assert error.frame.get("error_code") == "VALIDATION_ERROR", (
            f"a message into another user's thread got {error.frame}, expected VALIDATION_ERROR"
        )
        history = await h.api.history(account.access_token, thread_id)
        assert all(m.get("content") != run.text for m in history), "another user wrote into the thread"

    scenario(body)
