"""Validation layers declared as data in ``[tool.goldenpath.layers]`` of pyproject.toml.

A team points a layer at its own tests by editing that table, not Python:

    [tool.goldenpath.layers.unit]
    paths = ["../app/tests"]
    markers = "unit and not docker_required"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goldenpath.config import ConfigError

# The environment variable that tells a layer's tests which layer they run in (its reports).
LAYER_VAR = "GOLDENPATH_LAYER"
# Where the sessions write JUnit XML and the layers their reports (default: reports/).
REPORTS_VAR = "GOLDENPATH_REPORTS_DIR"


def reports_dir() -> str:
    return os.environ.get(REPORTS_VAR) or "reports"


@dataclass(frozen=True)
class Layer:
    name: str
    description: str
    paths: tuple[str, ...]
    markers: str
    group: str
    profile: str
    needs_target: bool
    pytest_args: tuple[str, ...]

    def pytest_argv(self, report_dir: str = "reports") -> list[str]:
        """pytest's arguments for this layer, before the user's own (posargs)."""
        argv = [*self.paths, f"--junitxml={report_dir}/{self.name}.xml"]
        if self.markers:
            argv += ["-m", self.markers]
        return argv + list(self.pytest_args)


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


_FIELDS = {"description", "paths", "markers", "group", "profile", "needs_target", "pytest_args"}


def _layer(name: str, spec: Mapping[str, Any], path: Path) -> Layer:
    where = f"{path}: [tool.goldenpath.layers.{name}]"
    unknown = set(spec) - _FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(_FIELDS))}")
    paths = spec.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise ConfigError(f"{where}: 'paths' must be a non-empty list of test paths")
    args = spec.get("pytest_args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{where}: 'pytest_args' must be a list of strings")
    return Layer(
        name=name,
        description=str(spec.get("description", "")),
        paths=tuple(paths),
        markers=str(spec.get("markers", "")),
        group=str(spec.get("group", name)),
        profile=str(spec.get("profile", "local")),
        needs_target=bool(spec.get("needs_target", False)),
        pytest_args=tuple(args),
    )
