"""The noxfile as CI and developers use it: a session matrix, and one clear line on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from goldenpath.core.layers import load_project
from goldenpath.testkit.support import environ_without_settings

REPO = Path(__file__).resolve().parents[2]
# The layer sessions come from the layers table; lint and collect are written out.
LAYERS = load_project(REPO / "pyproject.toml").layers
LAYER_SESSIONS = {*LAYERS, "collect", "lint"}
# What a plain `nox` runs: every session but the opt-in ones (staging: nothing to validate
# until a staging is configured).
DEFAULT_SESSIONS = {*(name for name, layer in LAYERS.items() if layer.default), "collect", "lint"}


def nox(*args: str, env: dict[str, str] | None = None, tmp: Path,
        noxfile: Path = REPO / "noxfile.py") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nox", "--noxfile", str(noxfile),
         "--envdir", str(tmp / "nox"), *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={**environ_without_settings(), "NOX_SCRIPT_MODE": "none", **(env or {})},
    )


def copy_with_pyproject(tmp_path: Path, pyproject: str) -> Path:
    """The repository's entry point and library, beside another pyproject.toml."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / "noxfile.py", repo)
    shutil.copytree(REPO / "goldenpath", repo / "goldenpath", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "pyproject.toml").write_text(pyproject)
    return repo


def test_the_session_list_is_a_ci_matrix(tmp_path: Path) -> None:
    proc = nox("-l", "--json", tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sessions = {entry["session"]: entry for entry in json.loads(proc.stdout)}
    # nox lists the opt-in sessions (staging, bench) only when asked for by name.
    assert set(sessions) == DEFAULT_SESSIONS
    for name, entry in sessions.items():
        assert entry["description"], f"{name} has no one-line docstring"
        assert name in entry["tags"], f"{name} is not tagged with its own name"


def test_a_plain_run_is_the_whole_suite_but_staging(tmp_path: Path) -> None:
    listing = nox("-l", tmp=tmp_path).stdout
    selected = {line.split()[1] for line in listing.splitlines() if line.startswith("* ")}
    assert selected == DEFAULT_SESSIONS
    opt_in = LAYER_SESSIONS - DEFAULT_SESSIONS
    assert opt_in == {"staging"}


def test_staging_with_nothing_configured_ends_in_one_line(tmp_path: Path) -> None:
    proc = nox("-s", "staging", "--no-venv", tmp=tmp_path,
               env={**environ_without_settings(), "GOLDENPATH_ENV": "staging",
                    "GOLDENPATH_REPORTS_DIR": str(tmp_path / "reports")})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert ("no staging configured: set BACKEND_URL and AUTH_SERVICE_URL in envs/staging.env "
            "or the environment") in output
    assert "Traceback" not in output


def test_a_typod_port_from_the_environment_starts_nothing(tmp_path: Path) -> None:
    # The profile (envs/local.env) says autostart; the URL comes from the environment.
    proc = nox("-s", "e2e", "--no-venv", tmp=tmp_path,
               env={**environ_without_settings(), "BACKEND_URL": "http://127.0.0.1:9",
                    "GOLDENPATH_TIMEOUT_S": "2", "GOLDENPATH_REPORTS_DIR": str(tmp_path / "reports")})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert ("nothing answers at http://127.0.0.1:9 (BACKEND_URL from environment), and goldenpath "
            "starts the reference stack only for the profile's own embedded target (envs/local.env); "
            "set GOLDENPATH_AUTOSTART=1 beside the URL to have it started there") in output
    assert "reference stack, started" not in output
    assert "Traceback" not in output


def test_an_unknown_profile_ends_the_session_with_one_clear_line(tmp_path: Path) -> None:
    proc = nox("-s", "unit", "--no-venv", env={"GOLDENPATH_ENV": "nope"}, tmp=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "unknown profile 'nope' (GOLDENPATH_ENV); profiles: ci, local, staging" in output
    assert "Traceback" not in output


def test_a_malformed_dotenv_line_ends_the_session_naming_file_and_line(tmp_path: Path) -> None:
    # A profile written for the test, selected like any other: the repository's own .env is untouched.
    profile = REPO / "envs" / "zz-broken-test.env"
    profile.write_text("BACKEND_URL=http://127.0.0.1:8000\nnot a setting\n")
    try:
        proc = nox("-s", "unit", "--no-venv", env={"GOLDENPATH_ENV": "zz-broken-test"}, tmp=tmp_path)
    finally:
        profile.unlink()
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "envs/zz-broken-test.env:2: cannot parse this line" in output
    assert "Traceback" not in output


def test_a_new_layer_is_one_toml_table(tmp_path: Path) -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    repo = copy_with_pyproject(tmp_path, pyproject + (
        '\n[tool.goldenpath.layers.contract]\ndescription = "the team\'s contract tests"\n'
        'tags = ["ci", "fast"]\npaths = ["tests/contract"]\n'))
    proc = nox("-l", "--json", tmp=tmp_path, noxfile=repo / "noxfile.py")
    assert proc.returncode == 0, proc.stderr
    sessions = {entry["session"]: entry for entry in json.loads(proc.stdout)}
    assert sessions["contract"]["description"] == "the team's contract tests"
    assert sessions["contract"]["tags"] == ["contract", "ci", "fast"]


def test_a_broken_layers_table_is_one_line(tmp_path: Path) -> None:
    repo = copy_with_pyproject(tmp_path, '[tool.goldenpath.layers.x]\npaths = "tests"\n')
    proc = nox("-l", tmp=tmp_path, noxfile=repo / "noxfile.py")
    assert proc.returncode != 0
    assert "'paths' must be a non-empty list of test paths" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
