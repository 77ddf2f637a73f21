"""pytest fixtures for the layers that talk to a target, and their reports.

Enabled by ``pytest_plugins = ["goldenpath.testkit.plugin"]`` in a conftest. The settings
are the ones the nox session resolved and handed on. The layer's name is the setting
GOLDENPATH_LAYER (the nox session sets it); when it is set, the session's report
(<reports>/<layer>.json and .md, GOLDENPATH_REPORTS_DIR names the directory) is written at
the start as ``running`` and rewritten at the end as ``passed``, ``failed`` or
``interrupted`` (see goldenpath.output.reports).

The report and the exit code never disagree: a recorded violation, a failed SLA metric, or
a layer that validated nothing (every test skipped) turns a clean exit into exit 1, with
one line per reason.
"""

from __future__ import annotations

import secrets
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pytest

from goldenpath.core.errors import ConfigError
from goldenpath.core.settings import Settings
from goldenpath.output import history, html
from goldenpath.output.reports import LayerReport, write_reports
from goldenpath.output.terminal import Heartbeat, make_console, print_report_file
from goldenpath.protocol.contract import Contract
from goldenpath.protocol.sla import SlaRecorder
from goldenpath.testkit.support import current_settings

REPORT_KEY = pytest.StashKey[LayerReport]()
# Test users carry this prefix, so whoever looks at a shared staging can tell them apart.
TEST_USER_PREFIX = "goldenpath-test"


def new_report(settings: Settings) -> LayerReport:
    try:
        contract = Contract.from_settings(settings)
    except ConfigError as exc:
        pytest.exit(f"goldenpath: {exc}", returncode=2)
    return LayerReport(settings.layer or "adhoc", settings, recorder=SlaRecorder(contract))


@pytest.fixture(scope="session")
def gp_settings(pytestconfig: pytest.Config) -> Settings:
    """The profile's settings, exactly as the nox session resolved them."""
    return current_settings()


@pytest.fixture(scope="session")
def gp_report(pytestconfig: pytest.Config, gp_settings: Settings) -> LayerReport:
    """The layer's report: tests add runs and violations; the plugin writes it."""
    report = pytestconfig.stash.get(REPORT_KEY, None)
    if report is None:  # no layer: pytest run by hand, nothing is written
        report = new_report(gp_settings)
        pytestconfig.stash[REPORT_KEY] = report
    return report


def user_email(layer: str) -> str:
    """A fresh test user's address, recognisable by its prefix and layer."""
    return f"{TEST_USER_PREFIX}-{layer}-{secrets.token_hex(6)}@goldenpath.test"


class ReportKeeper:
    """Keeps one layer's report through the session: outcomes, failures, the final status."""

    def __init__(self, report: LayerReport, config: pytest.Config) -> None:
        self.report = report
        self.config = config
        self.interrupted = False
        self.verdict_changed = False
        self.paths: tuple[Path, Path] | None = None
        self.sigterm_handler: Callable[[int, FrameType | None], None] | None = None
        # A slow test still shows signs of life in a CI log: one line every 30 s.
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        self.heartbeat = Heartbeat(reporter.write_line) if reporter is not None else None

    def write(self) -> None:
        self.paths = write_reports(self.report, self.report.settings.reports_dir)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = _outcome(report)
        if outcome:
            self.report.add_outcome(outcome)
        if report.failed:
            phase = "" if report.when == "call" else f" (in {report.when})"
            self.report.add_failure(report.nodeid + phase, _message(report))

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        if self.heartbeat is not None:
            self.heartbeat.begin(nodeid)

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        if self.heartbeat is not None:
            self.heartbeat.end()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.report.add_outcome("error")
            self.report.add_failure(report.nodeid or "collection", _message(report))

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # pytest.exit() comes here too, and so does pytest stopping itself after collection
        # errors (Session.Interrupted): only a real interruption (Ctrl-C, SIGTERM) is one.
        interruption = excinfo.value
        if isinstance(interruption, pytest.Session.Interrupted) or not isinstance(interruption,
                                                                                 KeyboardInterrupt):
            return
        self.interrupted = True
        # Written now, before fixtures are torn down: nox gives a Ctrl-C'd child 0.3 s
        # before it escalates to SIGTERM and SIGKILL.
        self.report.finish("interrupted")
        self.write()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        report = self.report
        problems = report.problems()
        # A p95 regression against the baseline run fails the layer when SLA_REGRESSION_PCT is set.
        problems += history.regression_problems(report.as_dict(), report.settings)
        if self.interrupted:
            # Cut short, so "nothing ran" is no finding; what was recorded still is.
            problems = [p for p in problems if "validated nothing" not in p]
        report.problems_found = problems
        if problems and session.exitstatus == 0 and not self.interrupted:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            self.verdict_changed = True
        if self.interrupted:
            report.finish("interrupted")
        else:
            report.finish("passed" if session.exitstatus == 0 else "failed")
        self.write()
        if self.paths:
            history.archive(self.paths[0], report.settings)
            html.write_index(report.settings)
        if self.heartbeat is not None:
            self.heartbeat.close()
        if self.sigterm_handler is not None and signal.getsignal(signal.SIGTERM) is self.sigterm_handler:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.paths:
            # The SLA table and the violations, where the developer is looking.
            print_report_file(self.paths[0], make_console())
        for problem in self.report.problems_found:
            terminalreporter.write_line(f"goldenpath: {problem}", red=True, bold=True)
        if self.verdict_changed:
            terminalreporter.write_line(
                f"goldenpath: the {self.report.layer} layer FAILED (exit 1): every test verdict "
                "passed, but its report recorded the above", red=True, bold=True)
        if self.paths:
            json_path, md_path = self.paths
            terminalreporter.write_line(
                f"goldenpath report ({self.report.status}): {json_path} and {md_path}")


def pytest_sessionstart(session: pytest.Session) -> None:
    settings = current_settings()
    # Under pytest-xdist the controller keeps the report: it sees every worker's results,
    # and one writer per file keeps the report whole.
    if not settings.layer or hasattr(session.config, "workerinput"):
        return
    report = new_report(settings)
    session.config.stash[REPORT_KEY] = report
    keeper = ReportKeeper(report, session.config)
    # Replaces whatever an earlier run left: from now on the report is this run's.
    keeper.write()
    session.config.pluginmanager.register(keeper, "goldenpath-report-keeper")
    _interrupt_on_sigterm(keeper)


def _interrupt_on_sigterm(keeper: ReportKeeper) -> None:
    """SIGTERM (nox escalating a Ctrl-C, a CI job cancelled) ends the run as interrupted,
    not as a report that claims to be still running."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # someone else handles it; theirs wins

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if keeper.interrupted:
            # The report already says interrupted: die the way SIGTERM means.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    keeper.sigterm_handler = interrupt


def _outcome(report: pytest.TestReport) -> str | None:
    """The report's outcome the way pytest's own summary counts it."""
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.passed:
            return "xpassed" if xfail else "passed"
        if report.skipped:
            return "xfailed" if xfail else "skipped"
        return "failed"
    if report.failed:
        return "error"
    if report.skipped:
        return "xfailed" if xfail else "skipped"
    return None


def _message(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    crash: object = getattr(longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    if message:
        return str(message)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    text = str(longrepr or "")
    # The last non-blank line of a long representation is the error itself.
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "failed"
