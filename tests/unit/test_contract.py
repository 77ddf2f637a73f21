"""The contract check: a valid run passes, each fault yields its code and message, and what a
healthy platform may do differently (docs/protocol.md 7.2) passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from goldenpath.core.errors import ConfigError
from goldenpath.core.settings import load_settings
from goldenpath.protocol.contract import (
    PROTOCOL,
    SETTING_KEYS,
    Code,
    Contract,
    check_events,
    check_run,
    check_stray,
)
from goldenpath.protocol.events import Event, Run

REPO = Path(__file__).resolve().parents[2]
RUN = "3f2a9b1c-0000-4000-8000-000000000001"
THREAD = "thread-1"
USER = "user-1"
MESSAGE = "message-1"
LABEL = "run 3f2a9b1c"


def event(kind: str, **changes: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": kind,
        "run_id": RUN,
        "thread_id": THREAD,
        "user_id": USER,
        "message_id": MESSAGE,
        "agent_name": "refstack-agent",
        "timestamp": "2026-11-24T23:01:02.345Z",
        "data": {},
    }
    if kind in ("tool_executing", "tool_completed"):
        frame["tool_name"] = "search"
    if kind == "agent_completed":
        frame["data"] = {"result": "the answer"}
    frame.update(changes)
    return frame


def valid_run() -> list[dict[str, Any]]:
    return [
        event("agent_started"),
        event("agent_thinking"),
        event("tool_executing"),
        event("tool_completed"),
        event("agent_thinking"),
        event("tool_executing", tool_name="calculator"),
        event("tool_completed", tool_name="calculator"),
        event("agent_completed"),
    ]


def check(
    frames: list[dict[str, Any]], contract: Contract = PROTOCOL, **expect: Any
) -> list[tuple[str, str]]:
    found = check_events(frames, user_id=USER, message_id=MESSAGE, contract=contract, **expect)
    return [(v.code, v.message) for v in found]


def test_a_valid_run_has_no_violation() -> None:
    assert check(valid_run()) == []
    assert check(valid_run(), thread_id=THREAD) == []


def test_client_events_are_checked_like_plain_frames() -> None:
    events = [Event(frame, i, i) for i, frame in enumerate(valid_run())]
    assert check_events(events, user_id=USER, message_id=MESSAGE) == []


def test_violations_name_the_run_and_the_event_index() -> None:
    frames = valid_run()
    frames[3]["timestamp"] = "yesterday"
    (violation,) = check_events(frames, user_id=USER, message_id=MESSAGE)
    assert violation.run_id == RUN
    assert violation.index == 3
    assert str(violation) == (
        f"BAD_TIMESTAMP: {LABEL}: event 3 (tool_completed) timestamp 'yesterday' "
        "is not ISO 8601 in UTC (Z or +00:00)"
    )


def test_no_event_at_all() -> None:
    assert check_events([], user_id=USER, message_id=MESSAGE)[0].message == (
        "message message-: no event received (expected agent_started first)"
    )


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param(
            lambda f: f.pop(0),
            [(Code.MISSING_EVENT, f"{LABEL}: no agent_started")],
            id="missing-start",
        ),
        pytest.param(
            lambda f: f.pop(),
            [(Code.MISSING_EVENT,
              f"{LABEL}: no agent_completed (7 event(s) received, the last tool_completed)")],
            id="missing-completion",
        ),
        pytest.param(
            lambda f: [f.pop(4), f.pop(1)],
            [(Code.MISSING_EVENT, f"{LABEL}: no agent_thinking")],
            id="missing-thinking",
        ),
        pytest.param(
            lambda f: f.insert(0, f.pop(1)),
            [(Code.ORDER, f"{LABEL}: agent_started is event 1, expected first (event 0 is agent_thinking)")],
            id="start-not-first",
        ),
        pytest.param(
            lambda f: f.insert(4, f.pop(1)),
            [(Code.ORDER, f"{LABEL}: event 1 (tool_executing) came before any agent_thinking")],
            id="tool-before-thinking",
        ),
        pytest.param(
            lambda f: f.insert(3, event("agent_started")),
            [
                (Code.DUPLICATE_START, f"{LABEL}: another agent_started at event 3 (exactly one per run)"),
            ],
            id="duplicate-start",
        ),
        pytest.param(
            lambda f: f.append(event("agent_completed")),
            [
                (Code.DUPLICATE_COMPLETION,
                 f"{LABEL}: another agent_completed at event 8 (exactly one per run)"),
            ],
            id="duplicate-completion",
        ),
        pytest.param(
            lambda f: f.append(event("agent_thinking")),
            [
                (Code.EVENT_AFTER_COMPLETION,
                 f"{LABEL}: event 8 (agent_thinking) arrived after event 7 (agent_completed)"),
            ],
            id="after-completion",
        ),
        pytest.param(
            lambda f: f.pop(3),
            [(Code.TOOL_UNPAIRED, f"{LABEL}: tool_executing for 'search' (event 2) was never completed")],
            id="executing-never-completed",
        ),
        pytest.param(
            lambda f: f.insert(3, event("tool_completed", tool_name="lookup")),
            [(Code.TOOL_UNPAIRED, f"{LABEL}: tool_completed for 'lookup' (event 3) has no tool_executing")],
            id="completed-without-executing",
        ),
        pytest.param(
            lambda f: f.insert(2, f.pop(3)),
            [
                (Code.TOOL_ORDER,
                 f"{LABEL}: tool_completed for 'search' (event 2) arrived before its "
                 "tool_executing (event 3)"),
            ],
            id="completed-before-executing",
        ),
        pytest.param(
            lambda f: f[2].update(run_id="other-run"),
            [(Code.RUN_ID_MISMATCH,
              f"{LABEL}: event 2 (tool_executing) has run_id 'other-run', expected '{RUN}'")],
            id="run-id",
        ),
        pytest.param(
            lambda f: f[4].update(thread_id="thread-2"),
            [(Code.THREAD_ID_MISMATCH,
              f"{LABEL}: event 4 (agent_thinking) has thread_id 'thread-2', expected '{THREAD}'")],
            id="thread-id",
        ),
        pytest.param(
            lambda f: f[5].update(user_id="user-2"),
            [(Code.USER_ID_MISMATCH,
              f"{LABEL}: event 5 (tool_executing) has user_id 'user-2', expected '{USER}' "
              "(the connection's user)")],
            id="user-id",
        ),
        pytest.param(
            lambda f: f[7].update(message_id="message-2"),
            [(Code.MESSAGE_ID_MISMATCH,
              f"{LABEL}: event 7 (agent_completed) has message_id 'message-2', expected '{MESSAGE}' "
              "(the id sent)")],
            id="message-id",
        ),
        pytest.param(
            lambda f: f[1].update(timestamp="2026-11-24T23:01:02.345+02:00"),
            [(Code.BAD_TIMESTAMP,
              f"{LABEL}: event 1 (agent_thinking) timestamp '2026-11-24T23:01:02.345+02:00' "
              "is not ISO 8601 in UTC (Z or +00:00)")],
            id="timestamp-not-utc",
        ),
        pytest.param(
            lambda f: f[1].update(timestamp="2026-11-24T23:01:02.345"),
            [(Code.BAD_TIMESTAMP,
              f"{LABEL}: event 1 (agent_thinking) timestamp '2026-11-24T23:01:02.345' "
              "is not ISO 8601 in UTC (Z or +00:00)")],
            id="timestamp-without-zone",
        ),
        pytest.param(
            lambda f: f[1].update(timestamp=1795561262.345),
            [(Code.BAD_TIMESTAMP,
              f"{LABEL}: event 1 (agent_thinking) timestamp '1795561262.345' "
              "is not ISO 8601 in UTC (Z or +00:00)")],
            id="timestamp-epoch-number",
        ),
        pytest.param(
            lambda f: [f[1].pop("agent_name"), f[1].update(data=None)],
            [(Code.MISSING_FIELD, f"{LABEL}: event 1 (agent_thinking) lacks agent_name, data")],
            id="envelope-field",
        ),
        pytest.param(
            lambda f: f[2].pop("tool_name"),
            [
                (Code.MISSING_FIELD, f"{LABEL}: event 2 (tool_executing) lacks tool_name"),
                (Code.TOOL_UNPAIRED, f"{LABEL}: tool_completed for 'search' (event 3) has no tool_executing"),
            ],
            id="tool-name",
        ),
        pytest.param(
            lambda f: f[7].update(data={"text": "no result"}),
            [(Code.MISSING_FIELD, f"{LABEL}: event 7 (agent_completed) lacks data.result")],
            id="completion-result",
        ),
        pytest.param(
            lambda f: f[7].update(data={"result": None}),
            [(Code.MISSING_FIELD, f"{LABEL}: event 7 (agent_completed) lacks data.result")],
            id="completion-result-null",
        ),
        pytest.param(
            lambda f: f[1].update(data="thinking"),
            [(Code.MISSING_FIELD, f"{LABEL}: event 1 (agent_thinking) lacks data (not an object)")],
            id="data-not-object",
        ),
        pytest.param(
            lambda f: f.insert(2, event("agent_dreaming")),
            [(Code.FOREIGN_EVENT,
              f"{LABEL}: event 2 has type 'agent_dreaming', which is not an event of a run")],
            id="unknown-type",
        ),
    ],
)
def test_each_fault_gives_its_code_and_message(fault: Any, expected: list[tuple[Code, str]]) -> None:
    frames = valid_run()
    fault(frames)
    assert check(frames) == [(code.value, message) for code, message in expected]


BLANK = "(a completed run carries an answer)"
FAILED_RUN = f"{LABEL}: event 7 (agent_completed) says the run failed"
IS_BLANK = f"{LABEL}: event 7 (agent_completed) data.result is blank:"


@pytest.mark.parametrize(("completion", "message"), [
    pytest.param({"data": {"result": "   \n"}}, f"{IS_BLANK} '   \\n' {BLANK}", id="whitespace"),
    pytest.param({"data": {"result": {}}}, f"{IS_BLANK} {{}} {BLANK}", id="empty-object"),
    pytest.param({"data": {"result": []}}, f"{IS_BLANK} [] {BLANK}", id="empty-list"),
    pytest.param({"data": {"result": {"status": "error", "error": "tool failed"}}},
                 f"{FAILED_RUN} (data.result has status 'error'); data.result was "
                 "{'status': 'error', 'error': 'tool failed'}", id="result-status-error"),
    pytest.param({"data": {"result": {"status": "FAILED"}}},
                 f"{FAILED_RUN} (data.result has status 'FAILED'); data.result was {{'status': 'FAILED'}}",
                 id="result-status-failed-uppercase"),
    pytest.param({"data": {"result": {"text": "partial", "errors": ["timeout"]}}},
                 f"{FAILED_RUN} (data.result has errors \"['timeout']\"); data.result was "
                 "{'text': 'partial', 'errors': ['timeout']}", id="result-errors"),
    pytest.param({"data": {"result": "Sorry.", "status": "Failure"}},
                 f"{FAILED_RUN} (data has status 'Failure'); data.result was 'Sorry.'", id="data-status"),
    pytest.param({"data": {"result": "Sorry.", "error": "model unavailable"}},
                 f"{FAILED_RUN} (data has error 'model unavailable'); data.result was 'Sorry.'",
                 id="data-error"),
    pytest.param({"data": {"result": "Sorry."}, "status": "error"},
                 f"{FAILED_RUN} (the frame has status 'error'); data.result was 'Sorry.'", id="frame-status"),
    pytest.param({"data": {"result": "x" * 200, "status": "error"}},
                 f"{FAILED_RUN} (data has status 'error'); data.result was '{'x' * 79}", id="shown-to-80"),
])  # fmt: skip
def test_a_completed_run_without_a_real_answer_is_an_error_result(
    completion: dict[str, Any], message: str
) -> None:
    frames = valid_run()
    frames[7].update(completion)
    assert check(frames) == [(Code.ERROR_RESULT.value, message)]


@pytest.mark.parametrize("data", [
    {"result": "the answer", "error": None, "errors": [], "status": "completed"},
    {"result": {"text": "the answer", "status": "ok", "error": ""}},
    {"result": 0},
    {"result": False},
    {"result": ["a", "list"]},
    {"result": "the answer", "extra": {"note": "a field no client knows", "error_code_hint": "x"}},
])  # fmt: skip
def test_a_real_answer_passes_whatever_else_it_carries(data: dict[str, Any]) -> None:
    frames = valid_run()
    frames[7]["data"] = data
    assert check(frames) == []


def test_the_answer_rule_applies_through_check_run_to_a_collected_run() -> None:
    frames = valid_run()
    frames[7]["data"] = {"result": {"status": "error", "error": "tool failed"}}
    run = Run(MESSAGE, "hello", None, 0, 0, events=[Event(f, i, i) for i, f in enumerate(frames)])
    assert [v.code for v in check_run(run, USER)] == [Code.ERROR_RESULT]


@pytest.mark.parametrize("stamp", [
    "2026-11-24T23:01:02Z",
    "2026-11-24T23:01:02.3Z",
    "2026-11-24T23:01:02.345678Z",
    "2026-11-24T23:01:02.345678901Z",
    "2026-11-24T23:01:02+00:00",
    "2026-11-24T23:01:02.345+00:00",
    "2026-11-24T23:01:02.345678+00:00",
])  # fmt: skip
def test_a_timestamp_of_any_precision_in_utc_passes(stamp: str) -> None:
    frames = valid_run()
    for frame in frames:
        frame["timestamp"] = stamp
    assert check(frames) == []


def test_unknown_fields_at_the_top_and_in_data_are_ignored() -> None:
    frames = valid_run()
    for i, frame in enumerate(frames):
        frame.update(trace_id=f"{i:032x}", server="another-platform", protocol_version=1)
        frame["data"] = {**frame["data"], "extra": {"note": "a field no client knows"}, "tokens": 12}
    assert check(frames) == []
    assert check_stray(frames, USER, sent_message_ids={MESSAGE}) == []


def test_an_error_message_without_message_id_is_a_refusal_and_nothing_else() -> None:
    refusal = {"type": "error_message", "error_code": "VALIDATION_ERROR",
               "error_message": "unknown thread_id", "timestamp": "2026-11-24T23:01:02.345678Z",
               "trace_id": "abc"}  # fmt: skip
    assert check([refusal]) == [
        (Code.REJECTED, "message message-: server refused the message (VALIDATION_ERROR: unknown thread_id)")
    ]
    assert check_stray([refusal], USER, sent_message_ids={MESSAGE}) == []


def test_the_thread_sent_to_is_the_one_expected() -> None:
    assert check(valid_run(), thread_id="thread-9")[0] == (
        Code.THREAD_ID_MISMATCH,
        f"{LABEL}: event 0 (agent_started) has thread_id '{THREAD}', expected 'thread-9'",
    )


def test_a_failed_run_reports_the_agent_error_not_missing_events() -> None:
    frames = [event("agent_started"), event("agent_error", data={"error_message": "storage down"})]
    assert check(frames) == [(Code.AGENT_ERROR, f"{LABEL}: the run failed: agent_error 'storage down'")]


def test_a_refused_message_reports_only_the_refusal() -> None:
    frames = [{"type": "error_message", "error_code": "VALIDATION_ERROR",
               "error_message": "unknown thread_id", "message_id": MESSAGE}]  # fmt: skip
    assert check(frames) == [
        (Code.REJECTED, "message message-: server refused the message (VALIDATION_ERROR: unknown thread_id)")
    ]


def test_another_users_event_on_a_connection_is_foreign() -> None:
    mine = event("agent_thinking", run_id="other-run-of-mine")
    theirs = event("agent_thinking", user_id="user-2", run_id="abcdef0123")
    (violation,) = check_stray([mine, theirs], USER)
    assert (violation.code, violation.index) == (Code.FOREIGN_EVENT, 1)
    assert violation.message == (
        "connection of user user-1: received 'agent_thinking' of user user-2's run abcdef01 "
        "(another user's event)"
    )


def test_a_relabelled_leak_is_foreign_once_the_users_messages_are_known() -> None:
    relabelled = event("agent_thinking", run_id="abcdef0123", message_id="their-message")
    assert check_stray([relabelled], USER) == []  # could be this user's other socket
    (violation,) = check_stray([relabelled], USER, sent_message_ids={MESSAGE})
    assert violation.message == (
        "connection of user user-1: received 'agent_thinking' of run abcdef01 for message their-me, "
        "which this user never sent (another user's event under this user's id)"
    )


def renamed(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for frame in frames:
        if frame["type"] == "agent_completed":
            frame["type"] = "agent_finished"
    return frames


def test_a_renamed_event_is_a_setting_not_a_fork() -> None:
    settings = load_settings(REPO, "local", environ={"GOLDENPATH_EVENT_AGENT_COMPLETED": "agent_finished"})
    contract = Contract.from_settings(settings)
    assert contract.agent_completed == "agent_finished"
    assert "agent_finished" in contract.golden_path_events
    assert check(renamed(valid_run()), contract) == []
    missing = f"{LABEL}: no agent_finished (8 event(s) received, the last agent_completed)"
    assert (Code.MISSING_EVENT, missing) in check(valid_run(), contract)


def test_list_settings_are_comma_separated() -> None:
    settings = load_settings(REPO, "local", environ={
        "GOLDENPATH_CONTRACT_AUTH_TRANSPORTS": "query, header",
        "GOLDENPATH_CONTRACT_ENVELOPE_FIELDS": "type,run_id",
    })  # fmt: skip
    contract = Contract.from_settings(settings)
    assert contract.auth_transports == ("query", "header")
    assert contract.envelope_fields == ("type", "run_id")


def test_the_default_settings_give_the_protocol() -> None:
    assert Contract.from_settings(load_settings(REPO, "local", environ={})) == PROTOCOL
    assert SETTING_KEYS["agent_completed"] == "GOLDENPATH_EVENT_AGENT_COMPLETED"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"GOLDENPATH_EVENT_AGENT_COMPLETE": "x"},
         "unknown contract setting GOLDENPATH_EVENT_AGENT_COMPLETE; "
         "did you mean GOLDENPATH_EVENT_AGENT_COMPLETED?"),
        ({"GOLDENPATH_EVENT_AGENT_COMPLETED": "agent_started"},
         "contract settings (GOLDENPATH_EVENT_AGENT_COMPLETED): "
         "event name(s) agent_started used for two events"),
        ({"GOLDENPATH_CONTRACT_AUTH_TRANSPORTS": "cookie"},
         "contract settings (GOLDENPATH_CONTRACT_AUTH_TRANSPORTS): auth transports must be some of "
         "subprotocol, header, query, got ['cookie']"),
    ],
)
def test_bad_contract_settings_are_refused_by_name(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Contract.from_settings(load_settings(REPO, "local", environ=environ))
    assert str(caught.value) == message
