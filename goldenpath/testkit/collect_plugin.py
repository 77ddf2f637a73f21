"""pytest plugin for the collection audit: records every collection error as data.

Loaded with ``-p goldenpath.testkit.collect_plugin --goldenpath-collect-report=FILE`` under
``--collect-only``. It also reports fixtures that no conftest defines, which plain
``--collect-only`` only discovers when the test runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

_errors: list[dict[str, str]] = []
_collected = 0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--goldenpath-collect-report", default=None,
                     help="write collection errors as JSON to this file")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _errors.append({"where": str(report.fspath or report.nodeid), "text": report.longreprtext})


def pytest_collection_modifyitems(session: pytest.Session, items: list[pytest.Item]) -> None:
    global _collected
    _collected = len(items)
    manager = session._fixturemanager  # the only way to ask pytest ahead of setup
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        for name in info.names_closure:
            if name == "request" or name in params:
                continue
            if not manager.getfixturedefs(name, item):
                _errors.append({
                    "where": str(item.path),
                    "text": f"fixture '{name}' not found (used by {item.nodeid})",
                })


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = session.config.getoption("--goldenpath-collect-report")
    if target:
        payload: dict[str, Any] = {"collected": _collected, "errors": _errors}
        Path(target).write_text(json.dumps(payload), encoding="utf-8")
