"""The layers' auto-start hook, exercised with a small stand-in for the reference stack."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from goldenpath.core import stack
from goldenpath.core.errors import StackError
from goldenpath.core.http import free_port, port_is_open
from goldenpath.core.settings import Settings, load_settings
from goldenpath.core.target import ensure_target, target_answers

REPO = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).with_name("standin_stack.py")


def settings_on_free_ports(**extra: str) -> Settings:
    environ = {
        "BACKEND_URL": f"http://127.0.0.1:{free_port()}",
        "AUTH_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
        "GOLDENPATH_TIMEOUT_S": "1",
        **extra,
    }
    return load_settings(REPO, "local", environ=environ)


def standin_spec(settings: Settings, tmp_path: Path, **env: str) -> stack.StackSpec:
    return stack.StackSpec(
        command=(sys.executable, str(STANDIN)),
        health_urls=(f"{settings.backend_url}/health", f"{settings.auth_service_url}/health"),
        state_dir=tmp_path / "state",
        env={**settings.as_env(), **env},
        startup_timeout_s=10,
    )


def ports(settings: Settings) -> Iterator[int]:
    for url in (settings.backend_url, settings.auth_service_url):
        yield int(url.rsplit(":", 1)[1])


def nothing_listens(settings: Settings) -> bool:
    return not any(port_is_open("127.0.0.1", port, 0.5) for port in ports(settings))


def test_a_silent_loopback_target_is_started_for_the_block_and_stopped(tmp_path: Path) -> None:
    settings = settings_on_free_ports()
    spec = standin_spec(settings, tmp_path)
    with ensure_target(settings, spec=spec) as target:
        started = target.started
        assert started is not None
        assert target_answers(settings)
        assert spec.pid_path.read_text().strip() == str(started.pid)
        # The tests get the secrets the stack was started with, made up for this run.
        assert target.settings.get("E2E_OAUTH_SIMULATION_KEY")
        assert target.settings.get("JWT_SECRET_KEY") != settings.get("JWT_SECRET_KEY")
    assert not started.alive()
    assert nothing_listens(settings)
    assert not spec.pid_path.exists()


def test_the_stack_is_stopped_on_ctrl_c_too(tmp_path: Path) -> None:
    settings = settings_on_free_ports()
    seen: list[stack.RunningStack] = []

    def interrupted_session() -> None:
        with ensure_target(settings, spec=standin_spec(settings, tmp_path)) as target:
            assert target.started is not None
            seen.append(target.started)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_session()
    assert not seen[0].alive()
    assert nothing_listens(settings)


def test_a_target_that_answers_is_used_as_it_is(tmp_path: Path) -> None:
    settings = settings_on_free_ports()
    with stack.running(standin_spec(settings, tmp_path)) as already_up, \
            ensure_target(settings, spec=standin_spec(settings, tmp_path / "other")) as target:
        assert target.started is None
        assert target.settings == settings
        assert already_up.alive()


def test_a_remote_target_that_does_not_answer_is_never_started(tmp_path: Path) -> None:
    settings = settings_on_free_ports(BACKEND_URL="http://staging.invalid:8000")
    with pytest.raises(StackError, match=r"^target http://staging.invalid:8000 does not answer"), \
            ensure_target(settings, spec=standin_spec(settings, tmp_path)):
        pass


def test_autostart_can_be_switched_off(tmp_path: Path) -> None:
    settings = settings_on_free_ports(GOLDENPATH_AUTOSTART="0")
    with pytest.raises(StackError, match="GOLDENPATH_AUTOSTART=0"), \
            ensure_target(settings, spec=standin_spec(settings, tmp_path)):
        pass


def test_a_crash_at_start_names_the_exit_code_and_the_log_line(tmp_path: Path) -> None:
    settings = settings_on_free_ports()
    with pytest.raises(StackError) as err:
        stack.start(standin_spec(settings, tmp_path, STANDIN_CRASH="1"))
    assert "exited with code 3 while starting: standin: cannot open the database: disk full" in str(err.value)


def test_a_taken_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    settings = settings_on_free_ports()
    port = next(ports(settings))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(StackError, match=rf"port {port} on 127.0.0.1 is already taken"):
            stack.start(standin_spec(settings, tmp_path))
    assert not (tmp_path / "state" / "stack.pid").exists()


def test_a_stack_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    settings = settings_on_free_ports()
    running = stack.start(standin_spec(settings, tmp_path, STANDIN_IGNORE_TERM="1"))
    stack.stop(running, timeout_s=0.5)
    assert not running.alive()
    assert nothing_listens(settings)


def test_a_stack_left_by_stack_up_is_found_from_its_pid_file(tmp_path: Path) -> None:
    settings = settings_on_free_ports()
    spec = standin_spec(settings, tmp_path)
    started = stack.start(spec)
    try:
        found = stack.find_running(spec)
        assert found is not None
        assert found.pid == started.pid
    finally:
        stack.stop(started)
    assert stack.find_running(spec) is None


def test_a_pid_file_naming_another_process_is_stale(tmp_path: Path) -> None:
    settings = settings_on_free_ports()
    spec = standin_spec(settings, tmp_path)
    spec.state_dir.mkdir(parents=True)
    # This test's own process: alive, but not the stack's command.
    spec.pid_path.write_text(f"{os.getpid()}\n")
    assert stack.find_running(spec) is None
    assert not spec.pid_path.exists()
