"""Layers are data in pyproject.toml; a team can point one at its own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from goldenpath.core.errors import ConfigError
from goldenpath.core.layers import load_project

REPO = Path(__file__).resolve().parents[2]


def test_the_repository_declares_every_layer() -> None:
    project = load_project(REPO / "pyproject.toml")
    assert set(project.layers) == {"unit", "integration", "e2e", "staging", "multi_user", "docker", "proof"}
    assert project.layers["staging"].profile == "staging"
    assert project.layers["e2e"].needs_target
    assert not project.layers["unit"].needs_target
    # Staging is the user's own deployment: never auto-started, and opt-in (not in a plain `nox`).
    assert not project.layers["staging"].autostart
    assert not project.layers["staging"].default
    assert all(layer.autostart and layer.default for name, layer in project.layers.items()
               if name != "staging")
    assert project.renames["UserWebSocketEmitter"] == "UnifiedWebSocketEmitter"


def test_a_team_points_a_layer_at_its_own_tests(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[tool.goldenpath.layers.unit]\npaths = ["../app/tests"]\n'
        'markers = "unit and not docker_required"\npytest_args = ["-x"]\n'
    )
    layer = load_project(pyproject).layers["unit"]
    assert layer.group == "unit"
    assert layer.profile == "local"
    assert layer.pytest_argv() == [
        "../app/tests", "--junitxml=reports/unit.xml", "-m", "unit and not docker_required", "-x"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[tool.goldenpath.layers.x]\npaths = []\n', "'paths' must be a non-empty list"),
        ('[tool.goldenpath.layers.x]\npaths = "tests/unit"\n', "'paths' must be a non-empty list"),
        ('[tool.goldenpath.layers.x]\npaths = ["t"]\npath = "t"\n', "unknown field(s) path"),
        ('[tool.goldenpath.layers.x]\npaths = ["t"]\npytest_args = [1]\n', "'pytest_args' must be a list"),
        ('[tool.goldenpath.layers.x]\npaths = ["t"]\nautostart = "no"\n', "'autostart' must be true or"),
        ('[tool.goldenpath.layers.x]\npaths = ["t"]\ndefault = 0\n', "'default' must be true or false"),
        ("[tool.goldenpath.layers.x\n", "cannot read goldenpath's settings"),
    ],
)
def test_a_broken_layer_table_is_one_clear_error(tmp_path: Path, table: str, message: str) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(table)
    with pytest.raises(ConfigError) as err:
        load_project(pyproject)
    assert message in str(err.value)
