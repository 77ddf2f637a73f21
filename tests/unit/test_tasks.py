"""invoke tasks refuse bad flags, profiles and output paths before any check runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from goldenpath.testkit.support import environ_without_settings

REPO = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), *args],
                          capture_output=True, text=True, timeout=60, check=False,
                          env=environ_without_settings())


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 2, output
    assert len(output.splitlines()) == 1, output
    assert "Traceback" not in output
    return output


def test_an_unknown_profile_is_refused_before_any_check(tmp_path: Path) -> None:
    out = tmp_path / "preflight.json"
    line = one_error_line(invoke("preflight", "--env", "nope", "--json", str(out)))
    assert line.startswith("error: unknown profile 'nope' (--env); profiles: ci, local, staging")
    # Nothing ran: no table was drawn and no result written.
    assert not out.exists()


@pytest.mark.parametrize("task", ["preflight", "stack.status", "auth.ports", "staging.health"])
def test_a_json_path_in_a_missing_directory_is_refused_and_not_created(tmp_path: Path, task: str) -> None:
    target = tmp_path / "missing" / "dir" / "out.json"
    line = one_error_line(invoke(task, "--json", str(target)))
    assert f"directory {target.parent} does not exist" in line
    assert not target.parent.exists()


def test_a_json_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    line = one_error_line(invoke("preflight", "--json", str(tmp_path)))
    assert "is a directory" in line


@pytest.mark.parametrize("args", [["--only"], ["--skip"], ["--only", ""], ["--only", "nosuch"]])
def test_only_and_skip_need_a_known_check(args: list[str]) -> None:
    line = one_error_line(invoke("preflight", *args))
    assert line.startswith("error:")
