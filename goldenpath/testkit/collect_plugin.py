"""pytest plugin for the collection audit: records every collection error as data.

The audit copies this file, as it is, into a temporary directory and loads it into the
application's own pytest with ``-p goldenpath_collect_plugin
--goldenpath-collect-report=FILE``: only that directory goes on PYTHONPATH, so nothing of
goldenpath can shadow the application's modules, and the file imports only pytest and the
standard library so that it loads under whatever pytest the application pins.

Besides pytest's own collection errors it records fixtures that no conftest defines (plain
``--collect-only`` finds those only when the test runs), unknown-marker warnings, the
pytest version, the rootdir and configfile, and the application's own ``--maxfail``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

_errors: list[dict[str, str]] = []
_warnings: list[dict[str, str]] = []
_collected = 0
_rootpath: Path | None = None
# The options that stop collection early, as the application's configuration spells them.
_STOPPERS = re.compile(r"^(--maxfail(=\S+)?|-x|--exitfirst)$")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--goldenpath-collect-report", default=None,
                     help="write collection errors as JSON to this file")


def pytest_configure(config: pytest.Config) -> None:
    global _rootpath
    _rootpath = Path(str(config.rootpath))


def _absolute(path: str) -> str:
    """pytest names some reports by a path relative to its rootdir: make it absolute."""
    candidate = Path(path)
    if not candidate.is_absolute() and _rootpath is not None:
        candidate = _rootpath / candidate
    return str(candidate)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _errors.append({"where": _absolute(str(report.fspath or report.nodeid)),
                        "text": report.longreprtext})


def pytest_warning_recorded(warning_message: Any, when: str, nodeid: str, location: Any) -> None:
    category = getattr(warning_message, "category", None)
    if when == "collect" and getattr(category, "__name__", "") == "PytestUnknownMarkWarning":
        _warnings.append({"where": _absolute(str(warning_message.filename)),
                          "text": str(warning_message.message)})


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
                    "where": _absolute(str(item.path)),
                    "text": f"fixture '{name}' not found (used by {item.nodeid})",
                })


def _own_stoppers(config: pytest.Config) -> list[str]:
    try:
        addopts = config.getini("addopts")
    except ValueError:
        return []
    tokens = addopts.split() if isinstance(addopts, str) else [str(t) for t in addopts]
    return [t for t in tokens if _STOPPERS.match(t)]


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    target = config.getoption("--goldenpath-collect-report")
    if not target:
        return
    inipath = getattr(config, "inipath", None)
    payload: dict[str, Any] = {
        "collected": _collected,
        "errors": _errors,
        "warnings": _warnings,
        "pytest": pytest.__version__,
        "rootdir": str(config.rootpath),
        "configfile": str(inipath) if inipath else "",
        "maxfail": config.getoption("maxfail"),
        "own_stoppers": _own_stoppers(config),
    }
    # Written beside itself and renamed, as goldenpath.core.files does (which this standalone
    # copy cannot import): the audit never reads half a report of a killed pytest.
    partial = Path(f"{target}.partial")
    partial.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(partial, target)
