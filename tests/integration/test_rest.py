"""Threads and their history over REST: the caller's own, in order, and nobody else's."""

from __future__ import annotations

import pytest

from .wire import (
    UNUSABLE,
    Event,
    Target,
    User,
    bypass_user,
    get,
    history,
    new_id,
    parse_timestamp,
    run,
    session,
    threads_of,
    unusable_tokens,
)

THREAD_FIELDS = {"thread_id", "title", "created_at", "updated_at"}
MESSAGE_FIELDS = {"role", "content", "message_id", "run_id", "created_at"}


def conversation(target: Target, user: User, texts: list[str]) -> list[list[Event]]:
    """Each text as a message in one thread (the first one starts it); the runs' events."""

    async def scenario() -> list[list[Event]]:
        runs: list[list[Event]] = []
        async with session(target, user.access_token) as sock:
            for text in texts:
                runs.append(await sock.run(text, thread_id=runs[0][0]["thread_id"] if runs else None))
        return runs

    return run(scenario())


@pytest.mark.parametrize("kind", ["none", *UNUSABLE])
def test_threads_need_a_live_access_token(target: Target, kind: str) -> None:
    token = None if kind == "none" else unusable_tokens(bypass_user(target), target.jwt_secret)[kind]
    listing = get(f"{target.backend_url}/api/threads", token)
    assert listing.status_code == 401, listing.text
    assert get(f"{target.backend_url}/api/threads/{new_id('t')}/messages", token).status_code == 401


def test_a_new_user_has_no_threads(target: Target) -> None:
    assert threads_of(target, bypass_user(target)) == []


def test_threads_are_listed_with_their_fields(target: Target) -> None:
    user = bypass_user(target)
    first = conversation(target, user, ["first thread"])[0][0]["thread_id"]
    second = conversation(target, user, ["second thread"])[0][0]["thread_id"]
    threads = threads_of(target, user)
    assert {t["thread_id"] for t in threads} == {first, second}
    for thread in threads:
        assert thread.keys() >= THREAD_FIELDS, thread
        assert isinstance(thread["title"], str)
        assert parse_timestamp(thread["created_at"]) is not None, thread
        assert parse_timestamp(thread["updated_at"]) is not None, thread


def test_history_holds_every_message_and_answer_in_order(target: Target) -> None:
    user = bypass_user(target)
    texts = ["one", "two", "three"]
    runs = conversation(target, user, texts)
    thread_id = runs[0][0]["thread_id"]
    answer = history(target, user, thread_id)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["thread_id"] == thread_id
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * len(texts)
    for index, events in enumerate(runs):
        asked, answered = messages[2 * index], messages[2 * index + 1]
        assert asked.keys() >= MESSAGE_FIELDS
        assert answered.keys() >= MESSAGE_FIELDS
        assert asked["content"] == texts[index]
        assert asked["message_id"] == events[0]["message_id"]
        assert asked["run_id"] == answered["run_id"] == events[0]["run_id"]
        assert answered["content"] == events[-1]["data"]["result"]
    stamps = [parse_timestamp(m["created_at"]) for m in messages]
    assert None not in stamps, messages
    assert stamps == sorted(stamps), "messages are returned in the order they were stored"  # type: ignore[type-var]


def test_another_users_thread_is_404_like_a_missing_one(target: Target) -> None:
    alice, mallory = bypass_user(target), bypass_user(target)
    thread_id = conversation(target, alice, ["private"])[0][0]["thread_id"]
    foreign = history(target, mallory, thread_id)
    missing = history(target, mallory, new_id("thread"))
    assert foreign.status_code == 404, foreign.text
    assert missing.status_code == 404, missing.text
    assert foreign.json() == missing.json(), "the answer must not reveal that the thread exists"
    assert threads_of(target, mallory) == []
    assert history(target, alice, thread_id).status_code == 200
