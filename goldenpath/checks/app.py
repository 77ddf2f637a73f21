"""The application's repository, as goldenpath sees it: ``[tool.goldenpath.app]``.

``GOLDENPATH_APP_ROOT`` (or ``--app-root``) names the application's repository; the
collection audit and ``auth.ports`` work there. This module reads the table that says
where the application keeps its env files, compose files and tests, which keys name the
auth and backend addresses, which interpreter runs its pytest, and which pytest it pins.

Stdlib only: the noxfile process imports it to install the application's pytest pin.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from goldenpath.core.errors import ConfigError
from goldenpath.core.settings import Settings

DEFAULT_ENV_GLOBS = (".env*", "config/*.env")
DEFAULT_COMPOSE_GLOBS = ("docker-compose*.yml", "compose*.yaml", "docker/*.yml")
# Our own --write-app backups and editors' leftovers are never declarations.
IGNORED_SUFFIXES = (".bak", ".swp", "~")

# The documented alias table: every spelling of the auth and backend addresses that we
# have met in real repositories. Keys are fnmatch patterns over the variable's name;
# [tool.goldenpath.app.aliases] adds to it (or maps a pattern to "" to drop one).
DEFAULT_ALIASES: Mapping[str, str] = {
    "AUTH_SERVICE_URL": "auth",
    "AUTH_SERVICE_PORT": "auth",
    "AUTH_URL": "auth",
    "AUTH_PORT": "auth",
    "NEXT_PUBLIC_AUTH_URL": "auth",
    "*_AUTH_SERVICE_URL": "auth",
    "*_AUTH_SERVICE_PORT": "auth",
    "*_AUTH_URL": "auth",
    "*_AUTH_PORT": "auth",
    "BACKEND_URL": "backend",
    "BACKEND_PORT": "backend",
    "NEXT_PUBLIC_BACKEND_URL": "backend",
    "NEXT_PUBLIC_API_URL": "backend",
    "*_BACKEND_URL": "backend",
    "*_BACKEND_PORT": "backend",
}
ROLES = ("auth", "backend")
_FIELDS = {"env_files", "compose_files", "paths", "aliases"}


@dataclass(frozen=True)
class AppConfig:
    root: Path
    env_globs: tuple[str, ...] = DEFAULT_ENV_GLOBS
    compose_globs: tuple[str, ...] = DEFAULT_COMPOSE_GLOBS
    # Test directories audited as separate groups when one run cannot start; empty: the
    # application's own testpaths, as its pytest configuration names them.
    paths: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ALIASES))

    def env_files(self) -> list[Path]:
        return _glob(self.root, self.env_globs)

    def compose_files(self) -> list[Path]:
        return _glob(self.root, self.compose_globs)

    def relative(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def _glob(root: Path, patterns: Sequence[str]) -> list[Path]:
    found = {p.resolve() for pattern in patterns for p in root.glob(pattern)}
    return sorted(p for p in found if p.is_file() and not p.name.endswith(IGNORED_SUFFIXES))


def load_app(pyproject: Path, app_root: Path) -> AppConfig:
    """The application's table from goldenpath's pyproject.toml; defaults when it is absent."""
    if not app_root.is_dir():
        raise ConfigError(f"the application's root {app_root} is not a directory "
                          "(GOLDENPATH_APP_ROOT or --app-root)")
    table = _table(pyproject)
    where = f"{pyproject}: [tool.goldenpath.app]"
    unknown = set(table) - _FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(_FIELDS))}")
    aliases = dict(DEFAULT_ALIASES)
    extra = table.get("aliases", {})
    if not isinstance(extra, dict) or not all(v in (*ROLES, "") for v in extra.values()):
        raise ConfigError(f"{where}: 'aliases' maps a variable name (or pattern) to "
                          "\"auth\", \"backend\" or \"\" (to drop a default)")
    aliases.update(extra)
    return AppConfig(
        root=app_root.resolve(),
        env_globs=_strings(table, "env_files", where) or DEFAULT_ENV_GLOBS,
        compose_globs=_strings(table, "compose_files", where) or DEFAULT_COMPOSE_GLOBS,
        paths=_strings(table, "paths", where),
        aliases={k: v for k, v in aliases.items() if v},
    )


def _table(pyproject: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{pyproject}: cannot read goldenpath's settings ({exc})") from None
    table = data.get("tool", {}).get("goldenpath", {}).get("app", {})
    return table if isinstance(table, dict) else {}


def _strings(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of strings")
    return tuple(value)


# --------------------------------------------------------------------------- interpreter


def app_interpreter(app_root: Path, raw: str) -> Path:
    """GOLDENPATH_APP_PYTHON: a venv directory or an interpreter; relative to the app's root."""
    given = Path(raw).expanduser()
    path = given if given.is_absolute() else app_root / given
    if path.is_dir():
        for candidate in (path / "bin" / "python", path / "Scripts" / "python.exe"):
            if candidate.is_file():
                return candidate
        raise ConfigError(f"GOLDENPATH_APP_PYTHON={raw}: {path} is a directory without bin/python; "
                          "name the application's venv or its interpreter")
    if not path.is_file():
        raise ConfigError(f"GOLDENPATH_APP_PYTHON={raw}: no interpreter at {path}; "
                          "name the application's venv or its interpreter")
    return path


# --------------------------------------------------------------------------- pytest pin


@dataclass(frozen=True)
class Pin:
    requirement: str  # e.g. "pytest==8.3.5"
    source: str  # file:line, relative to the application's root


# "pytest" followed by a version specifier, not "pytest-asyncio" or "pytest_mock".
_PYTEST_REQ = re.compile(r"^\s*[\"']?pytest(?![\w.-])\s*(?:\[[^\]]*\])?\s*(?P<spec>[^;#\"'\s][^;#\"']*)?",
                         re.IGNORECASE)


def pytest_pin(app_root: Path) -> Pin | None:
    """The application's own pytest requirement, from its requirements files or pyproject.

    Read as text, line by line, so that the pin's line can be named; the first pin wins in
    the order a developer would look: requirements files, then pyproject.toml.
    """
    candidates = sorted({*app_root.glob("requirements*.txt"), *app_root.glob("requirements/*.txt")})
    candidates.append(app_root / "pyproject.toml")
    for path in candidates:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for number, line in enumerate(lines, 1):
            match = _PYTEST_REQ.match(line)
            if match:
                spec = (match.group("spec") or "").strip().rstrip(",").strip()
                rel = path.relative_to(app_root).as_posix()
                return Pin(f"pytest{spec}" if spec and spec[0] in "<>=!~" else "pytest",
                           f"{rel}:{number}")
    return None


def collect_requirements(settings: Settings) -> list[str]:
    """What the collect session installs for the application: its pytest pin, unless the
    application's own interpreter runs the audit (then nothing is installed anywhere)."""
    root = settings.app_root
    if root is None or settings.get("GOLDENPATH_APP_PYTHON") or not root.is_dir():
        return []
    pin = pytest_pin(root)
    return [pin.requirement] if pin else []


def collect_arguments(settings: Settings) -> list[str]:
    """The collect_cli flags that point the audit at the application, from the settings."""
    argv: list[str] = []
    if settings.app_root is not None:
        argv += ["--app-root", str(settings.app_root)]
    python = settings.get("GOLDENPATH_APP_PYTHON")
    if python:
        argv += ["--app-python", python]
    return argv

