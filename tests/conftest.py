"""Shared by every layer: the layers come from [tool.goldenpath.layers] of pyproject.toml.
Each test is marked with the layer whose paths hold it, each layer's name is registered as a
marker, and the layers that talk to a target get goldenpath's fixtures (gp_settings, gp_report)."""

from __future__ import annotations

from pathlib import Path

import pytest

from goldenpath.core.layers import load_project

pytest_plugins = ["goldenpath.testkit.plugin"]

ROOT = Path(__file__).resolve().parent.parent
LAYERS = load_project(ROOT / "pyproject.toml").layers


def pytest_configure(config: pytest.Config) -> None:
    for layer in LAYERS.values():
        config.addinivalue_line("markers", f"{layer.name}: {layer.description}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.resolve()
        for layer in LAYERS.values():
            if layer.owns(path, ROOT):
                item.add_marker(getattr(pytest.mark, layer.name))
