"""A layer's report through its life: written as running at the start, finished as passed,
failed or interrupted, never left over from an earlier run, naming its target, and never
disagreeing with the exit code. Each case runs pytest for real, in a subprocess, on a tiny
generated test file with goldenpath's plugin, and reads the report it wrote."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from goldenpath.testkit.support import environ_without_settings

LAYER = "probe"
REPO = Path(__file__).resolve().parents[2]


Outcome = tuple[subprocess.CompletedProcess[str], dict[str, Any]]


def run_layer(tmp_path: Path, tests: str, **env: str) -> Outcome:
    """pytest on ``tests`` as the nox session runs a layer; its exit and its JSON report."""
    test_file = tmp_path / "test_generated.py"
    test_file.write_text(textwrap.dedent(tests))
    reports = tmp_path / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "goldenpath.testkit.plugin",
         "--rootdir", str(tmp_path), str(test_file)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        # This repository's goldenpath, whatever else is installed.
        env={**environ_without_settings(), "PYTHONPATH": str(REPO), "GOLDENPATH_LAYER": LAYER,
             "GOLDENPATH_REPORTS_DIR": str(reports), **env},
    )
    report_path = reports / f"{LAYER}.json"
    assert report_path.exists(), proc.stdout + proc.stderr
    return proc, json.loads(report_path.read_text())


HEADER = """
import json, os
from pathlib import Path
REPORT = Path(os.environ["GOLDENPATH_REPORTS_DIR"]) / "probe.json"
"""


def reading_the_report(tests: str) -> str:
    return HEADER + textwrap.dedent(tests)


def test_the_report_says_running_while_the_tests_run_and_passed_after(tmp_path: Path) -> None:
    proc, report = run_layer(tmp_path, reading_the_report("""
        def test_reads_its_own_report():
            assert json.loads(REPORT.read_text())["status"] == "running"
    """))
    assert proc.returncode == 0, proc.stdout
    assert report["status"] == "passed"
    assert report["layer"] == LAYER
    assert report["profile"] == "local"
    assert report["outcomes"] == {"passed": 1}
    assert report["finished_at"] is not None
    assert report["duration_s"] >= 0
    assert report["failures"] == []
    assert report["problems"] == []


def test_an_earlier_runs_report_is_replaced_at_the_start(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / f"{LAYER}.json").write_text(json.dumps({"status": "passed", "outcomes": {"passed": 16}}))
    (reports / f"{LAYER}.md").write_text("16 passed\n")
    proc, _ = run_layer(tmp_path, reading_the_report("""
        def test_sees_no_earlier_report():
            report = json.loads(REPORT.read_text())
            assert report["status"] == "running"
            assert report["outcomes"] == {}
            assert "16 passed" not in REPORT.with_suffix(".md").read_text()
    """))
    assert proc.returncode == 0, proc.stdout


def test_the_report_names_its_target_and_who_started_it(tmp_path: Path) -> None:
    test = "def test_ok():\n    pass\n"
    _, ours = run_layer(tmp_path, test, BACKEND_URL="http://user:hunter22@127.0.0.1:8123",
                        GOLDENPATH_TARGET_STARTED="1")
    assert ours["target"] == {"backend": "http://user:****@127.0.0.1:8123",
                              "auth": "http://127.0.0.1:8081",
                              "websocket": "ws://user:****@127.0.0.1:8123/ws",
                              "started_by_goldenpath": True}
    _, theirs = run_layer(tmp_path, test, GOLDENPATH_TARGET_STARTED="0")
    assert theirs["target"]["started_by_goldenpath"] is False
    md = (tmp_path / "reports" / f"{LAYER}.md").read_text()
    assert "- target: not started by goldenpath" in md


def test_each_failed_test_is_named_with_a_one_line_message(tmp_path: Path) -> None:
    proc, report = run_layer(tmp_path, """
        import pytest

        def test_ok():
            pass

        def test_wrong():
            assert 1 == 2, "the answer was not 1\\nsecond line"

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")

        def test_setup_error(broken):
            pass
    """)
    assert proc.returncode == 1
    assert report["status"] == "failed"
    assert report["outcomes"] == {"error": 1, "failed": 1, "passed": 1}
    assert report["failures"] == [
        {"test": "test_generated.py::test_wrong", "message": "AssertionError: the answer was not 1"},
        {"test": "test_generated.py::test_setup_error (in setup)", "message": "RuntimeError: fixture broke"},
    ]


def test_ctrl_c_leaves_an_interrupted_report_with_what_was_measured(tmp_path: Path) -> None:
    proc, report = run_layer(tmp_path, """
        from goldenpath.protocol.contract import Violation

        def test_measures_something(gp_report):
            gp_report.add_connection_time(5_000_000)
            gp_report.notes.append("measured before the interruption")

        def test_ctrl_c():
            raise KeyboardInterrupt

        def test_never_reached():
            pass
    """)
    assert proc.returncode == 2, proc.stdout
    assert report["status"] == "interrupted"
    assert report["outcomes"] == {"passed": 1}
    assert report["notes"] == ["measured before the interruption"]
    assert [m["metric"] for m in report["sla"]["metrics"]] == ["ws_connect"]
    assert report["finished_at"] is not None
    md = (tmp_path / "reports" / f"{LAYER}.md").read_text()
    assert "- status: **interrupted** (cut short" in md


def test_a_collection_error_is_a_failure_not_an_interruption(tmp_path: Path) -> None:
    # pytest stops itself after a collection error by raising a KeyboardInterrupt subclass.
    proc, report = run_layer(tmp_path, "import not_a_module_anywhere\n\ndef test_x():\n    pass\n")
    assert proc.returncode == 2, proc.stdout
    assert report["status"] == "failed"
    assert report["outcomes"] == {"error": 1}
    assert report["failures"][0]["test"] == "test_generated.py"
    assert "not_a_module_anywhere" in report["failures"][0]["message"]


def test_sigterm_is_an_interruption_too(tmp_path: Path) -> None:
    # What nox sends a Ctrl-C'd layer that is slow to stop, and what a cancelled CI job sends.
    proc, report = run_layer(tmp_path, """
        import os, signal

        def test_terminated():
            os.kill(os.getpid(), signal.SIGTERM)
    """)
    assert proc.returncode == 2, proc.stdout
    assert report["status"] == "interrupted"


def test_a_recorded_violation_fails_a_layer_whose_tests_passed(tmp_path: Path) -> None:
    proc, report = run_layer(tmp_path, """
        from goldenpath.protocol.contract import Violation

        def test_records_but_does_not_assert(gp_report):
            gp_report.add_violations([Violation("LATE", "run-1", "a frame after agent_completed")])
    """)
    assert proc.returncode == 1, proc.stdout
    assert report["status"] == "failed"
    assert report["outcomes"] == {"passed": 1}
    assert report["problems"] == [f"1 contract violation(s) recorded in the {LAYER} report: LATE"]
    assert f"goldenpath: 1 contract violation(s) recorded in the {LAYER} report: LATE" in proc.stdout


def test_a_failed_sla_fails_the_layer(tmp_path: Path) -> None:
    proc, report = run_layer(tmp_path, """
        def test_slow_connection(gp_report):
            gp_report.add_connection_time(9_000_000_000)  # 9 s, over the 2 s bound
    """)
    assert proc.returncode == 1, proc.stdout
    assert report["status"] == "failed"
    assert report["sla"]["passed"] is False
    assert len(report["problems"]) == 1
    assert report["problems"][0].startswith("SLA ws_connect failed: ")
    assert "goldenpath: SLA ws_connect failed: " in proc.stdout


def test_a_layer_whose_every_test_skipped_validated_nothing(tmp_path: Path) -> None:
    proc, report = run_layer(tmp_path, """
        from goldenpath.testkit.support import service_missing

        def test_needs_a_service():
            service_missing("redis", "REDIS_URL is not set")

        def test_needs_another():
            service_missing("docker", "no engine")
    """, GOLDENPATH_REQUIRE_SERVICES="0")
    assert proc.returncode == 1, proc.stdout
    assert report["status"] == "failed"
    assert report["outcomes"] == {"skipped": 2}
    assert report["problems"] == [f"the {LAYER} layer validated nothing: every test skipped"]
    assert f"goldenpath: the {LAYER} layer validated nothing: every test skipped" in proc.stdout


def test_a_layer_without_tests_fails_and_says_so(tmp_path: Path) -> None:
    proc, report = run_layer(tmp_path, "HELPERS_ONLY = True\n")
    assert proc.returncode == pytest.ExitCode.NO_TESTS_COLLECTED
    assert report["status"] == "failed"
    assert report["problems"] == [f"the {LAYER} layer validated nothing: no test ran"]


def test_a_secret_in_a_message_never_reaches_the_report(tmp_path: Path) -> None:
    key = "e2e-bypass-key-that-must-stay-secret"
    _, report = run_layer(tmp_path, """
        import os

        def test_leaks_into_a_note(gp_report):
            gp_report.notes.append("sent key " + os.environ["E2E_OAUTH_SIMULATION_KEY"])
            assert False, "key was " + os.environ["E2E_OAUTH_SIMULATION_KEY"]
    """, E2E_OAUTH_SIMULATION_KEY=key)
    written = "".join(p.read_text() for p in (tmp_path / "reports").rglob("*") if p.is_file())
    assert key not in written
    assert report["notes"] == ["sent key ****"]
