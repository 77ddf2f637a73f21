"""Start-up refusals (one line on stderr, no traceback) and production mode."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .stacks import E2E_KEY, launched, refused_start
from .wire import auth_post, unique_email

AGREED_FAULTS = (
    "leak", "leak_rewrite", "drop", "reorder_tools", "duplicate_completed", "delay_event",
    "slow_first_event", "never_complete", "slow_connect", "ws_no_auth", "ws_invalid_token",
    "accept_expired", "accept_refresh_as_access", "idor", "ready_lies", "wrong_run_id",
    "json_close", "memory_leak",
)  # fmt: skip


def refusal_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a refused start, after checking that it is one and that it failed."""
    # 2 is documented in docs/refstack.md for a bad or missing setting (1: cannot listen).
    assert done.returncode == 2, f"exit code {done.returncode}; stderr: {done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.fault
def test_unknown_fault_is_refused_with_the_known_ones(state_dir: Path) -> None:
    line = refusal_line(refused_start(state_dir, faults="teleport"))
    words = set(re.findall(r"[a-z_]+", line))
    assert "teleport" in words
    # Whole words: "leak" must be listed itself, not just found inside "memory_leak".
    assert [name for name in AGREED_FAULTS if name not in words] == [], line


@pytest.mark.fault
def test_production_refuses_faults(state_dir: Path) -> None:
    line = refusal_line(refused_start(state_dir, faults="leak", env={"REFSTACK_MODE": "production"}))
    assert "REFSTACK_FAULTS" in line
    assert "production" in line


def test_production_requires_a_jwt_secret(state_dir: Path) -> None:
    line = refusal_line(refused_start(state_dir, env={"REFSTACK_MODE": "production", "JWT_SECRET_KEY": ""}))
    assert "JWT_SECRET_KEY" in line


@pytest.mark.auth
def test_production_has_no_e2e_bypass(state_dir: Path) -> None:
    with launched(state_dir, env={"REFSTACK_MODE": "production"}) as target:
        bypass = auth_post(
            target, "/auth/e2e/test-auth", {"email": unique_email()}, headers={"X-E2E-Bypass-Key": E2E_KEY}
        )
        # The rest of the auth service is there: only the bypass is gone.
        registered = auth_post(target, "/auth/register", {"email": unique_email(), "password": "pw-123456"})
    assert bypass.status_code == 404, bypass.text
    assert registered.status_code == 201, registered.text
