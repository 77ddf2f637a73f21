"""The per-user ledger, rule by rule, on frames: each rule flags its breach with evidence, and
a healthy user (one socket or several, one message at a time or several at once) is clean."""

from __future__ import annotations

import json
from typing import Any

import pytest

from goldenpath.protocol.ledger import CANARY, EVIDENCE_CHARS, CanaryBook, UserLedger, new_canary

STAMP = "2026-11-24T23:01:02.345Z"


def run_frames(user: str, message_id: str, run_id: str, text: str = "hello",
               thread_id: str = "t1") -> list[dict[str, Any]]:  # fmt: skip
    base = {"run_id": run_id, "thread_id": thread_id, "user_id": user, "message_id": message_id,
            "agent_name": "agent", "timestamp": STAMP}
    return [
        {**base, "type": "agent_started", "data": {"user_request": text}},
        {**base, "type": "agent_thinking", "data": {"thought": "hm"}},
        {**base, "type": "tool_executing", "tool_name": "search", "data": {"q": 1}},
        {**base, "type": "tool_completed", "tool_name": "search", "data": {"r": 2}},
        {**base, "type": "agent_completed", "data": {"result": f"answer to: {text}"}},
    ]


def feed(ledger: UserLedger, frames: list[dict[str, Any]], socket: int = 0) -> list[str]:
    codes: list[str] = []
    for frame in frames:
        codes += [f.code for f in ledger.receive(socket, json.dumps(frame), frame)]
    return codes


@pytest.fixture
def book() -> CanaryBook:
    return CanaryBook()


def test_a_healthy_run_is_clean_and_checked(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    canary = ledger.canary()
    ledger.sent("m1", socket=0, thread_id=None)
    assert feed(ledger, run_frames("alice", "m1", "r1", f"hi {canary}")) == []
    assert ledger.ended("m1")
    assert ledger.run_of("m1") == "r1"
    assert ledger.finish() == []
    assert ledger.findings == []
    assert ledger.stats.runs_checked == 1
    assert ledger.stats.run_events == 5


def test_canaries_have_one_recognisable_shape(book: CanaryBook) -> None:
    canaries = {new_canary() for _ in range(100)}
    assert len(canaries) == 100
    assert all(CANARY.fullmatch(c) for c in canaries)
    with pytest.raises(ValueError, match="not a canary"):
        book.register("gpc-xyz", "alice")


def test_another_users_canary_anywhere_in_a_frame_is_foreign(book: CanaryBook) -> None:
    alice, bob = UserLedger("alice", book), UserLedger("bob", book)
    theirs = bob.canary()
    alice.sent("m1")
    frames = run_frames("alice", "m1", "r1")
    frames[4]["data"]["result"] = f"answer quoting {theirs}"  # the text, under alice's own ids
    codes = feed(alice, frames)
    assert codes == ["FOREIGN_CANARY"]
    [finding] = alice.findings
    assert finding.other_user == "bob"
    assert finding.user_id == "alice"
    assert finding.run_id == "r1"
    assert finding.event_type == "agent_completed"
    assert theirs in finding.message


def test_a_canary_nobody_issued_here_is_foreign_too(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    frame = {"type": "pong", "timestamp": STAMP, "note": new_canary()}
    assert feed(ledger, [frame]) == ["FOREIGN_CANARY"]
    assert "unknown" in (ledger.findings[0].other_user or "")


def test_an_event_for_another_user_is_foreign(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    ledger.sent("m1")
    codes = feed(ledger, run_frames("bob", "m9", "r9")[:1])
    assert codes == ["FOREIGN_EVENT"]
    assert ledger.findings[0].other_user == "bob"


def test_a_run_of_a_message_never_sent_is_foreign_even_under_this_users_id(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    ledger.sent("m1")
    assert feed(ledger, run_frames("alice", "m-not-mine", "r9")[:2]) == ["FOREIGN_EVENT", "FOREIGN_EVENT"]


def test_the_same_frame_twice_on_one_socket_is_a_duplicate(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    ledger.sent("m1")
    frames = run_frames("alice", "m1", "r1")
    codes = feed(ledger, [frames[0], frames[1], frames[1], *frames[2:], frames[4]])
    assert codes == ["DUPLICATE_DELIVERY", "DUPLICATE_DELIVERY"]


def test_the_same_run_on_two_sockets_is_allowed(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    ledger.sent("m1", socket=0)
    ledger.sent("m2", socket=1)
    one, two = run_frames("alice", "m1", "r1"), run_frames("alice", "m2", "r2")
    # Interleaved, each run reaching both sockets: both sockets' copies keep the contract.
    for a, b in zip(one, two, strict=True):
        assert feed(ledger, [a], socket=0) + feed(ledger, [a], socket=1) == []
        assert feed(ledger, [b], socket=1) + feed(ledger, [b], socket=0) == []
    assert ledger.finish() == []


def test_a_frame_after_the_runs_end_is_late_on_every_socket(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    ledger.sent("m1", socket=0)
    frames = run_frames("alice", "m1", "r1")
    late = {**frames[1], "data": {"thought": "one more"}}
    assert feed(ledger, frames, socket=0) + feed(ledger, frames, socket=1) == []
    assert feed(ledger, [late], socket=0) == ["EVENT_AFTER_COMPLETION"]
    assert feed(ledger, [late], socket=1) == ["EVENT_AFTER_COMPLETION"]


def test_a_redelivered_completion_is_a_duplicate_not_a_late_event(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    ledger.sent("m1")
    frames = run_frames("alice", "m1", "r1")
    assert feed(ledger, [*frames, frames[4]]) == ["DUPLICATE_DELIVERY"]


def test_a_replay_of_the_previous_run_is_stale_once_and_answers_the_waiting_message(
    book: CanaryBook,
) -> None:
    ledger = UserLedger("alice", book)
    ledger.sent("m1")
    first = run_frames("alice", "m1", "r1")
    assert feed(ledger, first) == []
    ledger.sent("m2")
    assert feed(ledger, first) == ["STALE_REPLAY"]  # byte for byte: one finding, not one per frame
    assert ledger.ended("m2"), "the replay came instead of m2's run: nobody should wait for it"
    assert ledger.finish() == []


def test_a_new_run_under_an_earlier_runs_message_id_is_stale(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    ledger.sent("m1")
    assert feed(ledger, run_frames("alice", "m1", "r1")) == []
    ledger.sent("m2")
    assert feed(ledger, run_frames("alice", "m1", "r2")[:1]) == ["STALE_REPLAY"]


def test_the_runs_contract_is_checked_when_it_ends(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    ledger.sent("m1", thread_id="t1")
    frames = run_frames("alice", "m1", "r1")
    del frames[3]  # no tool_completed
    codes = feed(ledger, frames)
    assert "TOOL_UNPAIRED" in codes
    assert "MISSING_EVENT" in codes
    assert all(f.user_id == "alice" and f.run_id == "r1" for f in ledger.findings)


def test_a_run_that_never_ends_is_reported_by_finish(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    ledger.sent("m1")
    ledger.sent("m2")
    assert feed(ledger, run_frames("alice", "m1", "r1")[:3]) == []
    codes = sorted({f.code for f in ledger.finish()})
    assert codes == ["MISSING_EVENT", "TOOL_UNPAIRED"]
    assert {f.run_id for f in ledger.findings} == {"r1", None}  # m2 got nothing at all


def test_a_broken_socket_is_not_reported_as_missing_events(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    ledger.sent("m1", socket=3)
    assert ledger.finish(lost_sockets=frozenset({3})) == []


def test_several_messages_at_once_are_told_apart(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    ledger.sent("m1")
    ledger.sent("m2")
    one, two = run_frames("alice", "m1", "r1"), run_frames("alice", "m2", "r2")
    mixed = [frame for pair in zip(one, two, strict=True) for frame in pair]
    assert feed(ledger, mixed) == []
    assert ledger.stats.runs_checked == 2


def test_a_rejected_message_is_reported(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    ledger.sent("m1")
    error = {"type": "error_message", "error_code": "VALIDATION_ERROR", "error_message": "no",
             "message_id": "m1"}
    assert feed(ledger, [error]) == ["REJECTED"]


def test_evidence_is_bounded_and_in_the_violation(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    frame = {"type": "agent_thinking", "user_id": "bob", "run_id": "r", "data": {"x": "y" * 1000}}
    feed(ledger, [frame])
    [finding] = ledger.findings
    assert len(finding.frame) == EVIDENCE_CHARS
    text = str(finding.violation())
    assert text.startswith("FOREIGN_EVENT")
    assert "other user bob" in text
    assert "agent_thinking" in text


def test_the_same_message_id_cannot_be_sent_twice(book: CanaryBook) -> None:
    ledger = UserLedger("alice", book)
    ledger.sent("m1")
    with pytest.raises(ValueError, match="already sent"):
        ledger.sent("m1")
