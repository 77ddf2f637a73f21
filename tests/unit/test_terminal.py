"""The terminal: plain text at full width without a terminal (no URL split, a final newline),
the end-of-layer summary, and the heartbeat of a slow test."""

from __future__ import annotations

import io
import re
import threading

import pytest
from rich.live import Live

from goldenpath.checks.preflight import CheckResult
from goldenpath.checks.probes import ProbeResult
from goldenpath.output.tables import preflight_table, probe_table
from goldenpath.output.terminal import Heartbeat, end_live, make_console, print_summary

URLS = ["https://auth.staging.example.com:8443/api/v1/health/ready?component=websocket-gateway",
        "postgresql://goldenpath:****@db.internal.example.com:5432/goldenpath_staging_database"]
WIDTHS = (80, 200)


def preflight_rows() -> list[CheckResult]:
    return [CheckResult("auth-ports", "fail", 0.12, f"auth answers at {URLS[0]} not the declared port",
                        f"set AUTH_SERVICE_URL={URLS[0]} in .env"),
            CheckResult("postgres", "ok", 0.03, f"reachable at {URLS[1]}")]


def assert_plain(text: str, urls: list[str] = URLS) -> None:
    for url in urls:
        assert url in text, f"{url} split or lost in:\n{text}"
    assert text.endswith("\n")
    assert "\x1b" not in text  # no colour or cursor control in a log


@pytest.mark.parametrize("columns", WIDTHS)
def test_preflight_table_in_a_pipe_never_splits_a_url(columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # rich alone wraps at $COLUMNS (80 when unset) when the output is not a terminal.
    monkeypatch.setenv("COLUMNS", str(columns))
    out = io.StringIO()
    console = make_console(out)
    with Live(preflight_table(preflight_rows(), []), console=console, transient=False):
        pass
    end_live(console)
    out.write("error: preflight failed: auth-ports\n")
    text = out.getvalue()
    assert_plain(text)
    # The error line starts a line of its own, not glued onto the table's last border.
    assert re.search(r"\n(?:error: preflight failed)", text)


@pytest.mark.parametrize("columns", WIDTHS)
def test_stack_status_table_in_a_pipe_never_splits_a_url(columns: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    out = io.StringIO()
    rows = [ProbeResult("auth /health/ready", URLS[0], "ok", 3.2, "ready", 1),
            ProbeResult("postgres", URLS[1], "fail", 2000, f"no answer from {URLS[1]}", 3)]
    make_console(out).print(probe_table("reference stack", rows))
    assert_plain(out.getvalue())


def test_plain_rich_would_have_split_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: rich's own console in a pipe folds these URLs at 80 columns."""
    from rich.console import Console

    monkeypatch.setenv("COLUMNS", "80")
    out = io.StringIO()
    Console(file=out).print(preflight_table(preflight_rows(), []))
    assert URLS[0] not in out.getvalue()


def layer_report() -> dict[str, object]:
    return {
        "layer": "e2e", "profile": "local", "status": "failed", "duration_s": 12.5,
        "outcomes": {"passed": 24, "failed": 1},
        "failures": [{"test": "tests/e2e/test_chat.py::test_reply", "message": "no agent_completed [run 7]"}],
        "sla": {"passed": False, "metrics": [
            {"metric": "first_event", "count": 19, "p50_ms": 1.48, "p95_ms": 2.24, "p99_ms": 3.26,
             "max_ms": 3.26, "bound_ms": 5000.0, "passed": True, "message": ""},
            {"metric": "event_delivery", "count": 101, "p50_ms": 610.0, "p95_ms": 712.4, "p99_ms": 790.0,
             "max_ms": 801.0, "bound_ms": 500.0, "passed": False,
             "message": "event_delivery p95 712 ms > 500"}]},
        "violations": [{"code": "CROSS_USER", "run_id": "run-42", "index": 3,
                        "message": f"user b received user a's event from {URLS[0]}"}],
    }


@pytest.mark.parametrize("columns", WIDTHS)
def test_layer_summary_shows_sla_and_violations(columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    out = io.StringIO()
    print_summary(layer_report(), make_console(out))
    text = out.getvalue()
    assert "goldenpath e2e: failed (1 failed, 24 passed in 12.5 s, profile local)" in text
    assert "2.2" in text
    assert "712.4" in text
    assert "FAIL: event_delivery p95 712 ms > 500" in text
    assert "contract and isolation violations (1)" in text
    assert "CROSS_USER" in text
    assert "no agent_completed [run 7]" in text  # brackets shown, not eaten as markup
    assert_plain(text, URLS[:1])


def test_summary_of_a_report_with_nothing_in_it() -> None:
    out = io.StringIO()
    print_summary({"layer": "unit"}, make_console(out))
    assert "no tests ran" in out.getvalue()
    assert "nothing was measured" in out.getvalue()


def test_heartbeat_names_the_slow_test_and_stops_when_it_ends() -> None:
    lines: list[str] = []
    beat = threading.Event()

    def write(line: str) -> None:
        lines.append(line)
        beat.set()

    heartbeat = Heartbeat(write, interval=0.05)
    try:
        heartbeat.begin("tests/integration/test_faults.py::test_slow")
        assert beat.wait(timeout=10), "no heartbeat while a test ran"
        heartbeat.end()
        count = len(lines)
        heartbeat.begin("tests/unit/test_x.py::test_fast")
        heartbeat.end()
    finally:
        heartbeat.close()
    assert lines[0].startswith("goldenpath: still running tests/integration/test_faults.py::test_slow (")
    assert len(lines) == count  # nothing for the test that ended before its interval
