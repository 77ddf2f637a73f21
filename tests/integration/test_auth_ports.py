"""Auth port alignment on temporary env files, against a real reference stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from goldenpath.checks import ports
from goldenpath.core import stack
from goldenpath.core.errors import ConfigError
from goldenpath.core.http import free_port
from goldenpath.core.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.auth


@pytest.fixture(scope="module")
def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """refstack on free ports; the profile of each test's root declares where."""
    state = tmp_path_factory.mktemp("ports-stack")
    settings = load_settings(REPO, "local", environ={
        "BACKEND_URL": f"http://127.0.0.1:{free_port()}",
        "AUTH_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
    })
    with stack.running(stack.refstack_spec(settings, state_dir=state)):
        yield settings


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def make_root(tmp_path: Path, real: Settings, dotenv: str) -> Path:
    """A project whose profile is right and whose .env is what the test seeds."""
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "local.env").write_text(
        f"BACKEND_URL={real.backend_url}\nAUTH_SERVICE_URL={real.auth_service_url}\n")
    (tmp_path / ".env").write_text(dotenv)
    return tmp_path


def run(root: Path) -> ports.PortReport:
    settings = load_settings(root, "local", environ={})
    return ports.check(settings, root, sorted((root / "envs").glob("*.env")), {})


def codes(report: ports.PortReport) -> set[str]:
    return {conflict.code for conflict in report.conflicts}


def test_an_aligned_profile_has_nothing_to_fix(tmp_path: Path, running_stack: Settings) -> None:
    report = run(make_root(tmp_path, running_stack, "# nothing here\n"))
    assert report.conflicts == []
    assert report.fix is None
    assert ports.Listener(port_of(running_stack.auth_service_url), "auth-service") in report.listeners


def test_the_strategys_mismatch_is_found_and_fixed_once(tmp_path: Path, running_stack: Settings) -> None:
    backend_port = port_of(running_stack.backend_url)
    auth_port = port_of(running_stack.auth_service_url)
    seeded = (f"# team settings\nAPP_DEBUG=1\nAUTH_SERVICE_URL=http://127.0.0.1:{backend_port}\n"
              f"AUTH_SERVICE_PORT={backend_port}\nOTHER='keep me'\n")
    root = make_root(tmp_path, running_stack, seeded)

    report = run(root)
    assert codes(report) == {"SAME_PORT", "WRONG_SERVICE"}
    wrong = next(c for c in report.conflicts if c.code == "WRONG_SERVICE")
    assert wrong.message.endswith(
        f"answers as backend, not auth-service; the auth service answers on port {auth_port}")
    assert report.fix is not None

    done = ports.apply_fix(report.fix, root, "local", write_profile=False, environ={})
    assert "backed up .env to .env.bak" in done
    assert (root / ".env.bak").read_text() == seeded
    assert (root / ".env").read_text() == (
        f"# team settings\nAPP_DEBUG=1\nAUTH_SERVICE_URL=http://127.0.0.1:{auth_port}\n"
        f"AUTH_SERVICE_PORT={auth_port}\nOTHER='keep me'\n")

    again = run(root)
    assert again.conflicts == []
    assert again.fix is None


def test_a_port_that_disagrees_with_the_url_is_reported(tmp_path: Path, running_stack: Settings) -> None:
    root = make_root(tmp_path, running_stack, f"AUTH_SERVICE_PORT={free_port()}\n")
    report = run(root)
    assert codes(report) == {"PORT_DISAGREES"}
    assert report.fix is not None
    assert report.fix.values == {"AUTH_SERVICE_PORT": str(port_of(running_stack.auth_service_url))}


def test_nothing_answering_is_reported_with_where_auth_really_is(
        tmp_path: Path, running_stack: Settings) -> None:
    silent = free_port()
    root = make_root(tmp_path, running_stack, f"AUTH_SERVICE_URL=http://127.0.0.1:{silent}\n")
    report = run(root)
    assert codes(report) == {"NOTHING_ANSWERS"}
    assert report.conflicts[0].message == (
        f"nothing answers at AUTH_SERVICE_URL=http://127.0.0.1:{silent}; "
        f"the auth service answers on port {port_of(running_stack.auth_service_url)}")


def test_a_compose_file_publishing_another_port_is_a_conflict(
        tmp_path: Path, running_stack: Settings) -> None:
    root = make_root(tmp_path, running_stack, "")
    (root / "docker-compose.yml").write_text(
        "services:\n  auth-service:\n    ports:\n      - \"9999:8081\"\n"
        "  backend:\n    environment:\n      - AUTH_SERVICE_URL=http://auth-service:8081\n")
    report = run(root)
    assert codes(report) == {"COMPOSE_DISAGREES"}
    assert "docker-compose.yml: services.auth-service.ports publishes the auth service on 9999" in (
        report.conflicts[0].message)


def test_the_fix_touches_the_profile_only_when_asked(tmp_path: Path, running_stack: Settings) -> None:
    root = make_root(tmp_path, running_stack, "")
    profile = root / "envs" / "local.env"
    committed = profile.read_text()
    fix = ports.Fix({"AUTH_SERVICE_URL": running_stack.auth_service_url}, "test")
    ports.apply_fix(fix, root, "local", write_profile=False, environ={})
    assert profile.read_text() == committed
    ports.apply_fix(ports.Fix({"AUTH_SERVICE_PORT": "8081"}, "test"), root, "local",
                    write_profile=True, environ={})
    assert profile.read_text() == committed + "AUTH_SERVICE_PORT=8081\n"
    assert (root / "envs" / "local.env.bak").read_text() == committed


def test_the_fix_refuses_when_the_shell_would_override_it(tmp_path: Path, running_stack: Settings) -> None:
    root = make_root(tmp_path, running_stack, "")
    fix = ports.Fix({"AUTH_SERVICE_URL": running_stack.auth_service_url}, "test")
    with pytest.raises(ConfigError, match="AUTH_SERVICE_URL is set in the process environment"):
        ports.apply_fix(fix, root, "local", write_profile=False,
                        environ={"AUTH_SERVICE_URL": "http://127.0.0.1:1"})
    assert (root / ".env").read_text() == ""
