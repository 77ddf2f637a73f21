"""Shared by every layer: each test is marked with the layer its directory belongs to, and
the layers that talk to a target get goldenpath's fixtures (gp_settings, gp_report)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["goldenpath.pytest_plugin"]

TESTS = Path(__file__).resolve().parent
LAYERS = ("unit", "integration", "e2e", "staging", "multi_user", "docker")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            layer = item.path.resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue  # a team's own tests, outside this tree, carry their own markers
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))
