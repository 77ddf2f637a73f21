"""Each injected fault, started on its own refstack, shows the defect it is named after.

Most of these are the inverse of a check the healthy stacks pass elsewhere in the suite,
with the same helpers: they show that those checks can fail.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from goldenpath.core.http import free_port
from goldenpath.core.procinfo import vm_rss_kib

from .stacks import launched
from .wire import (
    GOLDEN_PATH_EVENTS,
    Event,
    User,
    attempt,
    auth_post,
    bypass_user,
    delivery_latencies,
    get,
    history,
    order_problems,
    run,
    run_ids,
    session,
    unique_email,
    unusable_tokens,
    user_run,
)

pytestmark = [pytest.mark.fault, pytest.mark.websocket]


def leaked(state_dir: Path, fault: str) -> tuple[User, User, list[Event], list[Event]]:
    """Alice runs a message while Bob is connected: her events, and what Bob's socket got."""
    with launched(state_dir, faults=fault) as target:
        alice, bob = bypass_user(target), bypass_user(target)

        async def scenario() -> tuple[list[Event], list[Event]]:
            async with (
                session(target, alice.access_token) as sender,
                session(target, bob.access_token) as other,
            ):
                return await sender.run("for alice only"), await other.drain()

        events, received = run(scenario())
    assert received, f"{fault}: bob's socket received nothing"
    assert run_ids(received) == run_ids(events), "what bob got belongs to alice's run"
    return alice, bob, events, received


def test_leak_sends_events_to_another_user(state_dir: Path) -> None:
    alice, _, _, received = leaked(state_dir, "leak:1")
    assert {e["user_id"] for e in received} == {alice.user_id}


def test_leak_rewrite_disguises_the_leaked_event_as_the_receivers(state_dir: Path) -> None:
    _, bob, _, received = leaked(state_dir, "leak_rewrite:1")
    assert {e["user_id"] for e in received} == {bob.user_id}


@pytest.mark.parametrize("dropped", GOLDEN_PATH_EVENTS)
def test_drop_suppresses_one_event_type(state_dir: Path, dropped: str) -> None:
    with launched(state_dir, faults=f"drop:{dropped}") as target:
        user = bypass_user(target)

        async def scenario() -> list[Event]:
            async with session(target, user.access_token) as sock:
                message_id = await sock.send_message("drop one")
                if dropped == "agent_completed":
                    return await sock.frames_for(1.0)
                return await sock.run_of(message_id)

        events = run(scenario())
    types = [e["type"] for e in events]
    assert dropped not in types, types
    assert set(types) == set(GOLDEN_PATH_EVENTS) - {dropped}, "only that type is missing"
    assert order_problems(events) != []


def test_drop_connection_established(state_dir: Path) -> None:
    with launched(state_dir, faults="drop:connection_established") as target:
        user = bypass_user(target)

        async def scenario() -> list[Event]:
            async with session(target, user.access_token, greet=False) as sock:
                return await sock.run("no greeting")

        events = run(scenario())
    assert events[0]["type"] == "agent_started", "the run's events came first: no greeting was sent"
    assert order_problems(events) == []


def test_reorder_tools_completes_before_executing(state_dir: Path) -> None:
    with launched(state_dir, faults="reorder_tools") as target:
        events = run(user_run(target, bypass_user(target), "reorder"))
    assert any("without an earlier tool_executing" in p for p in order_problems(events)), events


def test_duplicate_completed_sends_agent_completed_twice(state_dir: Path) -> None:
    with launched(state_dir, faults="duplicate_completed") as target:
        user = bypass_user(target)

        async def scenario() -> tuple[list[Event], list[Event]]:
            async with session(target, user.access_token) as sock:
                return await sock.run("twice"), await sock.drain()

        events, trailing = run(scenario())
    assert [e["type"] for e in trailing] == ["agent_completed"]
    assert run_ids(trailing) == run_ids(events)


def test_delay_event_makes_delivery_late(state_dir: Path) -> None:
    with launched(state_dir, faults="delay_event:700") as target:
        user = bypass_user(target)

        async def scenario() -> list[float]:
            async with session(target, user.access_token) as sock:
                await sock.run("late")
                return delivery_latencies(sock.log[1:])

        latencies = run(scenario())
    assert max(latencies) >= 0.65, f"no event arrived late: {latencies}"


def test_slow_first_event_delays_agent_started(state_dir: Path) -> None:
    with launched(state_dir, faults="slow_first_event:1200") as target:
        user = bypass_user(target)

        async def scenario() -> float:
            async with session(target, user.access_token) as sock:
                sent = time.monotonic()
                await sock.send_message("slow start")
                await sock.until(lambda e: e.get("type") == "agent_started")
                return time.monotonic() - sent

        assert run(scenario()) >= 1.15


def test_never_complete_leaves_the_run_open(state_dir: Path) -> None:
    with launched(state_dir, faults="never_complete") as target:
        user = bypass_user(target)

        async def scenario() -> list[Event]:
            async with session(target, user.access_token) as sock:
                await sock.send_message("never ends")
                return await sock.frames_for(1.0)

        types = [e["type"] for e in run(scenario())]
    assert "agent_started" in types
    assert "tool_completed" in types, "the run did start and work"
    assert not {"agent_completed", "agent_error"} & set(types), types


def test_slow_connect_delays_connection_established(state_dir: Path) -> None:
    with launched(state_dir, faults="slow_connect:800") as target:
        user = bypass_user(target)

        async def scenario() -> tuple[float, Event]:
            started = time.monotonic()
            async with session(target, user.access_token, greet=False) as sock:
                first = await sock.recv()
                return time.monotonic() - started, first

        elapsed, first = run(scenario())
    assert first["type"] == "connection_established"
    assert elapsed >= 0.75


# fault -> the unusable token (None: no token at all) it lets in.
ADMITTING = {
    "ws_no_auth": None,
    "ws_invalid_token": "bad-signature",
    "accept_expired": "expired",
    "accept_refresh_as_access": "refresh",
}


@pytest.mark.parametrize("fault", ADMITTING)
def test_auth_faults_admit_what_must_be_refused(state_dir: Path, fault: str) -> None:
    kind = ADMITTING[fault]
    with launched(state_dir, faults=fault) as target:
        token = None if kind is None else unusable_tokens(bypass_user(target), target.jwt_secret)[kind]
        outcome = run(attempt(target, token, "header"))
        if fault.startswith("accept_"):
            # These two are documented to reach REST and /auth/validate as well.
            assert get(f"{target.backend_url}/api/threads", token).status_code == 200
            assert auth_post(target, "/auth/validate", {"token": token}).status_code == 200
    assert not outcome.refused, outcome
    assert json.loads(outcome.frames[0])["type"] == "connection_established"


def test_idor_shows_another_users_thread(state_dir: Path) -> None:
    with launched(state_dir, faults="idor") as target:
        alice, mallory = bypass_user(target), bypass_user(target)
        thread_id = run(user_run(target, alice, "alice's secret"))[0]["thread_id"]
        answer = history(target, mallory, thread_id)
    assert answer.status_code == 200, answer.text
    assert "alice's secret" in [m["content"] for m in answer.json()["messages"]]


def test_ready_lies_reports_healthy_with_the_database_down(state_dir: Path) -> None:
    dead = f"postgresql://goldenpath:secret@127.0.0.1:{free_port()}/goldenpath"
    with launched(state_dir, faults="ready_lies", env={"DATABASE_URL": dead}) as target:
        ready = get(f"{target.backend_url}/api/health/ready")
        registered = auth_post(target, "/auth/register", {"email": unique_email(), "password": "pw-123456"})
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "healthy"
    assert ready.json()["checks"]["database"]["status"] == "healthy"
    assert registered.status_code >= 500, "the database really is down, which readiness hides"


def test_wrong_run_id_puts_a_foreign_run_id_in_the_run(state_dir: Path) -> None:
    with launched(state_dir, faults="wrong_run_id") as target:
        events = run(user_run(target, bypass_user(target), "which run?"))
    assert len(run_ids(events)) > 1, events


def test_json_close_closes_on_malformed_json(state_dir: Path) -> None:
    with launched(state_dir, faults="json_close") as target:
        user = bypass_user(target)

        async def scenario() -> tuple[int | None, list[Event]]:
            async with session(target, user.access_token) as sock:
                await sock.ws.send("{not json")
                return await sock.closed()

        code, before = run(scenario())
    assert code == 1003, f"malformed JSON must close the socket (1003 per docs/refstack.md), got {code}"
    assert before == [], "instead of an error_message"


def rss_kb(pid: int) -> int:
    rss = vm_rss_kib(pid)
    assert rss is not None, f"no VmRSS for pid {pid}"
    return rss


def test_memory_leak_grows_the_process(state_dir: Path) -> None:
    runs, leak_kb = 10, 4096
    with launched(state_dir, faults=f"memory_leak:{leak_kb}") as target:
        user = bypass_user(target)

        async def scenario() -> None:
            async with session(target, user.access_token) as sock:
                for n in range(runs):
                    await sock.run(f"leak {n}")

        before = rss_kb(target.pid)
        # Each run allocates before its first event, so all of it is done once the runs are.
        run(scenario())
        grown = rss_kb(target.pid) - before
    assert grown >= runs * leak_kb // 2, f"RSS grew by {grown} kB over {runs} runs"
