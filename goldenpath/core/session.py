"""The one helper behind every layer session: profile, venv, target, pytest.

The noxfile generates a session per ``[tool.goldenpath.layers]`` table, each a call of
``run_layer``. Settings are resolved here, once, and handed on to the target check and
to pytest through their environment (``Settings.as_env``), including whether goldenpath
started the target (GOLDENPATH_TARGET_STARTED, which the layer's report records).
"""

from __future__ import annotations

from pathlib import Path

import nox

from goldenpath.core.errors import ConfigError, StackError
from goldenpath.core.layers import Layer
from goldenpath.core.masking import mask_url
from goldenpath.core.settings import Settings, load_settings
from goldenpath.core.target import Target, check_target, ensure_target

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
STARTED_VAR = "GOLDENPATH_TARGET_STARTED"


def settings_or_error(session: nox.Session, profile_default: str = "local") -> Settings:
    """The profile, resolved; a bad profile or env file ends the session in one line."""
    try:
        return load_settings(ROOT, layer_default=profile_default)
    except ConfigError as exc:
        session.error(str(exc))


def install_group(session: nox.Session, group: str) -> None:
    session.install(*nox.project.dependency_groups(PYPROJECT, group))


def forget_previous_reports(settings: Settings, layer: Layer) -> None:
    """An earlier run's report must never pass for this run's, even if this run ends before
    pytest writes its own (a target that does not answer, a Ctrl-C while installing)."""
    for suffix in ("json", "md", "xml"):
        (settings.reports_dir / f"{layer.name}.{suffix}").unlink(missing_ok=True)


def run_layer(session: nox.Session, layer: Layer) -> None:
    """Run one layer's tests in this session's venv; posargs go to pytest."""
    settings = settings_or_error(session, layer.profile)
    settings = settings.with_values({"GOLDENPATH_LAYER": layer.name, STARTED_VAR: "0"}, "nox session")
    forget_previous_reports(settings, layer)
    if layer.needs_target:
        try:
            # Before installing anything: a target that is not there, or not ours to
            # start, is one line now rather than after minutes of installing.
            check_target(settings, layer_autostart=layer.autostart, layer=layer.name)
        except StackError as exc:
            session.error(str(exc))
    install_group(session, layer.group)
    argv = [*layer.pytest_argv(settings.reports_dir), *session.posargs]
    if not layer.needs_target:
        session.run("pytest", *argv, env=settings.as_env())
        return
    python = str(Path(session.bin) / "python")
    try:
        with ensure_target(settings, python=python, layer_autostart=layer.autostart,
                           layer=layer.name) as target:
            log_target(session, target)
            env = target_env(target)
            # One line about a target that does not speak the protocol, not a failure per test.
            session.run("python", "-m", "goldenpath.checks.target_check", env=env)
            session.run("pytest", *argv, env=env)
    except StackError as exc:
        session.error(str(exc))


def target_env(target: Target) -> dict[str, str]:
    started = "1" if target.started else "0"
    return target.settings.with_values({STARTED_VAR: started}, "nox session").as_env()


def log_target(session: nox.Session, target: Target) -> None:
    url = mask_url(target.settings.backend_url)
    if target.started:
        session.log(f"target: {url} (the reference stack, started by goldenpath for this session, "
                    f"pid {target.started.pid}; log: {target.started.spec.log_path})")
        return
    session.log(f"target: {url} (not started by goldenpath)")
    if target.secrets_from:
        session.log(f"secrets for this target: from {target.secrets_from} (written by invoke stack.up)")
