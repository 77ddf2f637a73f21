# /// script
# dependencies = ["nox>=2025.10.16", "python-dotenv>=1.0"]
# ///
"""goldenpath: one nox session per validation layer. `nox -l` lists them.

The layer sessions are generated from the ``[tool.goldenpath.layers]`` tables of
pyproject.toml, so adding a layer is one TOML table. Only the bespoke sessions (lint,
collect, bench) are written out here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import nox

# nox loads this file by path; goldenpath sits beside it.
ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from goldenpath.checks.app import collect_arguments, collect_requirements  # noqa: E402
from goldenpath.core.errors import ConfigError  # noqa: E402
from goldenpath.core.layers import Layer, load_project  # noqa: E402
from goldenpath.core.session import install_group, run_layer, settings_or_error  # noqa: E402

nox.needs_version = ">=2025.10.16"
nox.options.default_venv_backend = "uv|virtualenv"
# A developer re-running a layer should not wait for its virtualenv to be rebuilt.
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

try:
    PROJECT = load_project(ROOT / "pyproject.toml")
except ConfigError as exc:
    # nox would print a traceback for an exception raised while loading the noxfile.
    sys.exit(f"nox: {exc}")


# Sessions run, and `nox -l` lists them, in the order they are registered: the cheapest
# checks first, then the layers from the inside out, as the table declares them.
@nox.session(tags=["lint", "fast", "static", "ci"])
def lint(session: nox.Session) -> None:
    """ruff and mypy over the whole repository; actionlint over the CI workflows."""
    reports = settings_or_error(session).reports_dir
    install_group(session, "lint")
    session.run("ruff", "check", *session.posargs)
    session.run("ruff", "check", "--output-format=junit", f"--output-file={reports}/lint.xml",
                success_codes=[0, 1])
    session.run("mypy", f"--junit-xml={reports}/lint-mypy.xml")
    # actionlint finds .github/workflows from the repository root (nox runs there).
    session.run("actionlint")


@nox.session(tags=["collect", "fast", "preflight", "ci"])
def collect(session: nox.Session) -> None:
    """pytest --collect-only over every layer; passes only with zero collection errors."""
    settings = settings_or_error(session)
    install_group(session, "collect")
    # With GOLDENPATH_APP_ROOT: the application's repository, under its own pytest pin
    # (unless GOLDENPATH_APP_PYTHON names its interpreter); goldenpath.checks.app.
    for requirement in collect_requirements(settings):
        session.install(requirement)
    session.run("python", "-m", "goldenpath.checks.collect_cli", *collect_arguments(settings),
                f"--json={settings.reports_dir}/collect.json", f"--junit={settings.reports_dir}/collect.xml",
                *session.posargs)


def layer_session(layer: Layer) -> Callable[[nox.Session], None]:
    def session(session: nox.Session) -> None:
        run_layer(session, layer)

    # nox shows the docstring as the session's description in `nox -l`.
    session.__doc__ = layer.description
    return session


for _layer in PROJECT.layers.values():
    # default=False (staging): opt-in, so a plain `nox` on a fresh machine does not fail on
    # a staging nobody configured.
    nox.session(name=_layer.name, tags=list(_layer.tags), default=_layer.default)(layer_session(_layer))


# Opt-in: a benchmark wants a quiet machine, and it proves nothing a test should gate on.
@nox.session(default=False, tags=["bench"])
def bench(session: nox.Session) -> None:
    """refstack fan-out against a bare websockets server; preflight against its checks in sequence."""
    install_group(session, "bench")
    session.run("python", "bench/refstack_fanout.py", *session.posargs)
    session.run("python", "bench/preflight.py")
