"""goldenpath pointed at an application's repository as it comes (tests/integration/app_repo.py):
the collection audit under the application's own pytest configuration, and auth.ports over its
env and compose files, against a real reference stack."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from goldenpath.checks import ports
from goldenpath.checks.app import Pin, load_app, pytest_pin
from goldenpath.checks.app_ports import EnvEntry, interpolate
from goldenpath.core import stack
from goldenpath.core.errors import ConfigError
from goldenpath.core.http import free_port
from goldenpath.core.settings import Settings, load_settings

from . import app_repo

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> app_repo.AppRepo:
    import importlib.util

    assert importlib.util.find_spec(app_repo.MISSING_PACKAGE) is None, (
        f"{app_repo.MISSING_PACKAGE} is installed here: the generated repository needs it missing")
    return app_repo.build(tmp_path_factory.mktemp("chatapp"))


Audited = tuple[subprocess.CompletedProcess[str], dict[str, Any], str]


def run_audit(root: Path, out: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "goldenpath.checks.collect_cli", "--pyproject", str(REPO / "pyproject.toml"),
         "--app-root", str(root), "--json", str(out), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "COLUMNS": "200"})
    return proc, json.loads(out.read_text()) if out.exists() else {}


@pytest.fixture(scope="module")
def audited(app: app_repo.AppRepo, tmp_path_factory: pytest.TempPathFactory) -> Audited:
    out = tmp_path_factory.mktemp("audit") / "collect.json"
    proc, report = run_audit(app.root, out, "--app-python", sys.executable)
    return proc, report, out.read_text()


def test_the_audit_ranks_the_root_causes(audited: Audited, app: app_repo.AppRepo) -> None:
    proc, report, _ = audited
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # --cache-clear in the application's addopts no longer clashes with anything injected.
    assert "unrecognized arguments" not in proc.stdout
    assert report["collected"] == app_repo.COLLECTED
    assert len(report["errors"]) == app_repo.ERRORS
    causes = [(c["summary"], c["count"]) for c in report["root_causes"]]
    assert causes == [
        (f"missing module factory ({app_repo.FACTORY_FILES} files)", app_repo.FACTORY_FILES),
        (f"syntax error in a shared module tests/helpers/streaming.py line 9, imported by "
         f"{app_repo.STREAMING_FILES} files", app_repo.STREAMING_FILES),
        (f"cannot import LegacyHTTPClient from chatapp.clients ({app_repo.LEGACY_CLIENT_FILES})",
         app_repo.LEGACY_CLIENT_FILES),
        (f"cannot import make_access_token from chatapp.auth.tokens ({app_repo.TOKEN_FILES})",
         app_repo.TOKEN_FILES),
        (f"cannot import UserWebSocketEmitter from chatapp.events ({app_repo.EMITTER_FILES})",
         app_repo.EMITTER_FILES),
    ]
    shared = report["root_causes"][1]
    assert shared["files"] == [f"tests/streaming/test_stream_{n:02d}.py"
                               for n in range(app_repo.STREAMING_FILES)]
    assert report["counts"] == {
        "cannot import name": 13, "module not found": app_repo.FACTORY_FILES,
        "syntax error": app_repo.STREAMING_FILES, "unknown marker": app_repo.MARKED_FILES}
    assert {(w["name"], w["file"]) for w in report["warnings"]} == {
        ("integration_db", f"tests/db/test_db_{n:02d}.py") for n in range(app_repo.MARKED_FILES)}
    # The application's --maxfail=10 was overridden, and the report says so.
    assert "--maxfail=10" in report["notes"][0]
    assert "overrode that with --maxfail=1000000" in report["notes"][0]
    assert report["pytest"]["version"] == pytest.__version__
    # One root: nothing absolute, neither in the findings nor in the table.
    assert str(app.root) not in json.dumps([report["errors"], report["root_causes"]])
    ranked = proc.stdout.index("Root causes")
    assert proc.stdout.index("missing module factory", ranked) < proc.stdout.index("Details", ranked)
    assert "Traceback" not in proc.stdout + proc.stderr


def test_renamed_names_get_suggestions_and_the_map_wins(audited: Audited, app: app_repo.AppRepo) -> None:
    _, report, _ = audited
    hints = {c["subject"]: c["hint"] for c in report["root_causes"]}
    legacy = hints["LegacyHTTPClient from chatapp.clients"]
    token = hints["make_access_token from chatapp.auth.tokens"]
    assert legacy.startswith("suggestion: LegacyHTTPClient may have been renamed: "
                             "chatapp.clients defines LegacyHttpClient now")
    assert token.startswith("suggestion: make_access_token may have been renamed: "
                            "chatapp.auth.tokens defines create_access_token")
    if app.git:
        commit = "Rename LegacyHTTPClient to LegacyHttpClient, make_access_token to create_access_token"
        for hint in (legacy, token):
            assert commit in hint
    # goldenpath's hand-written map names this one: no guess.
    assert hints["UserWebSocketEmitter from chatapp.events"] == (
        "UserWebSocketEmitter was renamed to UnifiedWebSocketEmitter")


def test_the_json_is_stable_for_ci(audited: Audited) -> None:
    _, report, text = audited
    assert text == json.dumps(report, indent=2, sort_keys=True) + "\n"
    files = [(e["kind"], e["file"], e["name"]) for e in report["errors"]]
    assert files == sorted(files)


def test_a_configuration_pytest_refuses_is_one_verbatim_finding(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "tests").mkdir(parents=True)
    (app / "pyproject.toml").write_text(
        '[tool.pytest]\naddopts = ["-ra"]\n\n[tool.pytest.ini_options]\naddopts = "--maxfail=10"\n')
    (app / "requirements-dev.txt").write_text("pytest>=9\n")
    (app / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")
    proc, report = run_audit(app, tmp_path / "collect.json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    reason = ("Cannot use both [tool.pytest] (native TOML types) and [tool.pytest.ini_options] "
              "(string-based INI format) simultaneously.")
    [finding] = report["errors"]
    assert finding["kind"] == "configuration error"
    assert finding["name"] == f"pytest {pytest.__version__}"
    assert reason in finding["detail"]
    # Printed verbatim: rich did not eat [tool.pytest] as markup.
    assert reason in " ".join(proc.stdout.split())
    # Without the application's interpreter, the audit says what it chose and why.
    assert "the application's pin pytest>=9 (requirements-dev.txt:1)" in report["pytest"]["choice"]


def test_the_applications_pytest_pin_is_read_with_its_line(app: app_repo.AppRepo) -> None:
    assert pytest_pin(app.root) == Pin("pytest>=8.3,<10", "requirements-dev.txt:3")


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("${SET}:8081", "8083:8081"),
        ("${UNSET:-8081}:8081", "8081:8081"),
        ("${EMPTY:-8081}", "8081"),
        ("${EMPTY-8081}", ""),
        ("${UNSET-8081}", "8081"),
        ("$SET", "8083"),
        ("$$SET", "$SET"),
        ("${SET:+on}${UNSET:+on}", "on"),
    ],
)
def test_compose_interpolation(raw: str, value: str) -> None:
    lookup = {"SET": EnvEntry("8083", ".env", 1), "EMPTY": EnvEntry("", ".env", 2)}
    assert interpolate(raw, lookup).value == value


# --------------------------------------------------------------------------- auth ports


@pytest.fixture(scope="module")
def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = load_settings(REPO, "local", environ={
        "BACKEND_URL": f"http://127.0.0.1:{free_port()}",
        "AUTH_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
    })
    with stack.running(stack.refstack_spec(settings, state_dir=tmp_path_factory.mktemp("app-stack"))):
        yield settings


def app_report(settings: Settings, app_root: Path, tmp_path: Path) -> ports.PortReport:
    """goldenpath's side is empty (its own root has no env files): only the application speaks."""
    own = tmp_path / "goldenpath"
    own.mkdir(exist_ok=True)
    return ports.check(settings, own, [], {}, app=load_app(REPO / "pyproject.toml", app_root))


def test_every_port_conflict_names_its_files_and_lines(
        app: app_repo.AppRepo, running_stack: Settings, tmp_path: Path) -> None:
    report = app_report(running_stack, app.root, tmp_path)
    assert report.app is not None
    conflicts = {c.code: c for c in report.conflicts}
    assert set(conflicts) == {"APP_AUTH_PORTS_DISAGREE", "APP_CONTAINER_PORT_DISAGREES"}
    disagree = conflicts["APP_AUTH_PORTS_DISAGREE"]
    assert disagree.places == (
        ".env.example:2", ".env:3", ".env:4", "config/dev.env:2", "config/dev.env:3",
        "docker-compose.override.yml:5", "docker-compose.yml:5", "docker/compose.test.yml:7")
    assert disagree.message == (
        "the application's files declare 4 different auth ports: "
        "8001 at .env.example:2 (AUTH_SERVICE_PORT=8001); "
        "8081 at .env:3 (AUTH_PORT=8081), .env:4 (NEXT_PUBLIC_AUTH_URL=http://localhost:8081), "
        "docker-compose.override.yml:5 (services.dev-auth.ports publishes 8081); "
        "8083 at config/dev.env:2 (DEV_AUTH_PORT=8083), "
        "config/dev.env:3 (FRONTEND_AUTH_SERVICE_URL=http://localhost:8083), "
        "docker-compose.yml:5 (services.dev-auth.ports publishes 8083); "
        "8091 at docker/compose.test.yml:7 (services.auth-test.ports publishes 8091)")
    container = conflicts["APP_CONTAINER_PORT_DISAGREES"]
    assert container.places == ("docker/compose.test.yml:11", "docker/compose.test.yml:7")
    assert "auth-test listens on 8081 inside the compose network" in container.message
    # The interpolated mapping says where its value came from; the container URL what it is.
    by_place = {d.place: d for d in report.app.declarations}
    assert "DEV_AUTH_PORT=8083 from config/dev.env:2" in by_place["docker-compose.yml:5"].note
    assert "AUTH_PORT=8081 from .env:3" in by_place["docker-compose.override.yml:5"].note
    assert "TEST_AUTH_PORT unset or empty: default '8091'" in by_place["docker/compose.test.yml:7"].note
    assert by_place["config/docker.env:1"].note == (
        "dev-auth is a container name, resolvable only inside the compose network; "
        "it publishes 8081 (docker-compose.override.yml:5), 8083 (docker-compose.yml:5)")
    # The application's own keys (ENVIRONMENT, NODE_ENV, SECRET_KEY) are no error; the
    # unparsable line is named by file and line, never echoed.
    assert report.app.problems == ["config/dev.env:4: cannot parse this line; skipped"]
    assert "not an assignment" not in json.dumps(report.as_dict())
    assert report.as_dict() == json.loads(json.dumps(report.as_dict(), sort_keys=True))


def test_a_container_host_is_probed_on_its_published_port(running_stack: Settings, tmp_path: Path) -> None:
    auth_port = int(running_stack.auth_service_url.rsplit(":", 1)[1])
    app = tmp_path / "app"
    app.mkdir()
    (app / ".env").write_text(f"AUTH_HOST_PORT={auth_port}\n")
    (app / "docker-compose.yml").write_text(
        'services:\n  dev-auth:\n    ports:\n      - "${AUTH_HOST_PORT}:8081"\n')
    settings = running_stack.with_values({"AUTH_SERVICE_URL": "http://dev-auth:8081"}, "test")
    report = app_report(settings, app, tmp_path)
    assert report.notes == [
        "AUTH_SERVICE_URL=http://dev-auth:8081: dev-auth is a container name, resolvable only inside "
        f"the compose network; probing its published port 127.0.0.1:{auth_port} instead"]
    assert ports.Listener(auth_port, "auth-service") in report.listeners
    assert report.conflicts == []


def test_write_app_aligns_one_application_file_atomically_with_a_backup(
        running_stack: Settings, tmp_path: Path) -> None:
    app = tmp_path / "app"
    for name, text in {**app_repo.ENV_FILES, **app_repo.COMPOSE_FILES}.items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(text)
    auth_port = int(running_stack.auth_service_url.rsplit(":", 1)[1])
    config = load_app(REPO / "pyproject.toml", app)
    report = app_report(running_stack, app, tmp_path)
    assert report.auth_port_found == auth_port
    for refused in ("docker-compose.yml", "../outside.env"):
        with pytest.raises(ConfigError, match="not one of the application's env files"):
            ports.apply_app_fix(report, config, refused)
    original = (app / ".env").read_text()
    done = ports.apply_app_fix(report, config, ".env")
    assert done == ["backed up .env to .env.bak", f".env: AUTH_PORT={auth_port}",
                    f".env: NEXT_PUBLIC_AUTH_URL=http://localhost:{auth_port}"]
    assert (app / ".env.bak").read_text() == original
    assert (app / ".env").read_text() == original.replace("8081", str(auth_port))
    # The other files are the application's: untouched.
    assert (app / "config" / "dev.env").read_text() == app_repo.ENV_FILES["config/dev.env"]
    again = app_report(running_stack, app, tmp_path)
    assert again.app is not None
    assert {d.place: d.port for d in again.app.declarations}[".env:3"] == auth_port
    assert ".env.bak" not in again.app.env_files  # our backup is not a declaration
