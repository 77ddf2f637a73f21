"""Liveness and readiness: readiness must reflect the real state of each dependency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from goldenpath.core.http import free_port

from .stacks import launched
from .wire import CHECK_FIELDS, Target, get

DEPENDENCIES = {"database": "DATABASE_URL", "redis": "REDIS_URL", "clickhouse": "CLICKHOUSE_URL"}


def dead_address() -> str:
    """host:port of a loopback port nothing listens on: connections are refused at once."""
    return f"127.0.0.1:{free_port()}"


def check_shape(check: Any) -> None:
    assert isinstance(check, dict)
    assert check.keys() >= CHECK_FIELDS, check


def test_backend_liveness(target: Target) -> None:
    answer = get(f"{target.backend_url}/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_auth_liveness(target: Target) -> None:
    answer = get(f"{target.auth_url}/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "healthy"
    assert body["service"] == "auth-service"
    assert "version" in body
    assert isinstance(body["uptime_seconds"], int | float)
    assert body["uptime_seconds"] >= 0


def test_backend_readiness_reports_each_dependency(target: Target) -> None:
    answer = get(f"{target.backend_url}/api/health/ready")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "healthy"
    assert set(body["checks"]) >= set(DEPENDENCIES)
    for name, variable in DEPENDENCIES.items():
        check = body["checks"][name]
        check_shape(check)
        # The database is always configured: SQLite is the embedded default.
        if name == "database" or target.env.get(variable):
            assert check["status"] == "healthy", (name, check)
            assert check["connected"] is True
            assert isinstance(check["response_time_ms"], int | float)
            assert check["error"] is None
        else:
            assert check["status"] == "not_configured", (name, check)


def test_auth_readiness(target: Target) -> None:
    answer = get(f"{target.auth_url}/health/ready")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready"
    assert isinstance(body["checks"], dict)


def test_readiness_when_every_dependency_is_down(state_dir: Path) -> None:
    env = {
        "DATABASE_URL": f"postgresql://goldenpath:secret@{dead_address()}/goldenpath",
        "REDIS_URL": f"redis://{dead_address()}/0",
        "CLICKHOUSE_URL": f"http://{dead_address()}",
    }
    # launched() returns only once both liveness endpoints answer 200: start-up survives.
    with launched(state_dir, env=env) as target:
        answer = get(f"{target.backend_url}/api/health/ready")
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["status"] == "unhealthy"
        for name in DEPENDENCIES:
            check = body["checks"][name]
            check_shape(check)
            assert check["status"] == "unhealthy", (name, check)
            assert check["connected"] is False
            assert isinstance(check["error"], str)
            assert check["error"]
        auth = get(f"{target.auth_url}/health/ready")
        assert auth.status_code == 503, auth.text
        assert auth.json()["status"] == "not_ready"
        assert get(f"{target.backend_url}/health").status_code == 200


def test_readiness_when_optional_dependencies_are_down(state_dir: Path) -> None:
    env = {"REDIS_URL": f"redis://{dead_address()}/0", "CLICKHOUSE_URL": f"http://{dead_address()}"}
    with launched(state_dir, env=env) as target:
        answer = get(f"{target.backend_url}/api/health/ready")
        body = answer.json()
        assert body["checks"]["database"]["status"] == "healthy"
        assert body["checks"]["redis"]["status"] == "unhealthy"
        assert body["checks"]["clickhouse"]["status"] == "unhealthy"
        assert body["status"] in ("degraded", "unhealthy")
        # 503 exactly when the answer is "unhealthy"; whether Redis is required is the platform's call.
        assert (answer.status_code == 503) == (body["status"] == "unhealthy"), answer.text
        # The auth service's session store is Redis here, so it is not ready without it.
        auth = get(f"{target.auth_url}/health/ready")
        assert auth.status_code == 503, auth.text
        assert auth.json()["status"] == "not_ready"
