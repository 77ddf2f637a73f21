"""Proof of the validators: each layer, run the way a user runs it (`nox -s <layer>`), fails
on refstack with a fault injected, naming that fault; and passes on a healthy refstack,
five times in a row.

The layers get the faulty stack through the process environment (BACKEND_URL, ...), which
wins over every profile, and GOLDENPATH_AUTOSTART=0, so they can never test a stack of
their own instead.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from goldenpath.core import stack
from goldenpath.core.http import free_port
from goldenpath.core.settings import Settings, load_settings
from goldenpath.testkit.support import environ_without_settings

REPO = Path(__file__).resolve().parents[2]
LAYER_TIMEOUT_S = 600
HEALTHY_RUNS = 5

pytestmark = [pytest.mark.fault, pytest.mark.slow]


@dataclass(frozen=True)
class Fault:
    faults: str
    layer: str
    expected: str
    # Tighter bounds let a fault breach them in a fraction of a second instead of seconds.
    layer_env: Mapping[str, str] = field(default_factory=dict)
    stack_env: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.layer}-{self.faults}"


def closed_database() -> str:
    return f"postgresql://nobody:nothing@127.0.0.1:{free_port()}/none"


BROKEN_DB = closed_database()
MATRIX = [
    Fault("drop:tool_completed", "e2e", "MISSING_EVENT"),
    Fault("reorder_tools", "e2e", "TOOL_ORDER"),
    Fault("duplicate_completed", "e2e", "DUPLICATE_COMPLETION"),
    Fault("wrong_run_id", "e2e", "RUN_ID_MISMATCH"),
    Fault("never_complete", "e2e", "no agent_completed"),
    Fault("ws_no_auth", "e2e", "accepted a WebSocket without a token"),
    Fault("ws_invalid_token", "e2e", "accepted a WebSocket with an invalid token"),
    Fault("accept_expired", "e2e", "accepted an expired token"),
    Fault("accept_refresh_as_access", "e2e", "accepted a refresh token as an access token"),
    Fault("idor", "e2e", "served another user's thread"),
    Fault("json_close", "e2e", "closed the connection after malformed JSON"),
    Fault("slow_first_event:600", "staging", "first_event", layer_env={"SLA_FIRST_EVENT_MS": "300"}),
    Fault("delay_event:1500", "staging", "event_delivery"),
    Fault("slow_connect:600", "staging", "ws_connect", layer_env={"SLA_WS_CONNECT_MS": "300"}),
    Fault("ready_lies", "staging", "readiness says database is healthy",
          layer_env={"DATABASE_URL": BROKEN_DB}, stack_env={"DATABASE_URL": BROKEN_DB}),
    Fault("leak", "multi_user", "FOREIGN_EVENT"),
    Fault("leak_rewrite", "multi_user", "FOREIGN_EVENT"),
    Fault("memory_leak:2048", "multi_user", "memory grew"),
]


def stack_settings(**extra: str) -> Settings:
    return load_settings(REPO, "local", environ={
        "BACKEND_URL": f"http://127.0.0.1:{free_port()}",
        "AUTH_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
        "E2E_OAUTH_SIMULATION_KEY": secrets.token_urlsafe(24),
        "JWT_SECRET_KEY": secrets.token_urlsafe(32),
        **extra,
    })


def run_layer(layer: str, settings: Settings, reports: Path,
              extra: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`nox -s <layer>` against the given target, as a user would type it."""
    # The layer sees exactly the stack's settings: none of ours (a DATABASE_URL, a REDIS_URL)
    # may reach it, or it would check services the faulty stack was never given.
    env = {**environ_without_settings(), **settings.as_env(), "GOLDENPATH_AUTOSTART": "0",
           "GOLDENPATH_TIMEOUT_S": "5", "GOLDENPATH_REPORTS_DIR": str(reports), **(extra or {})}
    env.pop("GOLDENPATH_ENV")
    return subprocess.run(
        [sys.executable, "-m", "nox", "--noxfile", str(REPO / "noxfile.py"), "-s", layer,
         "--reuse-venv=yes"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=LAYER_TIMEOUT_S, check=False,
    )


@pytest.fixture(scope="module")
def healthy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = stack_settings()
    with stack.running(stack.refstack_spec(settings, state_dir=tmp_path_factory.mktemp("healthy"))):
        yield settings


@pytest.mark.parametrize("layer", ["e2e", "staging", "multi_user"])
def test_a_healthy_stack_passes_every_time(layer: str, healthy_stack: Settings, tmp_path: Path) -> None:
    for attempt in range(1, HEALTHY_RUNS + 1):
        proc = run_layer(layer, healthy_stack, tmp_path / f"run{attempt}")
        assert proc.returncode == 0, (
            f"false failure of {layer} on a healthy stack, run {attempt} of {HEALTHY_RUNS}:\n"
            + proc.stdout[-4000:] + proc.stderr[-2000:])
    assert (tmp_path / f"run{HEALTHY_RUNS}" / f"{layer}.md").exists()


@pytest.mark.parametrize("fault", MATRIX, ids=str)
def test_the_layer_fails_naming_the_fault(fault: Fault, tmp_path: Path) -> None:
    settings = stack_settings(**fault.stack_env)
    spec = stack.refstack_spec(settings, faults=fault.faults, state_dir=tmp_path / "stack")
    with stack.running(spec):
        proc = run_layer(fault.layer, settings, tmp_path / "reports", fault.layer_env)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"{fault.layer} passed on a stack with {fault.faults}:\n{output[-4000:]}"
    assert fault.expected in output, (
        f"{fault.layer} failed on {fault.faults} without saying {fault.expected!r}:\n{output[-6000:]}")
