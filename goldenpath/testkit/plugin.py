"""pytest fixtures for the layers that talk to a target, and their reports.

Enabled by ``pytest_plugins = ["goldenpath.testkit.plugin"]`` in a conftest. The settings
are the ones the nox session resolved and handed on. The layer's name is the setting
GOLDENPATH_LAYER (the nox session sets it); when it is set, the session ends by writing
<reports>/<layer>.json and <layer>.md (GOLDENPATH_REPORTS_DIR names the directory).
"""

from __future__ import annotations

import secrets

import pytest

from goldenpath.core.settings import Settings
from goldenpath.output.reports import LayerReport, write_reports
from goldenpath.protocol.contract import Contract
from goldenpath.protocol.sla import SlaRecorder
from goldenpath.testkit.support import current_settings

REPORT_KEY = pytest.StashKey[LayerReport]()
# Test users carry this prefix, so whoever looks at a shared staging can tell them apart.
TEST_USER_PREFIX = "goldenpath-test"


@pytest.fixture(scope="session")
def gp_settings(pytestconfig: pytest.Config) -> Settings:
    """The profile's settings, exactly as the nox session resolved them."""
    return current_settings()


@pytest.fixture(scope="session")
def gp_report(pytestconfig: pytest.Config, gp_settings: Settings) -> LayerReport:
    """The layer's report: tests add runs and violations; it is written at the end."""
    report = LayerReport(gp_settings.layer or "adhoc", gp_settings,
                         recorder=SlaRecorder(Contract.from_settings(gp_settings)))
    pytestconfig.stash[REPORT_KEY] = report
    return report


def user_email(layer: str) -> str:
    """A fresh test user's address, recognisable by its prefix and layer."""
    return f"{TEST_USER_PREFIX}-{layer}-{secrets.token_hex(6)}@goldenpath.test"


def pytest_sessionfinish(session: pytest.Session) -> None:
    settings = current_settings()
    if not settings.layer:
        return
    report = session.config.stash.get(REPORT_KEY, None) or LayerReport(settings.layer, settings)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(reporter, "stats", {})
    report.outcomes = {
        outcome: len([r for r in stats.get(outcome, []) if getattr(r, "when", "call") == "call"
                      or outcome in ("error", "skipped")])
        for outcome in ("passed", "failed", "skipped", "error")
        if stats.get(outcome)
    }
    json_path, md_path = write_reports(report, settings.reports_dir)
    if reporter is not None:
        reporter.write_line(f"goldenpath report: {json_path} and {md_path}")
