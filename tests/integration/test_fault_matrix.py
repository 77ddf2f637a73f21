"""Proof of the validators, both ways, each layer run the way a user runs it (`nox -s <layer>`):

- on refstack with a fault injected, the layer fails, and its report names that fault: a
  violation code, a failed SLA metric or load gate, or the one test that exists to catch it,
  read from the report's JSON, never from a substring of the output;
- on every healthy variant of refstack (a platform that differs from refstack's habits
  in ways the protocol allows), the layer passes;
- on a healthy refstack, the layer passes five times in a row; the staging rows do so
  against the real PostgreSQL, Redis and ClickHouse, with services required.

The layers get the stack through the process environment (BACKEND_URL, ...), which wins
over every profile, with GOLDENPATH_AUTOSTART=0, so they can never test a stack of their own.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from goldenpath.core import stack
from goldenpath.core.http import free_port
from goldenpath.core.settings import Settings, load_settings
from goldenpath.testkit.support import environ_without_settings, service_missing

REPO = Path(__file__).resolve().parents[2]
LAYER_TIMEOUT_S = 600
HEALTHY_RUNS = 5
DATA_SERVICES = ("DATABASE_URL", "REDIS_URL", "CLICKHOUSE_URL")
# Every stack declares what it issues, so the e2e layer forges tokens that differ (and none
# of its tests is left out).
CLAIMS = {"JWT_ISSUER": "goldenpath-matrix", "JWT_AUDIENCE": "goldenpath-matrix-users"}

pytestmark = [pytest.mark.fault, pytest.mark.slow]


@dataclass(frozen=True)
class Row:
    """One layer run against one refstack: what it is given, and what its report must say."""

    layer: str
    faults: str = ""
    variants: str = ""
    # Findings the report must hold, as "kind:name": code:<violation code>, sla:<metric>,
    # gate:<load gate>, test:<test function>. Empty: the layer must pass.
    expected: tuple[str, ...] = ()
    layer_env: Mapping[str, str] = field(default_factory=dict)
    stack_env: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.layer}-{self.faults or self.variants or 'healthy'}"


def closed_url(scheme: str) -> str:
    """A URL of a dependency that is down: nothing listens on the port."""
    return f"{scheme}://nobody:nothing@127.0.0.1:{free_port()}/0"


FORGED = "test_token_with_a_wrong_issuer_or_audience_is_refused"
BROKEN_DB = closed_url("postgresql")
BROKEN_REDIS = closed_url("redis")
FAULTS = [
    # e2e: the golden path of one user.
    Row("e2e", "drop:tool_completed", expected=("code:TOOL_UNPAIRED",)),
    Row("e2e", "reorder_tools", expected=("code:TOOL_ORDER",)),
    Row("e2e", "duplicate_completed", expected=("code:DUPLICATE_COMPLETION",)),
    Row("e2e", "wrong_run_id", expected=("code:RUN_ID_MISMATCH",)),
    Row("e2e", "error_result", expected=("code:ERROR_RESULT",)),
    Row("e2e", "blank_result", expected=("code:ERROR_RESULT",)),
    Row("e2e", "stale_replay", expected=("code:STALE_REPLAY",)),
    Row("e2e", "second_socket_duplicate", expected=("code:DUPLICATE_DELIVERY",)),
    Row("e2e", "ws_no_auth", expected=("test:test_websocket_without_token_is_refused",)),
    Row("e2e", "ws_invalid_token", expected=("test:test_invalid_token_is_refused",)),
    Row("e2e", "accept_expired", expected=("test:test_expired_token_is_refused",)),
    Row("e2e", "accept_refresh_as_access",
        expected=("test:test_refresh_token_is_refused_as_access_token",)),
    Row("e2e", "accept_wrong_issuer", expected=(f"test:{FORGED}",)),
    Row("e2e", "accept_wrong_audience", expected=(f"test:{FORGED}",)),
    Row("e2e", "idor", expected=("test:test_another_users_thread_is_neither_served_nor_listed",)),
    Row("e2e", "json_close",
        expected=("test:test_client_mistake_gets_its_error_code_and_the_connection_stays_usable",)),
    # staging: a deployed environment's service levels and honesty.
    Row("staging", "slow_first_event:600", expected=("sla:first_event",),
        layer_env={"SLA_FIRST_EVENT_MS": "300"}),
    Row("staging", "delay_event:1500", expected=("sla:event_delivery",)),
    Row("staging", "slow_connect:600", expected=("sla:ws_connect",), layer_env={"SLA_WS_CONNECT_MS": "300"}),
    Row("staging", "ready_lies", expected=("test:test_readiness_matches_our_probe_of_each_dependency",),
        layer_env={"DATABASE_URL": BROKEN_DB}, stack_env={"DATABASE_URL": BROKEN_DB}),
    Row("staging", "ready_lies_redis",
        expected=("test:test_readiness_matches_our_probe_of_each_dependency",),
        layer_env={"REDIS_URL": BROKEN_REDIS}, stack_env={"REDIS_URL": BROKEN_REDIS}),
    # A frame 20 ms after the run's end: the sampling user's sockets are all still open then.
    Row("staging", "late_event:20", expected=("code:EVENT_AFTER_COMPLETION",)),
    Row("staging", "second_socket_duplicate", expected=("code:DUPLICATE_DELIVERY",)),
    # multi_user: many users at once; isolation, latency over time, memory.
    Row("multi_user", "leak", expected=("code:FOREIGN_EVENT",)),
    Row("multi_user", "leak_rewrite", expected=("code:FOREIGN_EVENT",)),
    # 1 run in 20: missed by 240 checked runs with probability 0.95^240, about 5e-6.
    Row("multi_user", "leak_rare:0.05", expected=("code:FOREIGN_EVENT", "code:FOREIGN_CANARY")),
    # Only while 15 or more users are connected: the layer holds its 20 users at once.
    Row("multi_user", "leak_crowd:15", expected=("code:FOREIGN_EVENT", "code:FOREIGN_CANARY")),
    Row("multi_user", "late_event", expected=("code:EVENT_AFTER_COMPLETION",)),
    Row("multi_user", "latency_creep", expected=("gate:trend_first_event",)),
    Row("multi_user", "memory_creep", expected=("gate:memory",)),
    Row("multi_user", "memory_leak:2048", expected=("gate:memory",)),
]
# Healthy platforms that differ from refstack's habits in ways the protocol allows.
VARIANTS = ("usec_timestamps", "offset_timestamps", "error_no_message_id", "extra_fields",
            "clock_ahead:5000", "slow_tool:3000")
# A tool slower than the per-call timeout (2 s here) but inside the tool service level:
# the layers' waits must follow the service level.
SLOW_TOOL_ENV = {"GOLDENPATH_TIMEOUT_S": "2"}
HEALTHY_VARIANT_ROWS = [
    *(Row("e2e", variants=v, layer_env=SLOW_TOOL_ENV if v.startswith("slow_tool") else {})
      for v in VARIANTS),
    # The other two layers meet every variant at once: one row each.
    Row("staging", variants=",".join(VARIANTS), layer_env=SLOW_TOOL_ENV),
    Row("multi_user", variants=",".join(VARIANTS), layer_env=SLOW_TOOL_ENV),
]


def stack_settings(**extra: str) -> Settings:
    return load_settings(REPO, "local", environ={
        "BACKEND_URL": f"http://127.0.0.1:{free_port()}",
        "AUTH_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
        "E2E_OAUTH_SIMULATION_KEY": secrets.token_urlsafe(24),
        "JWT_SECRET_KEY": secrets.token_urlsafe(32),
        **CLAIMS,
        **extra,
    })


# Layers whose virtualenv this process brought up to date.
INSTALLED: set[str] = set()


def run_layer(layer: str, settings: Settings, reports: Path,
              extra: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`nox -s <layer>` against the given target, as a user would type it."""
    # The layer sees exactly the stack's settings: none of ours (a DATABASE_URL, a REDIS_URL)
    # may reach it, or it would check services the stack was never given.
    env = {**environ_without_settings(), **settings.as_env(), "GOLDENPATH_AUTOSTART": "0",
           "GOLDENPATH_TIMEOUT_S": "5", "GOLDENPATH_REPORTS_DIR": str(reports), **(extra or {})}
    env.pop("GOLDENPATH_ENV")
    command = [sys.executable, "-m", "nox", "--noxfile", str(REPO / "noxfile.py"), "-s", layer]
    if layer in INSTALLED:
        # -R reuses the session's virtualenv as it is: checking it again for each of fifty
        # rows would double the matrix's time.
        command.append("-R")
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=LAYER_TIMEOUT_S, check=False)
    # The first run of a layer in this process brings its virtualenv up to date, one process
    # at a time: pytest-xdist's workers would otherwise install into it at once.
    lock_path = REPO / ".nox" / f".install-{layer}.lock"
    lock_path.parent.mkdir(exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        INSTALLED.add(layer)
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=LAYER_TIMEOUT_S, check=False)


def findings(reports: Path, layer: str) -> set[str]:
    """What the layer's report says went wrong, as "kind:name" (see Row.expected)."""
    found: set[str] = set()
    for name in (f"{layer}.json", f"{layer}-load.json"):
        path = reports / name
        if not path.exists():
            continue
        report: dict[str, Any] = json.loads(path.read_text())
        violations = report.get("violations", [])
        # A layer report lists its violations; a load report counts them by code.
        codes = (violations.get("by_code", {}) if isinstance(violations, dict)
                 else [v["code"] for v in violations])
        found |= {f"code:{code}" for code in codes}
        found |= {f"sla:{m['metric']}" for m in (report.get("sla") or {}).get("metrics", [])
                  if m.get("passed") is False}
        found |= {f"gate:{g['name']}" for g in report.get("gates", []) if g.get("passed") is False}
        # "tests/e2e/test_x.py::test_y[param] (in setup)" -> test:test_y
        found |= {"test:" + f["test"].split("::")[-1].split("[")[0].split(" ")[0]
                  for f in report.get("failures", [])}
    return found


def real_services() -> dict[str, str]:
    """The data services CI starts; a laptop without them skips these rows."""
    given = {key: os.environ[key] for key in DATA_SERVICES if os.environ.get(key)}
    missing = [key for key in DATA_SERVICES if key not in given]
    if missing:
        service_missing("PostgreSQL, Redis and ClickHouse", f"{', '.join(missing)} not set")
    return given


def assert_passes(row: Row, proc: subprocess.CompletedProcess[str], reports: Path) -> None:
    report = reports / f"{row.layer}.json"
    assert proc.returncode == 0, (
        f"false failure of {row} on a healthy platform; the report found "
        f"{sorted(findings(reports, row.layer))}:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}")
    assert json.loads(report.read_text())["status"] == "passed"


@contextmanager
def refstack(row: Row, tmp: Path, **extra: str) -> Iterator[Settings]:
    settings = stack_settings(**row.stack_env, **extra)
    variants = {"REFSTACK_VARIANTS": row.variants} if row.variants else {}
    spec = stack.refstack_spec(settings, faults=row.faults or None, state_dir=tmp / "stack",
                               extra_env=variants)
    with stack.running(spec):
        yield settings


@pytest.mark.parametrize("layer", ["e2e", "multi_user"])
def test_a_healthy_stack_passes_every_time(layer: str, tmp_path: Path) -> None:
    row = Row(layer)
    with refstack(row, tmp_path) as settings:
        for attempt in range(1, HEALTHY_RUNS + 1):
            reports = tmp_path / f"run{attempt}"
            assert_passes(row, run_layer(layer, settings, reports), reports)


def test_a_healthy_staging_with_real_services_passes_every_time(tmp_path: Path) -> None:
    services = real_services()
    row = Row("staging", stack_env=services, layer_env={**services, "GOLDENPATH_REQUIRE_SERVICES": "1"})
    with refstack(row, tmp_path) as settings:
        for attempt in range(1, HEALTHY_RUNS + 1):
            reports = tmp_path / f"run{attempt}"
            proc = run_layer("staging", settings, reports, row.layer_env)
            assert_passes(row, proc, reports)
            skipped = json.loads((reports / "staging.json").read_text())["outcomes"].get("skipped", 0)
            assert not skipped, f"with every service there, staging skipped {skipped} test(s)"


@pytest.mark.parametrize("row", HEALTHY_VARIANT_ROWS, ids=str)
def test_a_healthy_platform_that_differs_passes(row: Row, tmp_path: Path) -> None:
    with refstack(row, tmp_path) as settings:
        reports = tmp_path / "reports"
        assert_passes(row, run_layer(row.layer, settings, reports, row.layer_env), reports)


@pytest.mark.parametrize("row", FAULTS, ids=str)
def test_the_layer_fails_naming_the_fault(row: Row, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    with refstack(row, tmp_path) as settings:
        proc = run_layer(row.layer, settings, reports, row.layer_env)
    found = findings(reports, row.layer)
    assert proc.returncode != 0, f"{row.layer} passed on a stack with {row.faults}:\n{proc.stdout[-4000:]}"
    missing = [name for name in row.expected if name not in found]
    assert not missing, (
        f"{row.layer} failed on {row.faults} without naming {missing}; its report found "
        f"{sorted(found)}:\n{proc.stdout[-6000:]}")
