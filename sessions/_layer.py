"""The one helper behind every layer session: profile, venv, target, pytest."""

from __future__ import annotations

from pathlib import Path

import nox

from goldenpath.config import ConfigError, Settings, load_settings
from goldenpath.layers import LAYER_VAR, Layer, load_project, reports_dir
from goldenpath.stack import StackError
from goldenpath.target import ensure_target

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
REPORTS = reports_dir()


def layer_settings(session: nox.Session, layer: Layer) -> Settings:
    """The layer's profile, resolved; a bad profile or env file ends the session in one line."""
    try:
        return load_settings(ROOT, layer_default=layer.profile)
    except ConfigError as exc:
        session.error(str(exc))


def install_group(session: nox.Session, group: str) -> None:
    session.install(*nox.project.dependency_groups(PYPROJECT, group))


def pytest_env(settings: Settings, layer: str) -> dict[str, str]:
    """The resolved profile, for the tests to use as it is, and the layer's name for its report."""
    return {**settings.as_env(), LAYER_VAR: layer}


def run_layer(session: nox.Session, name: str) -> None:
    """Run one layer's tests in this session's venv; posargs go to pytest."""
    try:
        layer = load_project(ROOT / "pyproject.toml").layers[name]
    except ConfigError as exc:
        session.error(str(exc))
    except KeyError:
        session.error(f"no layer {name!r} in [tool.goldenpath.layers] of pyproject.toml")
    settings = layer_settings(session, layer)
    install_group(session, layer.group)
    argv = [*layer.pytest_argv(REPORTS), *session.posargs]
    if not layer.needs_target:
        session.run("pytest", *argv, env=pytest_env(settings, name))
        return
    python = str(Path(session.bin) / "python")
    try:
        with ensure_target(settings, python=python) as target:
            if target.started:
                session.log(f"reference stack started for this session (pid {target.started.pid}), "
                            f"log: {target.started.spec.log_path}")
            env = pytest_env(target.settings, name)
            # One line about a target that does not speak the protocol, not a failure per test.
            session.run("python", "-m", "goldenpath.target_check", env=env)
            session.run("pytest", *argv, env=env)
    except StackError as exc:
        session.error(str(exc))
