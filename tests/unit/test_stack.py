"""The layers' auto-start hook, exercised with a small stand-in for the reference stack:
when a stack is started (only for the profile's declared embedded target), how it dies with
its run, and how `invoke stack.up` hands its secrets to the layers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from goldenpath.core import stack
from goldenpath.core.errors import StackError
from goldenpath.core.http import free_port, port_is_open
from goldenpath.core.settings import Settings, load_settings
from goldenpath.core.target import (
    autostart_refusal,
    check_target,
    ensure_target,
    stack_up_secrets,
    target_answers,
)

REPO = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).with_name("standin_stack.py")
# How long the kernel and the stand-in may take to end it once its parent is gone.
DEATH_DEADLINE_S = 15.0


def settings_on_free_ports(**extra: str) -> Settings:
    """URLs and GOLDENPATH_AUTOSTART=1 declared together, in the process environment."""
    environ = {
        "BACKEND_URL": f"http://127.0.0.1:{free_port()}",
        "AUTH_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
        "GOLDENPATH_TIMEOUT_S": "1",
        "GOLDENPATH_AUTOSTART": "1",
        **extra,
    }
    return load_settings(REPO, "local", environ=environ)


def profile_root(tmp_path: Path, name: str, text: str) -> Path:
    """A repository root whose only profile is ``name`` with ``text``."""
    (tmp_path / "envs").mkdir(parents=True)
    (tmp_path / "envs" / f"{name}.env").write_text(text)
    return tmp_path


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


# --- Autostart only for the profile's own declared embedded target ---------------------


def test_a_url_from_elsewhere_than_the_autostart_switch_is_never_started(tmp_path: Path) -> None:
    # The profile says autostart (envs/local.env); the URL comes from the environment: the
    # user means their own app (or typo'd the port), so nothing is started in its place.
    silent = f"http://127.0.0.1:{free_port()}"
    settings = load_settings(REPO, "local", environ={"BACKEND_URL": silent, "GOLDENPATH_TIMEOUT_S": "1"})
    assert settings.autostart
    with pytest.raises(StackError) as err, ensure_target(settings, spec=standin_spec(settings, tmp_path)):
        pass
    assert str(err.value) == (
        f"nothing answers at {silent} (BACKEND_URL from environment), and goldenpath starts the "
        "reference stack only for the profile's own embedded target (envs/local.env); set "
        "GOLDENPATH_AUTOSTART=1 beside the URL to have it started there")
    assert not (tmp_path / "state" / "stack.pid").exists()


def test_urls_and_the_switch_in_the_same_profile_file_start_the_stack(tmp_path: Path) -> None:
    backend, auth = free_port(), free_port()
    root = profile_root(tmp_path / "repo", "mine", f"BACKEND_URL=http://127.0.0.1:{backend}\n"
                        f"AUTH_SERVICE_URL=http://127.0.0.1:{auth}\nGOLDENPATH_AUTOSTART=1\n")
    settings = load_settings(root, "mine", environ={"GOLDENPATH_TIMEOUT_S": "1"})
    with ensure_target(settings, spec=standin_spec(settings, tmp_path)) as target:
        assert target.started is not None
        assert target_answers(settings)
    assert nothing_listens(settings)


def test_defaulted_urls_are_declared_by_the_defaults_not_by_the_profile(tmp_path: Path) -> None:
    # The built-in loopback URLs with autostart from a profile that names no target: the
    # profile declared no embedded target, so none is started (and 8000/8081 stay untouched).
    root = profile_root(tmp_path / "repo", "bare", "GOLDENPATH_AUTOSTART=1\n")
    settings = load_settings(root, "bare", environ={"GOLDENPATH_TIMEOUT_S": "1"})
    assert settings.origins["BACKEND_URL"].source == "default"
    # Asked of the rule itself: other runs on this machine may well have a stack on 8000.
    refusal = autostart_refusal(settings, settings.backend_url)
    assert refusal is not None
    assert "(BACKEND_URL from default)" in refusal
    assert "(envs/bare.env)" in refusal


def test_autostart_is_off_by_default() -> None:
    from goldenpath.core.settings import SPECS_BY_NAME

    assert SPECS_BY_NAME["GOLDENPATH_AUTOSTART"].default == "0"
    for profile in ("local", "ci"):
        settings = load_settings(REPO, profile, environ={})
        assert settings.autostart
        # Declared beside the profile's URLs, which is what makes them startable.
        assert {settings.origins[name].source for name in
                ("BACKEND_URL", "AUTH_SERVICE_URL", "GOLDENPATH_AUTOSTART")} == {f"envs/{profile}.env"}


# --- A layer that never auto-starts (staging) -------------------------------------------


def test_staging_with_nothing_configured_is_one_line() -> None:
    settings = load_settings(REPO, "staging", environ={})
    with pytest.raises(StackError) as err:
        check_target(settings, layer_autostart=False, layer="staging")
    assert str(err.value) == ("no staging configured: set BACKEND_URL and AUTH_SERVICE_URL in "
                              "envs/staging.env or the environment")


def test_a_configured_staging_that_does_not_answer_is_never_started(tmp_path: Path) -> None:
    settings = settings_on_free_ports()
    with pytest.raises(StackError, match="the staging layer never starts the reference stack"), \
            ensure_target(settings, spec=standin_spec(settings, tmp_path), layer_autostart=False,
                          layer="staging"):
        pass
    assert not (tmp_path / "state" / "stack.pid").exists()


def test_a_configured_staging_that_answers_is_used(tmp_path: Path) -> None:
    settings = settings_on_free_ports(GOLDENPATH_AUTOSTART="0")
    with stack.running(standin_spec(settings, tmp_path)), \
            ensure_target(settings, layer_autostart=False, layer="staging") as target:
        assert target.started is None


# --- A stack started for a run dies with the run -----------------------------------------

PARENT = """
import json, sys
from pathlib import Path
from goldenpath.core import stack
spec = stack.StackSpec(command=tuple(json.loads(sys.argv[1])), health_urls=tuple(json.loads(sys.argv[2])),
                       state_dir=Path(sys.argv[3]), env=json.loads(sys.argv[4]), startup_timeout_s=10)
started = stack.start(spec, die_with_parent=sys.argv[5] == "tied")
print(started.pid, flush=True)
sys.stdin.read()  # until killed
"""


def stack_of_a_killed_parent(tmp_path: Path, mode: str) -> int:
    """Start a parent that starts the stand-in, SIGKILL the parent; the stand-in's pid."""
    settings = settings_on_free_ports()
    spec = standin_spec(settings, tmp_path)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, json.dumps(spec.command), json.dumps(spec.health_urls),
         str(spec.state_dir), json.dumps(dict(spec.env)), mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert parent.stdout is not None
    line = parent.stdout.readline()  # the parent prints once the stack is healthy
    assert line.strip().isdigit(), f"the parent did not start the stand-in: {line!r}"
    parent.kill()
    parent.wait(timeout=10)
    return int(line)


def gone_within(pid: int, deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while stack.pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # polling a condition under a deadline, not waiting a fixed time
    return True


def test_a_stack_started_for_a_run_dies_when_the_run_is_killed(tmp_path: Path) -> None:
    child = stack_of_a_killed_parent(tmp_path, "tied")
    try:
        assert gone_within(child, DEATH_DEADLINE_S), "the stack outlived the SIGKILLed run"
    finally:
        with_group_killed(child)


def test_a_stack_up_stack_outlives_the_process_that_started_it(tmp_path: Path) -> None:
    # The control: without the parent-death signal the same stand-in survives its parent,
    # so the test above proves the signal, not some other way of dying.
    child = stack_of_a_killed_parent(tmp_path, "detached")
    try:
        assert stack.pid_alive(child)
    finally:
        with_group_killed(child)
    assert gone_within(child, DEATH_DEADLINE_S)


def with_group_killed(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


# --- invoke stack.up hands its secrets to the layers --------------------------------------


def up_stack(tmp_path: Path) -> tuple[Settings, stack.StackSpec, stack.RunningStack]:
    """A detached stand-in in the profile's stack dir, with the secrets file stack.up writes."""
    settings = settings_on_free_ports(GOLDENPATH_STACK_DIR=str(tmp_path / "stack"),
                                      E2E_OAUTH_SIMULATION_KEY="", JWT_SECRET_KEY="")
    spec = standin_spec(settings, tmp_path)
    spec = stack.StackSpec(command=spec.command, health_urls=spec.health_urls,
                           state_dir=settings.stack_dir, env=spec.env, startup_timeout_s=10)
    stack.write_secrets(spec, {"BACKEND_URL": settings.backend_url,
                               "AUTH_SERVICE_URL": settings.auth_service_url},
                        {"E2E_OAUTH_SIMULATION_KEY": "made-up-e2e-key", "JWT_SECRET_KEY": "made-up-jwt"})
    return settings, spec, stack.start(spec)


def test_the_secrets_file_is_private_and_replaced_atomically(tmp_path: Path) -> None:
    _, spec, running = up_stack(tmp_path)
    try:
        info = spec.secrets_path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert info.st_uid == os.getuid()
        assert "E2E_OAUTH_SIMULATION_KEY=made-up-e2e-key" in spec.secrets_path.read_text()
        # No temporary file is left beside it.
        assert sorted(p.name for p in spec.state_dir.iterdir() if p.name.startswith(".")) == []
    finally:
        stack.stop(running)
    assert not spec.secrets_path.exists(), "stopping the stack leaves its secrets behind"


def test_a_layer_on_the_stack_up_stack_gets_its_secrets(tmp_path: Path) -> None:
    settings, spec, running = up_stack(tmp_path)
    try:
        used, source = stack_up_secrets(settings, spec)
        assert source == spec.secrets_path
        assert used.get("E2E_OAUTH_SIMULATION_KEY") == "made-up-e2e-key"
        assert used.get("JWT_SECRET_KEY") == "made-up-jwt"
        # Shown masked wherever settings are shown.
        assert "made-up" not in repr(used.masked())
        # Another target on the same machine gets none of them.
        other = settings_on_free_ports(GOLDENPATH_STACK_DIR=str(tmp_path / "stack"),
                                       E2E_OAUTH_SIMULATION_KEY="", JWT_SECRET_KEY="")
        assert stack_up_secrets(other, spec) == (other, None)
    finally:
        stack.stop(running)
    # Nor does anyone once that stack is gone (the file goes with it; a leftover would not count).
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    stack.write_secrets(spec, {"BACKEND_URL": settings.backend_url,
                               "AUTH_SERVICE_URL": settings.auth_service_url}, {"JWT_SECRET_KEY": "stale"})
    assert stack_up_secrets(settings, spec) == (settings, None)


def test_a_secrets_file_others_can_read_is_refused(tmp_path: Path) -> None:
    settings, spec, running = up_stack(tmp_path)
    try:
        spec.secrets_path.chmod(0o644)
        with pytest.raises(StackError, match="holds secrets but is not private to you"):
            stack_up_secrets(settings, spec)
    finally:
        stack.stop(running)
