"""The golden path itself: a message streams the five events in order, an agent run can take
several tool steps, a conversation goes on in its thread, and it all happens within the SLA."""

from __future__ import annotations

from typing import Any

import pytest

from goldenpath.client.auth import Tokens
from goldenpath.protocol.sla import SlaRecorder, SlaReport

from .helpers import Harness, Scenario, server_is_refstack, thread_of, tool_pairs

pytestmark = [pytest.mark.golden_path, pytest.mark.websocket]

# refstack's agent takes at least this many tool steps for a message saying "multi-step".
REFSTACK_MULTI_STEP_TOOLS = 3
SLA_RUNS = 3


def test_message_streams_the_five_events_in_order(scenario: Scenario, account: Tokens) -> None:
    async def body(h: Harness) -> tuple[list[str | None], tuple[str, ...]]:
        run = await h.one_run(account, "What is the golden path of this platform?")
        return [event.type for event in run.events], h.gp.contract.golden_path_events

    kinds, (started, thinking, executing, completed, finished) = scenario(body)
    # check_run already holds the order to the contract; this states the journey plainly.
    assert kinds[0] == started, kinds
    assert kinds[-1] == finished, kinds
    for name in (thinking, executing, completed):
        assert name in kinds, f"no {name} in {kinds}"


def test_multi_step_request_runs_several_tools(scenario: Scenario, account: Tokens) -> None:
    async def body(h: Harness) -> tuple[list[str], int]:
        c = h.gp.contract
        async with h.connected(account) as connection:
            run = await h.complete(connection, "Please do a multi-step analysis of last quarter's usage")
            expected = REFSTACK_MULTI_STEP_TOOLS if server_is_refstack(connection) else 1
        return tool_pairs(run, c.tool_executing, c.tool_completed, c.tool_key), expected

    tools, expected = scenario(body)
    assert len(tools) >= expected, f"a multi-step request completed {len(tools)} tool pair(s): {tools}"


def test_conversation_continues_in_its_thread_with_a_new_run_per_message(
    scenario: Scenario, account: Tokens
) -> None:
    texts = ("Start a conversation about release planning", "And what comes after that?")

    async def body(h: Harness) -> tuple[list[str | None], str, list[dict[str, Any]]]:
        async with h.connected(account) as connection:
            first = await h.complete(connection, texts[0])
            thread_id = thread_of(first)
            second = await h.complete(connection, texts[1], thread_id=thread_id)

        def answered(messages: list[dict[str, Any]]) -> bool:
            return [m.get("role") for m in messages].count("assistant") >= len(texts)

        history = await h.history_until(account, thread_id, answered, "both answers")
        return [first.run_id, second.run_id], thread_id, history

    run_ids, thread_id, history = scenario(body)
    assert run_ids[0] != run_ids[1], f"two messages shared run_id {run_ids[0]}"
    roles = [m.get("role") for m in history]
    assert roles == ["user", "assistant", "user", "assistant"], f"thread {thread_id} history: {roles}"
    assert [history[0].get("content"), history[2].get("content")] == list(texts)
    assert [history[1].get("run_id"), history[3].get("run_id")] == run_ids, "answers stored under other runs"


@pytest.mark.sla
def test_golden_path_meets_the_service_levels(scenario: Scenario, account: Tokens) -> None:
    async def body(h: Harness) -> SlaReport:
        recorder = SlaRecorder(h.gp.contract)
        async with h.connected(account) as connection:
            recorder.add_connection_time(connection.connect_ns)
            for index in range(SLA_RUNS):
                run = await h.complete(connection, f"Service level probe {index + 1} of {SLA_RUNS}")
                recorder.add_run(run, connection.clock)
        return recorder.evaluate(h.settings.sla)

    report = scenario(body)
    assert report.passed, "service levels missed: " + "; ".join(r.message for r in report.failures)
