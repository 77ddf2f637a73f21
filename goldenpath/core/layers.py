"""Validation layers declared as data in ``[tool.goldenpath.layers]`` of pyproject.toml.

The noxfile makes one session of each table, ``tests/conftest.py`` marks each test with
the layer its path belongs to, and the markers are registered from the same tables, so
adding a layer is one TOML table and no Python:

    [tool.goldenpath.layers.contract]
    description = "the team's own contract tests"
    tags = ["ci"]
    paths = ["../app/tests/contract"]

``autostart = false`` (the staging layer): the session never starts the reference stack;
its target must be configured. ``default = false``: the session is opt-in, not run by a
plain ``nox`` (the staging layer again: a fresh machine has no staging to validate).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goldenpath.core.errors import ConfigError


@dataclass(frozen=True)
class Layer:
    name: str
    description: str
    tags: tuple[str, ...]
    paths: tuple[str, ...]
    markers: str
    group: str
    profile: str
    needs_target: bool
    pytest_args: tuple[str, ...]
    autostart: bool = True
    default: bool = True

    def pytest_argv(self, report_dir: Path | str = "reports") -> list[str]:
        """pytest's arguments for this layer, before the user's own (posargs)."""
        argv = [*self.paths, f"--junitxml={report_dir}/{self.name}.xml"]
        if self.markers:
            argv += ["-m", self.markers]
        return argv + list(self.pytest_args)

    def owns(self, path: Path, root: Path) -> bool:
        """True when ``path`` (a test file) lies under one of this layer's paths."""
        return any(path.is_relative_to((root / p).resolve()) for p in self.paths)


@dataclass(frozen=True)
class Project:
    """What goldenpath reads from pyproject.toml."""

    layers: Mapping[str, Layer]
    renames: Mapping[str, str]


def load_project(pyproject: Path | str = "pyproject.toml") -> Project:
    path = Path(pyproject)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read goldenpath's settings ({exc})") from None
    table = data.get("tool", {}).get("goldenpath", {})
    layers = {
        name: _layer(name, spec, path)
        for name, spec in table.get("layers", {}).items()
    }
    renames = table.get("renames", {})
    if not all(isinstance(v, str) for v in renames.values()):
        raise ConfigError(f"{path}: [tool.goldenpath.renames] maps old names to new names (strings)")
    return Project(layers=layers, renames=dict(renames))


_FIELDS = {"description", "tags", "paths", "markers", "group", "profile", "needs_target", "pytest_args",
           "autostart", "default"}


def _flag(spec: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: '{key}' must be true or false")
    return value


def _strings(spec: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> tuple[str, ...]:
    value = spec.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (required and not value):
        kind = "a non-empty list of test paths" if required else "a list of strings"
        raise ConfigError(f"{where}: '{key}' must be {kind}")
    return tuple(value)


def _layer(name: str, spec: Mapping[str, Any], path: Path) -> Layer:
    where = f"{path}: [tool.goldenpath.layers.{name}]"
    if not name.isidentifier():
        raise ConfigError(f"{where}: a layer's name is a session and marker name: letters, digits, _")
    unknown = set(spec) - _FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(_FIELDS))}")
    tags = _strings(spec, "tags", where)
    return Layer(
        name=name,
        description=str(spec.get("description", "")) or f"the {name} layer",
        # A session is always tagged with its own name, so `nox -t e2e` finds it.
        tags=(name, *(t for t in tags if t != name)),
        paths=_strings(spec, "paths", where, required=True),
        markers=str(spec.get("markers", "")),
        group=str(spec.get("group", name)),
        profile=str(spec.get("profile", "local")),
        needs_target=_flag(spec, "needs_target", where, False),
        pytest_args=_strings(spec, "pytest_args", where),
        autostart=_flag(spec, "autostart", where, True),
        default=_flag(spec, "default", where, True),
    )
