"""goldenpath's checks inside Locust's distributed runner (issue #13), against a real refstack.

Each test starts refstack on fresh loopback ports, then a headless Locust master and two
workers (separate processes talking over ZeroMQ, as on separate machines) running
examples/locustfile.py: 200 users, 2 messages each. The master must exit 0 with the report
written on a healthy stack, and non-zero naming what went wrong when the stack leaks events
to other users or drops tool_completed.

The service levels are loosened for these runs: refstack, the master and two workers share a
2-core machine with the rest of the test run, so latency here says nothing about the platform
(timing belongs to the SLA gates of a real target and to bench/). What is under test is that
every frame of every user reaches the ledger and that its findings reach the master's report
and exit code.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from goldenpath.core import stack
from goldenpath.core.http import free_port
from goldenpath.testkit.support import environ_without_settings, service_missing

from . import stacks

LOCUST = (sys.executable, "-m", "locust")  # this interpreter's: the layer's virtualenv
LOCUSTFILE = stacks.REPO / "examples" / "locustfile.py"
USERS = 200
MESSAGES = 2
WORKERS = 2
SPAWN_RATE = 50  # 4 s to reach 200 users: small enough to be a ramp, the run stays short
RUN_TIME_S = 60  # Locust's own cap; a healthy run ends by itself once every user sent its messages
PROCESS_TIMEOUT_S = RUN_TIME_S + 45  # ours, over Locust's: a hung master fails the test, never hangs it
LOOSE_SLA = {"SLA_WS_CONNECT_MS": "60000", "SLA_FIRST_EVENT_MS": "60000", "SLA_TOOL_RESULT_MS": "60000",
             "SLA_EVENT_DELIVERY_MS": "60000"}  # fmt: skip


@dataclass
class LocustRun:
    code: int
    output: str  # the master's stdout and stderr
    report: dict[str, Any]
    report_dir: Path

    def codes(self) -> set[str]:
        return {str(v["code"]) for v in self.report["violations"]}


@pytest.fixture(autouse=True)
def _locust_installed() -> None:
    if importlib.util.find_spec("locust") is None or importlib.util.find_spec("websocket") is None:
        service_missing("locust", "locust and websocket-client are not installed "
                                  "(pip install goldenpath[locust])")


def test_healthy_refstack_passes_with_the_report_written(tmp_path: Path) -> None:
    run = distributed_run(tmp_path, faults=None)

    assert run.code == 0, run.output
    assert run.report["status"] == "passed", run.report["problems"]
    assert run.report["violations"] == []
    # Every run of every user on both workers was checked, and the run ended by itself.
    assert run.report["outcomes"] == {"passed": USERS * MESSAGES}
    assert f"{USERS} user(s) on {WORKERS} Locust process(es)" in run.report["notes"][0]
    assert any(f"all {USERS} users sent their messages" in note for note in run.report["notes"])
    metrics = {m["metric"]: m for m in run.report["sla"]["metrics"]}
    assert set(metrics) == {"ws_connect", "first_event", "tool_result", "event_delivery"}
    assert metrics["ws_connect"]["count"] == USERS
    assert metrics["first_event"]["count"] == USERS * MESSAGES
    assert (run.report_dir / "locust.md").is_file()
    assert (run.report_dir / "index.html").is_file()


def test_leak_fails_and_the_report_names_the_leaked_runs(tmp_path: Path) -> None:
    run = distributed_run(tmp_path, faults="leak_rare:0.2")

    assert run.code != 0, run.output
    assert run.report["status"] == "failed"
    assert run.codes() & {"FOREIGN_EVENT", "FOREIGN_CANARY"}, run.report["violations"]
    leaked = [v for v in run.report["violations"] if v["code"] in ("FOREIGN_EVENT", "FOREIGN_CANARY")]
    named = next(p for p in run.report["problems"] if "leaked run(s)" in p)
    # The runs named as leaked are the runs whose frames were found on another user's socket.
    assert any(v["run_id"] and v["run_id"] in named for v in leaked), (named, leaked[:3])
    # Evidence: the other user and the frame itself travelled from the worker to the master.
    assert all("other user" in v["message"] and "frame '" in v["message"] for v in leaked)
    assert "goldenpath: locust run FAILED" in run.output


def test_dropped_tool_completed_fails_naming_the_contract_violation(tmp_path: Path) -> None:
    run = distributed_run(tmp_path, faults="drop:tool_completed")

    assert run.code != 0, run.output
    assert run.report["status"] == "failed"
    assert "TOOL_UNPAIRED" in run.codes(), run.report["violations"][:3]
    assert any("TOOL_UNPAIRED" in p for p in run.report["problems"]), run.report["problems"]
    assert "TOOL_UNPAIRED" in run.output  # Locust's own failure table names it too


def test_a_bad_profile_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**environ_without_settings(), "GOLDENPATH_ENV": "no-such-profile"}
    result = subprocess.run(
        [*LOCUST, "-f", str(LOCUSTFILE), "--headless", "-u", "1", "--run-time", "5s"],
        env=env, cwd=stacks.REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 2, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("goldenpath:")]
    assert len(ours) == 1, result.stderr
    assert "unknown profile 'no-such-profile'" in ours[0]
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------


def distributed_run(tmp_path: Path, *, faults: str | None) -> LocustRun:
    """refstack, then a Locust master and WORKERS workers until the master exits."""
    settings, spec = stacks.spec(tmp_path / "stack", faults=faults)
    report_dir = tmp_path / "reports"
    ours = {"E2E_OAUTH_SIMULATION_KEY": stacks.E2E_KEY, "GOLDENPATH_REPORTS_DIR": str(report_dir)}
    settings = settings.with_values({**ours, **LOOSE_SLA}, "test")
    env = {**environ_without_settings(), **settings.as_env()}
    port = str(free_port())
    master_cmd = [*LOCUST, "-f", str(LOCUSTFILE), "--headless", "--master",
                  "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
                  "--expect-workers", str(WORKERS), "--expect-workers-max-wait", "30",
                  "-u", str(USERS), "-r", str(SPAWN_RATE), "--run-time", f"{RUN_TIME_S}s",
                  "--gp-messages", str(MESSAGES), "--only-summary"]  # fmt: skip
    worker_cmd = [*LOCUST, "-f", str(LOCUSTFILE), "--worker", "--master-host", "127.0.0.1",
                  "--master-port", port]
    master_log = tmp_path / "master.log"
    with stack.running(spec), ExitStack() as processes:
        master = processes.enter_context(started(master_cmd, env, master_log))
        workers = [processes.enter_context(started(worker_cmd, env, tmp_path / f"worker{i}.log"))
                   for i in range(WORKERS)]  # fmt: skip
        code = master.wait(timeout=PROCESS_TIMEOUT_S)
        for worker in workers:  # they quit when the master tells them to
            worker.wait(timeout=30)
    output = master_log.read_text(encoding="utf-8", errors="replace")
    report_path = report_dir / "locust.json"
    assert report_path.is_file(), f"no report written; master said:\n{output[-3000:]}"
    return LocustRun(code, output, json.loads(report_path.read_text(encoding="utf-8")), report_dir)


@contextmanager
def started(command: Sequence[str], env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own group; on the way out, whatever of the group still runs is killed
    and reaped, so a failed assertion or a timeout leaves no orphan behind."""
    with log.open("wb") as out:
        process = subprocess.Popen(list(command), env=dict(env), cwd=stacks.REPO, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        else:
            # Locust's own children, if any, share its group: none may outlive the test.
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
