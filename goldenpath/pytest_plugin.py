"""pytest fixtures for the layers that talk to a target, and their reports.

Enabled by ``pytest_plugins = ["goldenpath.pytest_plugin"]`` in a conftest. The layer's
name comes from GOLDENPATH_LAYER (the nox session sets it); when it is set, the session
ends by writing reports/<layer>.json and reports/<layer>.md (GOLDENPATH_REPORTS_DIR moves them).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from goldenpath.config import ConfigError, Settings, load_settings
from goldenpath.contract import Contract
from goldenpath.layers import LAYER_VAR, reports_dir
from goldenpath.reports import LayerReport, write_reports
from goldenpath.sla import SlaRecorder

REPORT_KEY = pytest.StashKey[LayerReport]()
# Test users carry this prefix, so whoever looks at a shared staging can tell them apart.
TEST_USER_PREFIX = "goldenpath-test"


@pytest.fixture(scope="session")
def gp_settings(pytestconfig: pytest.Config) -> Settings:
    """The profile's settings, exactly as the nox session resolved them."""
    try:
        return load_settings(pytestconfig.rootpath)
    except ConfigError as exc:
        pytest.exit(f"goldenpath: {exc}", returncode=2)


@pytest.fixture(scope="session")
def gp_report(pytestconfig: pytest.Config, gp_settings: Settings) -> LayerReport:
    """The layer's report: tests add runs and violations; it is written at the end."""
    report = LayerReport(os.environ.get(LAYER_VAR) or "adhoc", gp_settings,
                         recorder=SlaRecorder(Contract.from_settings(gp_settings)))
    pytestconfig.stash[REPORT_KEY] = report
    return report


def user_email(layer: str) -> str:
    """A fresh test user's address, recognisable by its prefix and layer."""
    return f"{TEST_USER_PREFIX}-{layer}-{secrets.token_hex(6)}@goldenpath.test"


def pytest_sessionfinish(session: pytest.Session) -> None:
    layer = os.environ.get(LAYER_VAR)
    if not layer:
        return
    report = session.config.stash.get(REPORT_KEY, None)
    if report is None:
        try:
            report = LayerReport(layer, load_settings(session.config.rootpath))
        except ConfigError:
            return  # gp_settings has already ended the run with this error
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(reporter, "stats", {})
    report.outcomes = {
        outcome: len([r for r in stats.get(outcome, []) if getattr(r, "when", "call") == "call"
                      or outcome in ("error", "skipped")])
        for outcome in ("passed", "failed", "skipped", "error")
        if stats.get(outcome)
    }
    json_path, md_path = write_reports(report, Path(session.config.rootpath) / reports_dir())
    if reporter is not None:
        reporter.write_line(f"goldenpath report: {json_path} and {md_path}")
