"""`invoke preflight` as ops run it: all ok on a healthy machine, a stopped service fails
its check with a remediation and exit 1, bad input exits 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from goldenpath.core import stack
from goldenpath.core.http import free_port
from goldenpath.core.settings import Settings, load_settings
from goldenpath.testkit.support import environ_without_settings

from . import app_repo
from .services import OwnRedis

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The reference stack on free ports, with a made-up E2E key so the socket is probed too."""
    settings = load_settings(REPO, "local", environ={
        "BACKEND_URL": f"http://127.0.0.1:{free_port()}",
        "AUTH_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
        "E2E_OAUTH_SIMULATION_KEY": "preflight-test-key-0123456789",
    })
    with stack.running(stack.refstack_spec(settings, state_dir=tmp_path_factory.mktemp("pf"))):
        yield settings


def preflight(settings: Settings, tmp_path: Path, *args: str,
              **env: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = tmp_path / "preflight.json"
    environ = environ_without_settings()
    environ.update(settings.as_env())
    environ.update({"COLUMNS": "200", **env})
    proc = subprocess.run([sys.executable, "-m", "invoke", "preflight", "--json", str(report), *args],
                          cwd=REPO, env=environ, capture_output=True, text=True, timeout=300, check=False)
    data = json.loads(report.read_text()) if report.exists() else {}
    return proc, data


def statuses(data: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in data["checks"]}


def test_a_healthy_machine_is_all_ok(healthy: Settings, tmp_path: Path, own_redis: OwnRedis) -> None:
    proc, data = preflight(healthy, tmp_path, REDIS_URL=own_redis.url)
    found = statuses(data)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("profile", "tools", "auth-ports", "auth:/health", "auth:ready", "backend:/health",
                 "backend:ready", "websocket", "redis", "collection"):
        assert found.pop(name) == "ok", data
    # The engine may be absent on a laptop: then docker is a skip with its reason, never a crash.
    assert found == {"docker": "ok"} or found == {"docker": "skip"}
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_stopped_service_fails_its_check_with_a_remediation(
        healthy: Settings, tmp_path: Path, own_redis: OwnRedis) -> None:
    own_redis.stop()
    proc, data = preflight(healthy, tmp_path, "--skip", "collection", REDIS_URL=own_redis.url)
    assert proc.returncode == 1
    redis = next(check for check in data["checks"] if check["name"] == "redis")
    assert redis["status"] == "fail"
    assert "Connection refused" in redis["detail"]
    assert redis["remediation"]
    assert statuses(data)["backend:/health"] == "ok"
    assert "preflight failed: redis" in proc.stderr


def test_a_stopped_target_fails_the_http_checks(tmp_path: Path) -> None:
    silent = load_settings(REPO, "local", environ={
        "BACKEND_URL": f"http://127.0.0.1:{free_port()}",
        "AUTH_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
    })
    proc, data = preflight(silent, tmp_path, "--only", "backend", "--only", "auth")
    assert proc.returncode == 1
    assert set(statuses(data).values()) == {"fail"}
    assert all("nothing answers" in c["detail"] or "not the auth-service" in c["detail"]
               or "no readiness JSON" in c["detail"] for c in data["checks"])


def test_app_root_shows_the_applications_audit_and_port_checks(healthy: Settings, tmp_path: Path) -> None:
    root = app_repo.build(tmp_path / "chatapp").root
    # The application's interpreter runs its pytest: nothing is installed into the collect venv.
    settings = healthy.with_values({"GOLDENPATH_APP_PYTHON": sys.executable}, "test")
    proc, data = preflight(settings, tmp_path, "--only", "auth-ports", "--only", "collection",
                           "--app-root", str(root))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = {check["name"]: check for check in data["checks"]}
    assert found["auth-ports"]["status"] == "fail"
    assert "the application's files declare 4 different auth ports" in found["auth-ports"]["detail"]
    assert found["collection"]["status"] == "fail"
    assert (f"first cause: missing module {app_repo.MISSING_PACKAGE} ({app_repo.FACTORY_FILES} files)"
            in found["collection"]["detail"])
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--app-root", "/no/such/app"), {}, "error: --app-root /no/such/app: not a directory"),
        (("--only", "nope"), {}, "error: unknown check 'nope'; checks: profile, tools, docker"),
        ((), {"GOLDENPATH_ENV": "nope"}, "error: unknown profile 'nope' (GOLDENPATH_ENV); profiles: ci"),
        ((), {"SLA_PERCENTILE": "0"}, "error: environment: SLA_PERCENTILE='0': must be a percentile"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(healthy: Settings, tmp_path: Path, args: tuple[str, ...],
                                          env: dict[str, str], message: str) -> None:
    proc, _ = preflight(healthy, tmp_path, "--skip", "collection", *args, **env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
