"""`invoke stack.up|status|logs|down` as a developer types them: a stack in the background,
healthy, found again from its pid file, and nothing left behind when it is stopped."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from goldenpath.core.http import free_port, port_is_open
from goldenpath.core.settings import load_settings
from goldenpath.core.stack import pid_alive
from goldenpath.core.target import LOCAL_SECRETS, ensure_target
from goldenpath.testkit.support import environ_without_settings

REPO = Path(__file__).resolve().parents[2]


def invoke(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO,
                          env={**environ_without_settings(), "GOLDENPATH_STACK_DIR": str(tmp_path / "stack"),
                               "COLUMNS": "200", **env},
                          capture_output=True, text=True, timeout=120, check=False)


def test_up_status_logs_down_leaves_nothing_behind(tmp_path: Path) -> None:
    backend, auth = free_port(), free_port()
    env = {"BACKEND_URL": f"http://127.0.0.1:{backend}", "AUTH_SERVICE_URL": f"http://127.0.0.1:{auth}"}

    up = invoke(tmp_path, env, "stack.up", "--json", str(tmp_path / "up.json"))
    assert up.returncode == 0, up.stdout + up.stderr
    pid = json.loads((tmp_path / "up.json").read_text())["pid"]
    secrets_file = tmp_path / "stack" / "secrets.env"
    try:
        assert_secrets_handed_on(secrets_file, env, up.stdout + up.stderr, tmp_path)
        status = invoke(tmp_path, env, "stack.status", "--json", str(tmp_path / "status.json"))
        assert status.returncode == 0, status.stdout + status.stderr
        report = json.loads((tmp_path / "status.json").read_text())
        assert report["pid"] == pid
        assert {p["name"]: p["status"] for p in report["probes"]} == {
            "auth /health": "ok", "auth ready": "ok", "backend /health": "ok", "backend ready": "ok"}

        again = invoke(tmp_path, env, "stack.up")
        assert again.returncode == 1
        assert f"the stack is already running (pid {pid})" in again.stderr

        logs = invoke(tmp_path, env, "stack.logs", "--lines", "20")
        assert logs.returncode == 0
        assert "refstack" in logs.stdout
    finally:
        down = invoke(tmp_path, env, "stack.down")
    assert down.returncode == 0
    assert f"stack stopped (pid {pid})" in down.stdout
    assert not pid_alive(pid)
    assert not port_is_open("127.0.0.1", backend, 0.5)
    assert not port_is_open("127.0.0.1", auth, 0.5)
    assert not secrets_file.exists(), "stack.down left the stack's secrets behind"
    after = invoke(tmp_path, env, "stack.status")
    assert after.returncode == 1
    assert "error: the target is not healthy" in after.stderr


def assert_secrets_handed_on(path: Path, env: dict[str, str], output: str, tmp_path: Path) -> None:
    """stack.up made up the secrets the profile lacks, kept them private, printed none of them,
    and a layer using that stack gets them: the auth service takes the bypass key."""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = dict(line.split("=", 1) for line in path.read_text().splitlines() if not line.startswith("#"))
    assert set(written) == {"BACKEND_URL", "AUTH_SERVICE_URL", "E2E_OAUTH_SIMULATION_KEY", "JWT_SECRET_KEY",
                            "JWT_ISSUER", "JWT_AUDIENCE"}
    assert not any(written[key] in output for key in LOCAL_SECRETS)
    settings = load_settings(REPO, "local", environ={**env, "GOLDENPATH_STACK_DIR": str(tmp_path / "stack")})
    with ensure_target(settings) as target:
        assert target.started is None
        assert target.secrets_from == path
        key = target.settings.get("E2E_OAUTH_SIMULATION_KEY")
    assert key == written["E2E_OAUTH_SIMULATION_KEY"]
    answer = httpx.post(f"{settings.auth_service_url}/auth/e2e/test-auth", timeout=10,
                        json={"email": "goldenpath-test-stack-up@goldenpath.test"},
                        headers={"X-E2E-Bypass-Key": key})
    assert answer.status_code == 200, answer.text


def test_a_taken_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {"BACKEND_URL": f"http://127.0.0.1:{port}", "AUTH_SERVICE_URL": f"http://127.0.0.1:{free_port()}"}
        up = invoke(tmp_path, env, "stack.up")
    assert up.returncode == 1
    assert f"error: port {port} on 127.0.0.1 is already taken by another process" in up.stderr
    assert "Traceback" not in up.stdout + up.stderr


def test_bad_flags_and_settings_exit_2_in_one_line(tmp_path: Path) -> None:
    no_dsn = invoke(tmp_path, {"DATABASE_URL": ""}, "stack.up", "--postgres")
    assert no_dsn.returncode == 2
    assert "error: --postgres needs DATABASE_URL" in no_dsn.stderr
    bad_port = invoke(tmp_path, {"BACKEND_URL": "http://127.0.0.1:99999"}, "stack.status")
    assert bad_port.returncode == 2
    assert "BACKEND_URL='http://127.0.0.1:99999': the port is not a number from 1 to 65535" in bad_port.stderr
    assert "Traceback" not in no_dsn.stderr + bad_port.stderr


def test_bad_numbers_and_paths_in_flags_exit_2_in_one_line(tmp_path: Path) -> None:
    cases = [
        (("stack.logs", "--lines", "abc"), "error: --lines takes a whole number of at least 1, not 'abc'"),
        (("staging.health", "--deadline", "soon"), "error: --deadline takes a number of at least 0.001"),
        (("staging.health", "--retries", "-1"), "error: --retries takes a whole number of at least 0"),
        (("stack.down", "--json", str(tmp_path / "a-file" / "x.json")), "a-file is a file, not a directory"),
    ]
    (tmp_path / "a-file").write_text("a file, so nothing can be written below it\n")
    for args, message in cases:
        proc = invoke(tmp_path, {}, *args)
        assert proc.returncode == 2, (args, proc.stdout + proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr


def test_docker_tasks_without_an_engine_say_so_in_one_line(tmp_path: Path) -> None:
    for args in (("docker.usage",), ("docker.clean", "--dry-run")):
        proc = invoke(tmp_path, {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}, *args)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "error: cannot reach the docker engine" in proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
    bad = invoke(tmp_path, {}, "docker.clean", "--high", "abc")
    assert bad.returncode == 2
    assert "error: --high takes a percentage of the disk, e.g. 85, not 'abc'" in bad.stderr
