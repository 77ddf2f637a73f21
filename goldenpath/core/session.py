"""The one helper behind every layer session: profile, venv, target, pytest.

The noxfile generates a session per ``[tool.goldenpath.layers]`` table, each a call of
``run_layer``. Settings are resolved here, once, and handed on to the target check and
to pytest through their environment (``Settings.as_env``).
"""

from __future__ import annotations

from pathlib import Path

import nox

from goldenpath.core.errors import ConfigError, StackError
from goldenpath.core.layers import Layer
from goldenpath.core.settings import Settings, load_settings
from goldenpath.core.target import ensure_target

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")


def settings_or_error(session: nox.Session, profile_default: str = "local") -> Settings:
    """The profile, resolved; a bad profile or env file ends the session in one line."""
    try:
        return load_settings(ROOT, layer_default=profile_default)
    except ConfigError as exc:
        session.error(str(exc))


def install_group(session: nox.Session, group: str) -> None:
    session.install(*nox.project.dependency_groups(PYPROJECT, group))


def run_layer(session: nox.Session, layer: Layer) -> None:
    """Run one layer's tests in this session's venv; posargs go to pytest."""
    settings = settings_or_error(session, layer.profile)
    settings = settings.with_values({"GOLDENPATH_LAYER": layer.name}, "nox session")
    install_group(session, layer.group)
    argv = [*layer.pytest_argv(settings.reports_dir), *session.posargs]
    if not layer.needs_target:
        session.run("pytest", *argv, env=settings.as_env())
        return
    python = str(Path(session.bin) / "python")
    try:
        with ensure_target(settings, python=python) as target:
            if target.started:
                session.log(f"reference stack started for this session (pid {target.started.pid}), "
                            f"log: {target.started.spec.log_path}")
            env = target.settings.as_env()
            # One line about a target that does not speak the protocol, not a failure per test.
            session.run("python", "-m", "goldenpath.checks.target_check", env=env)
            session.run("pytest", *argv, env=env)
    except StackError as exc:
        session.error(str(exc))
