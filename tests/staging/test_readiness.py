"""Readiness tells the truth: it agrees with itself, and with our own probes of the dependencies."""

from __future__ import annotations

from typing import Any

import pytest

from goldenpath.core.masking import mask_url
from goldenpath.core.settings import Settings
from goldenpath.output.reports import LayerReport
from goldenpath.testkit.support import service_missing, services_required

from .support import (
    BACKEND_READINESS,
    DEPENDENCIES,
    READINESS,
    Dependency,
    ReadinessEndpoint,
    read_readiness,
    readiness_problems,
)

# A dependency can change state between the readiness answer and our probe; only a
# disagreement that survives this many fresh looks (readiness, then our probe) is a finding.
LOOKS = 3


@pytest.mark.parametrize("endpoint", READINESS, ids=lambda endpoint: endpoint.service)
def test_readiness_answer_is_consistent(gp_settings: Settings, endpoint: ReadinessEndpoint) -> None:
    """HTTP 200 goes with a ready status and 503 with a not-ready one; the backend's checks carry
    the protocol's fields and its overall status agrees with them (3.1); the auth service's
    document is held to its own shape (3.2)."""
    answer = read_readiness(endpoint, gp_settings)
    problems = readiness_problems(endpoint, answer)
    assert not problems, "; ".join(problems)


def look(dependency: Dependency, url: str, settings: Settings) -> tuple[dict[str, Any], bool, str]:
    """(the backend's readiness check of the dependency, whether our probe finds it up, what it saw)."""
    check = read_readiness(BACKEND_READINESS, settings).checks.get(dependency.check)
    if not isinstance(check, dict):
        pytest.fail(f"backend readiness has no {dependency.check!r} check (docs/protocol.md 3.1 names "
                    "database, redis and clickhouse)", pytrace=False)  # fmt: skip
    up, seen = dependency.observe(url, settings.timeout_s)
    return check, up, seen


def contradicts(check: dict[str, Any], up: bool) -> bool:
    return (check.get("status") == "healthy" and not up) or (check.get("status") == "unhealthy" and up)


@pytest.mark.real_services
@pytest.mark.parametrize("dependency", DEPENDENCIES, ids=lambda dependency: dependency.check)
def test_readiness_matches_our_probe_of_each_dependency(
    gp_settings: Settings, gp_report: LayerReport, dependency: Dependency
) -> None:
    """For each dependency of the backend's readiness, its reported status against goldenpath's own
    probe of the profile's URL (SELECT 1, PING, ClickHouse /ping and SELECT 1): healthy while the
    probe fails, or unhealthy while it succeeds, is a lie; not_configured for a dependency the
    profile configures fails where services are required (GOLDENPATH_REQUIRE_SERVICES)."""
    url = dependency.url(gp_settings)
    if url is None:
        service_missing(dependency.label, dependency.unconfigured_reason(gp_settings))
    check, up, seen = look(dependency, url, gp_settings)
    for _ in range(LOOKS - 1):
        if not contradicts(check, up):
            break
        check, up, seen = look(dependency, url, gp_settings)
    where = mask_url(url)
    name = dependency.check
    assert not (check.get("status") == "healthy" and not up), (
        f"readiness says {name} is healthy, but {where} does not answer {dependency.asks}: {seen}"
    )
    assert not (check.get("status") == "unhealthy" and up), (
        f"readiness says {name} is unhealthy ({check.get('error')}), but {where} answers "
        f"{dependency.asks}: {seen}"
    )
    if check.get("status") == "not_configured":
        finding = (f"readiness reports {name} not_configured, but the profile configures "
                   f"{dependency.setting} ({where}: {seen}): the platform does not use it, "
                   "or hides it")  # fmt: skip
        if services_required():
            pytest.fail(f"{finding} (GOLDENPATH_REQUIRE_SERVICES=1, so this is a failure)", pytrace=False)
        gp_report.notes.append(f"{finding}; not a failure because services are not required")
