"""The CI workflow consumes exactly the sessions nox lists with the ci tag, and no more.

The matrix job's own script is run here on nox's real output, for a pull request and for
the schedule, so the test fails when a layer gains or loses the tag without the workflow
(its services, its schedule-only list) being brought along.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "validate.yml"
# What CI runs on every push and pull request, and what only on the schedule or by hand.
INTENDED = {"lint", "collect", "unit", "integration", "e2e", "multi_user", "docker", "proof"}
SCHEDULED_ONLY = {"multi_user", "staging"}


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def ci_sessions_json() -> str:
    done = subprocess.run([sys.executable, "-m", "nox", "-l", "--json", "-t", "ci"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def step(job: dict[str, Any], name: str) -> dict[str, Any]:
    for candidate in job["steps"]:
        if candidate.get("id") == name or candidate.get("name") == name:
            return dict(candidate)
    raise AssertionError(f"no step {name!r} in {[s.get('name') for s in job['steps']]}")


def matrix_for(event: str, workflow: dict[Any, Any], ci_sessions_json: str, tmp_path: Path) -> list[str]:
    """Run the list step's Python exactly as the workflow has it, on nox's output."""
    run = step(workflow["jobs"]["sessions"], "list")["run"]
    assert "nox -l --json -t ci > ci-sessions.json" in run
    script = re.search(r"<<'PY'[^\n]*\n(.*?)\n\s*PY\s*$", run, re.DOTALL)
    assert script, run
    (tmp_path / "ci-sessions.json").write_text(ci_sessions_json, encoding="utf-8")
    env = {**os.environ, "EVENT": event, "SCHEDULED_ONLY": workflow["env"]["SCHEDULED_ONLY"]}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script.group(1))], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    key, _, value = done.stdout.strip().partition("=")
    assert key == "matrix"
    sessions: list[str] = json.loads(value)["session"]
    return sessions


def test_nox_lists_exactly_the_intended_ci_sessions(ci_sessions_json: str) -> None:
    listed = [s["session"] for s in json.loads(ci_sessions_json)]
    assert set(listed) == INTENDED
    assert len(listed) == len(INTENDED)
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    layers = project["tool"]["goldenpath"]["layers"]
    tagged = {name for name, layer in layers.items() if "ci" in layer["tags"]}
    assert tagged | {"lint", "collect"} == INTENDED
    assert "staging" in layers
    assert "staging" not in tagged


def test_the_matrix_per_event(workflow: dict[Any, Any], ci_sessions_json: str, tmp_path: Path) -> None:
    assert set(workflow["env"]["SCHEDULED_ONLY"].split()) == SCHEDULED_ONLY
    pull = matrix_for("pull_request", workflow, ci_sessions_json, tmp_path)
    assert set(pull) == INTENDED - SCHEDULED_ONLY
    assert len(pull) == len(set(pull))
    assert set(matrix_for("push", workflow, ci_sessions_json, tmp_path)) == INTENDED - SCHEDULED_ONLY
    for event in ("schedule", "workflow_dispatch"):
        nightly = matrix_for(event, workflow, ci_sessions_json, tmp_path)
        assert set(nightly) == INTENDED | SCHEDULED_ONLY
        assert len(nightly) == len(set(nightly))


def test_every_session_in_any_matrix_declares_its_services(workflow: dict[Any, Any]) -> None:
    run = step(workflow["jobs"]["session"], "start the services this layer needs")["run"]
    declared = {name for labels in re.findall(r"^\s*([a-z0-9_|]+)\)\s*services=", run, re.MULTILINE)
                for name in labels.split("|")}
    assert declared == INTENDED | SCHEDULED_ONLY


def test_each_session_job_runs_nox_uploads_reports_and_writes_the_summary(workflow: dict[Any, Any]) -> None:
    jobs = workflow["jobs"]
    job = jobs["session"]
    assert job["strategy"]["matrix"] == "${{ fromJSON(needs.sessions.outputs.matrix) }}"
    assert set(job["needs"]) == {"sessions", "preflight"}
    assert 'nox -s "$SESSION"' in step(job, "nox -s ${{ matrix.session }}")["run"]
    assert 'reports/$SESSION.md" >> "$GITHUB_STEP_SUMMARY"' in step(job, "summary")["run"]
    upload = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "reports/"
    assert upload["if"] == "always()"
    preflight = step(jobs["preflight"], "invoke preflight --json")["run"]
    assert "invoke preflight --json" in preflight
    assert "$GITHUB_STEP_SUMMARY" in preflight


def test_secrets_never_reach_a_pull_request(workflow: dict[Any, Any]) -> None:
    triggers = workflow.get("on") or workflow[True]  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"push", "pull_request", "schedule", "workflow_dispatch"}
    assert "pull_request_target" not in triggers  # the one trigger that hands a fork secrets
    text = WORKFLOW.read_text(encoding="utf-8")
    uses = [line for line in text.splitlines() if "${{ secrets." in line]
    profile = step(workflow["jobs"]["session"], "profile")
    assert uses
    assert all(line.strip().split(":")[0] in profile["env"] for line in uses)
    # ...and that step hands them on only to the staging session, which pull requests never run.
    assert 'if [ "$SESSION" = staging ]' in profile["run"]
