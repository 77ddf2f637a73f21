"""Connectivity of every service the profile configures, each spoken to in its own protocol."""

from __future__ import annotations

import pytest

from goldenpath.checks.health import all_probes
from goldenpath.checks.probes import ProbePolicy, run_probes
from goldenpath.core.settings import Settings
from goldenpath.testkit.support import service_missing

from .support import DEPENDENCIES, Dependency

# goldenpath.checks.health names the probe of each data service after the service, not its check.
PROBE_NAMES = {"database": "postgres", "redis": "redis", "clickhouse": "clickhouse"}

SERVICES = [
    pytest.param("backend /health", None, id="backend"),
    pytest.param("auth /health", None, id="auth"),
    pytest.param("websocket", None, id="websocket", marks=pytest.mark.websocket),
    *(pytest.param(PROBE_NAMES[dep.check], dep, id=PROBE_NAMES[dep.check], marks=pytest.mark.real_services)
      for dep in DEPENDENCIES),
]  # fmt: skip


def policy(settings: Settings) -> ProbePolicy:
    # A staging across a network deserves a retry before a blip counts as "unreachable".
    return ProbePolicy(timeout_s=settings.timeout_s, retries=2, interval_s=1.0,
                       deadline_s=3 * settings.timeout_s + 2)  # fmt: skip


@pytest.mark.parametrize(("probe_name", "dependency"), SERVICES)
def test_service_is_reachable(gp_settings: Settings, probe_name: str, dependency: Dependency | None) -> None:
    """The backend and auth service answer /health as themselves, the WebSocket reaches
    connection_established, PostgreSQL answers SELECT 1, Redis PING, ClickHouse /ping and SELECT 1."""
    probes = [probe for probe in all_probes(gp_settings) if probe[0] == probe_name]
    if not probes:
        assert dependency is not None, f"goldenpath.checks.health has no probe named {probe_name!r}"
        service_missing(dependency.label, dependency.unconfigured_reason(gp_settings))
    [result] = run_probes(probes, policy(gp_settings))
    if result.status == "skip":
        service_missing(f"a probe user for {probe_name}", result.detail)
    assert result.ok, f"{probe_name} at {result.target} is not reachable: {result.detail}"
