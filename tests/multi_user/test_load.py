"""Task 3.3 at the profile's size: MULTI_USER_USERS users (default twice SLA_CONCURRENT_USERS)
with MULTI_USER_MESSAGES messages each, all connected at once, two sockets each; every event
of every user checked as it arrived (goldenpath.protocol.ledger), then latency, its trend,
the backend's memory per run, the connection count and thread privacy."""

from __future__ import annotations

import os
import socket

import pytest

from goldenpath.core.procinfo import find_listener
from goldenpath.core.settings import Settings
from goldenpath.load.report import LoadReport
from goldenpath.output.reports import LayerReport
from goldenpath.testkit.support import service_missing

from .support import findings_text, gate, run_layer_load

pytestmark = [pytest.mark.websocket, pytest.mark.golden_path]


@pytest.fixture(scope="session")
def load(gp_settings: Settings, gp_report: LayerReport) -> LoadReport:
    return run_layer_load(gp_settings, gp_report)


def test_every_user_connected_and_every_run_ended(load: LoadReport) -> None:
    """No login, upgrade or socket failed, no frame was garbage, every run ended in time."""
    failed = [g for g in load.gates() if g.name.endswith("_errors") or g.name == "runs_finished"]
    broken = [f"{g.name}: {g.message}" for g in failed if g.passed is False]
    assert not broken, "the crowd did not run as planned: " + "; ".join(broken)
    assert load.state.runs_done == load.state.plan.planned_runs, (
        f"{load.state.runs_done} of {load.state.plan.planned_runs} planned runs ended")


@pytest.mark.sla
def test_every_event_of_every_user_is_its_own_and_keeps_the_contract(load: LoadReport) -> None:
    """Each frame on each socket: the user's own, of a run it started, not another user's text
    (canary), not twice, not after its run ended, not a replay; each run keeps the contract."""
    findings = load.state.findings
    assert not findings, (
        f"{len(findings)} violation(s) among {load.state.plan.users} users x "
        f"{load.state.plan.messages} messages ({load.state.events} frames; "
        f"{load.lines()[1]}): " + findings_text(findings)
    )


@pytest.mark.sla
def test_latency_is_within_the_service_levels(load: LoadReport) -> None:
    failed = [r.message for r in load.sla.results if not r.passed]
    assert not failed, "SLA under load: " + "; ".join(failed)


@pytest.mark.sla
def test_latency_does_not_creep_as_runs_accumulate(load: LoadReport) -> None:
    """p95 of the last fifth of runs over the first fifth's, at most GOLDENPATH_TREND_MAX_RATIO."""
    creeping = [t.message() for t in load.trends if t.passed is False]
    assert not creeping, "latency creeps: " + "; ".join(creeping)
    unmeasured = [t.message() for t in load.trends if t.passed is None]
    assert not unmeasured, "; ".join(unmeasured)


@pytest.mark.slow
def test_backend_memory_does_not_grow_per_run(load: LoadReport) -> None:
    """The backend's RSS against runs completed: its fitted slope, at most GOLDENPATH_MEMORY_SLOPE_KB."""
    memory = gate(load, "memory")
    if memory.passed is None:
        service_missing("the backend's memory", memory.message)
    assert memory.passed, memory.message


def test_the_targets_connections_return_to_baseline(load: LoadReport) -> None:
    connections = load.state.connections
    assert connections is not None, "the run ended before the connection count was read"
    if not connections.exposed:
        service_missing("the target's open-connection count", connections.message())
    assert connections.returned, connections.message()


def test_a_users_thread_is_refused_to_every_other_user(load: LoadReport) -> None:
    """After the run each user reads the next user's thread: 404, never the messages."""
    assert load.state.privacy_checked == load.state.users_connected, (
        f"{load.state.privacy_checked} cross reads for {load.state.users_connected} users")
    assert not load.state.privacy_breaches, "; ".join(load.state.privacy_breaches[:5])


def test_the_memory_watch_finds_the_listening_process() -> None:
    """The instrument of the memory gate: a port this process listens on leads back to this
    process, with a resident size, so a wrong pid cannot make the memory check pass vacuously."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        listener = find_listener(port)
        assert listener is not None, f"no process found listening on port {port}, though this one does"
        assert listener.pids == (os.getpid(),), f"port {port} is ours; procinfo names {listener.describe()}"
        assert listener.rss_kib() > 0, f"VmRSS of this process reads {listener.rss_kib()} KiB"
    assert find_listener(port) is None, f"port {port} is closed, but procinfo still finds a listener"
