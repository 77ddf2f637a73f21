"""Readiness tells the truth: it agrees with itself, and with our own probes of the dependencies."""

from __future__ import annotations

import time
from typing import Any

import pytest

from goldenpath.core.masking import mask_url
from goldenpath.core.settings import Settings
from goldenpath.output.reports import LayerReport
from goldenpath.testkit.support import service_missing

from .support import (
    DEPENDENCIES,
    READINESS,
    Dependency,
    ReadinessEndpoint,
    read_readiness,
    readiness_problems,
)

# A dependency can change state between the readiness answer and our probe; only a
# disagreement that survives a few fresh looks is a finding.
LOOKS = 3
LOOK_INTERVAL_S = 1.0

PAIRS = [
    pytest.param(endpoint, dep, id=f"{endpoint.service}-{dep.check}")
    for endpoint in READINESS
    for dep in DEPENDENCIES
    if endpoint.service == "backend" or dep.check != "clickhouse"  # auth keeps no analytics
]


@pytest.mark.parametrize("endpoint", READINESS, ids=lambda endpoint: endpoint.service)
def test_readiness_answer_is_consistent(gp_settings: Settings, endpoint: ReadinessEndpoint) -> None:
    """HTTP 200 goes with a ready status and 503 with a not-ready one; every check carries the
    protocol's fields, and the overall status agrees with the checks."""
    answer = read_readiness(endpoint, gp_settings)
    problems = readiness_problems(endpoint, answer)
    assert not problems, "; ".join(problems)


def look(endpoint: ReadinessEndpoint, dependency: Dependency, url: str,
         settings: Settings) -> tuple[dict[str, Any], bool, str]:  # fmt: skip
    """(the readiness check of the dependency, whether our probe finds it up, what the probe saw)."""
    check = read_readiness(endpoint, settings).checks.get(dependency.check)
    if not isinstance(check, dict):
        pytest.skip(f"{endpoint.service} readiness has no {dependency.check!r} check to compare")
    up, seen = dependency.observe(url, settings.timeout_s)
    return check, up, seen


def contradicts(check: dict[str, Any], up: bool) -> bool:
    # not_configured contradicts nothing: the platform may not use what the profile names.
    return (check.get("status") == "healthy" and not up) or (check.get("status") == "unhealthy" and up)


@pytest.mark.real_services
@pytest.mark.parametrize(("endpoint", "dependency"), PAIRS)
def test_readiness_matches_the_dependencies(
    gp_settings: Settings, gp_report: LayerReport, endpoint: ReadinessEndpoint, dependency: Dependency
) -> None:
    """Readiness never calls a dependency healthy that our own probe of the profile's URL finds
    down, nor unhealthy one that answers. Without the URL (an embedded SQLite target, say) there
    is nothing to compare with, and test_readiness_answer_is_consistent is all there is."""
    url = dependency.url(gp_settings)
    if url is None:
        service_missing(dependency.label, dependency.unconfigured_reason(gp_settings))
    check, up, seen = look(endpoint, dependency, url, gp_settings)
    for _ in range(LOOKS - 1):
        if not contradicts(check, up):
            break
        time.sleep(LOOK_INTERVAL_S)
        check, up, seen = look(endpoint, dependency, url, gp_settings)
    where = f"{dependency.label} at {mask_url(url)}"
    assert not (check.get("status") == "healthy" and not up), (
        f"{endpoint.service} readiness says {dependency.check} is healthy, but our own probe finds "
        f"{where} down: {seen}"
    )
    assert not (check.get("status") == "unhealthy" and up), (
        f"{endpoint.service} readiness says {dependency.check} is unhealthy ({check.get('error')}), "
        f"but {where} answers our own probe: {seen}"
    )
    if check.get("status") == "not_configured":
        gp_report.notes.append(
            f"{endpoint.service} readiness reports {dependency.check} not_configured, "
            f"though the profile configures {dependency.setting} ({where}: {seen})"
        )
