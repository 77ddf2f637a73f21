"""Each layer's virtualenv holds only its dependency group, so each group must hold what
every layer's tests import through tests/conftest.py (goldenpath's pytest plugin)."""

from __future__ import annotations

import re
from pathlib import Path

import nox
import pytest

from goldenpath.core.layers import load_project

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = nox.project.load_toml(REPO / "pyproject.toml")
# What goldenpath.testkit.plugin imports, directly or through reports, sla and config.
PLUGIN_NEEDS = {"pytest", "python-dotenv", "rich", "pyyaml", "httpx", "websockets", "pyjwt", "hdrhistogram"}


def distributions(group: str) -> set[str]:
    return {re.split(r"[\[<>=~! ]", requirement, maxsplit=1)[0].lower()
            for requirement in nox.project.dependency_groups(PYPROJECT, group)}


@pytest.mark.parametrize("layer", sorted(load_project(REPO / "pyproject.toml").layers))
def test_every_layer_group_can_load_the_plugin(layer: str) -> None:
    group = load_project(REPO / "pyproject.toml").layers[layer].group
    missing = PLUGIN_NEEDS - distributions(group)
    assert not missing, f"dependency group {group!r} of layer {layer} lacks {sorted(missing)}"


def test_layers_that_start_the_reference_stack_can_run_it() -> None:
    needs = {"starlette", "uvicorn", "psycopg", "redis"}
    for name, layer in load_project(REPO / "pyproject.toml").layers.items():
        if layer.needs_target:
            assert needs <= distributions(layer.group), f"{name} cannot start refstack"
