"""The load runner's flags and safety rules: each bad input is one line and exit 2, before any
connection (the runner is pointed at a port nothing listens on, so a connection would show)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from goldenpath.core.errors import ConfigError
from goldenpath.core.settings import Settings, load_settings
from goldenpath.load.config import LoadPlan, check_plan, parse_duration, parse_rate, plan_from_flags
from goldenpath.testkit.support import environ_without_settings

REPO = Path(__file__).resolve().parents[2]


def settings(**env: str) -> Settings:
    return load_settings(REPO, "local", environ=env)


def plan(s: Settings, **flags: str | None) -> LoadPlan:
    given: dict[str, str | None] = {"users": "5", "messages": "2", "ramp": "0", "think": "0s",
                                    "duration": "10s", "sockets_per_user": "1", "pid": None}
    given.update(flags)
    return plan_from_flags(given["users"], given["messages"], str(given["ramp"]), str(given["think"]),
                           str(given["duration"]), str(given["sockets_per_user"]), False, given["pid"], s)


@pytest.mark.parametrize(("raw", "seconds"), [("500ms", 0.5), ("0.5s", 0.5), ("2m", 120.0), ("1h", 3600.0)])
def test_durations_take_a_unit(raw: str, seconds: float) -> None:
    assert parse_duration("duration", raw) == seconds


@pytest.mark.parametrize("raw", ["60", "1.5", "s", "-1s", "ten seconds"])
def test_a_duration_without_a_unit_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="needs a unit"):
        parse_duration("duration", raw)


def test_rates() -> None:
    assert parse_rate("ramp", "50/s") == 50.0
    assert parse_rate("ramp", "600/m") == 10.0
    assert parse_rate("ramp", "0") == 0.0
    with pytest.raises(ConfigError, match="not a rate"):
        parse_rate("ramp", "fast")


@pytest.mark.parametrize(("flags", "message"), [
    ({"users": "0"}, "--users must be at least 1"),
    ({"users": "-3"}, "--users must be at least 1"),
    ({"users": "many"}, "--users takes a whole number"),
    ({"duration": "60"}, "needs a unit"),
    ({"think": "20s", "duration": "10s"}, "longer than --duration"),
    ({"users": "11"}, "more than SLA_CONCURRENT_USERS=10: set LOAD_ALLOWED=true"),
    ({"duration": "2h"}, "GOLDENPATH_LOAD_MAX_DURATION_S"),
])  # fmt: skip
def test_bad_flags_are_refused(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan(settings(), **flags)


def test_load_allowed_lifts_the_concurrency_limit_but_not_the_hard_cap() -> None:
    assert plan(settings(LOAD_ALLOWED="true"), users="500").users == 500
    with pytest.raises(ConfigError, match="hard cap GOLDENPATH_LOAD_MAX_USERS=100"):
        plan(settings(LOAD_ALLOWED="true", GOLDENPATH_LOAD_MAX_USERS="100"), users="101")


def test_a_remote_target_at_load_needs_load_allowed_even_at_the_profiles_size() -> None:
    remote = settings(BACKEND_URL="https://chat.example.com")
    with pytest.raises(ConfigError, match="not on this machine, is load"):
        plan(remote, users=None)  # the profile's MULTI_USER_USERS, 20
    assert plan(settings(BACKEND_URL="https://chat.example.com", LOAD_ALLOWED="1"), users=None).users == 20


def test_the_profiles_own_multi_user_size_runs_on_loopback_without_load_allowed() -> None:
    s = settings(MULTI_USER_USERS="200", MULTI_USER_MESSAGES="3")
    chosen = plan(s, users=None, messages=None)
    assert (chosen.users, chosen.messages, chosen.planned_runs) == (200, 3, 600)
    check_plan(chosen, s, size_from_profile=True)
    with pytest.raises(ConfigError, match="LOAD_ALLOWED"):
        check_plan(chosen, s, size_from_profile=False)


@pytest.mark.parametrize(("args", "message"), [
    (["--users", "0"], "error: --users must be at least 1, not 0"),
    (["--users", "3", "--duration", "60"], "error: --duration '60' needs a unit"),
    (["--users", "500"], "error: 500 users is more than SLA_CONCURRENT_USERS=10: set LOAD_ALLOWED=true"),
    (["--users", "3", "--think", "2m", "--duration", "1m"],
     "error: --think 120s is longer than --duration 60s"),
])  # fmt: skip
def test_the_command_line_says_one_line_and_exits_2_before_connecting(args: list[str], message: str) -> None:
    env = {**environ_without_settings(), "BACKEND_URL": "http://127.0.0.1:9", "AUTH_SERVICE_URL": "http://127.0.0.1:9"}
    proc = subprocess.run([sys.executable, "-m", "goldenpath.load", *args], capture_output=True, text=True,
                          timeout=60, check=False, env=env, cwd=REPO)  # fmt: skip
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 2, output
    assert output.splitlines() == [output], output
    assert output.startswith(message), output
    assert "Traceback" not in output


def test_invoke_load_refuses_the_same_way() -> None:
    env = {**environ_without_settings(), "BACKEND_URL": "http://127.0.0.1:9"}
    proc = subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "load", "--users", "500"],
                          capture_output=True, text=True, timeout=60, check=False, env=env)  # fmt: skip
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 2, output
    assert output == ("error: 500 users is more than SLA_CONCURRENT_USERS=10: set LOAD_ALLOWED=true in the "
                      "profile or environment to run load")
