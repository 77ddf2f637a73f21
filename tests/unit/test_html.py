"""reports/index.html from report JSON written by LayerReport itself: what it must show, what it
must never contain (markup from a message, a secret, a fetch), and tolerance of missing parts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from goldenpath.core.settings import Settings, load_settings
from goldenpath.output import history, html
from goldenpath.output.reports import LayerReport, write_reports
from goldenpath.protocol.contract import Violation

REPO = Path(__file__).resolve().parents[2]
MS = 1_000_000
SECRET = "jwt-signing-key-0f9a8b7c6d"


def settings_for(reports: Path, **extra: str) -> Settings:
    return load_settings(REPO, "local", environ={"GOLDENPATH_REPORTS_DIR": str(reports),
                                                 "JWT_SECRET_KEY": SECRET, **extra})


def layer_run(settings: Settings, layer: str, *, scale: float = 1.0, started: str | None = None,
              violations: tuple[Violation, ...] = (), failure: str | None = None) -> dict[str, Any]:
    """A finished layer's report, through LayerReport and write_reports, read back as JSON."""
    report = LayerReport(layer, settings)
    for i in range(1, 201):
        report.recorder.record("first_event", int((1 + i % 40) * scale * MS))
        report.recorder.record("ws_connect", int((3 + i % 7) * scale * MS))
    for _ in range(7):
        report.add_outcome("passed")
    if failure:
        report.add_outcome("failed")
        report.add_failure(f"tests/{layer}/test_chat.py::test_reply", failure)
    report.add_violations(violations)
    if started:
        report.started_at = started
    report.finish("failed" if failure or violations else "passed")
    json_path, _ = write_reports(report, settings.reports_dir)
    data: dict[str, Any] = json.loads(json_path.read_text(encoding="utf-8"))
    return data


def test_index_shows_the_run_tests_failures_sla_and_violations(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    hostile = "<script>alert('x')</script> & <img src=http://evil.example/x.png>"
    data = layer_run(settings, "e2e", failure=f"AssertionError: no agent_completed (key {SECRET})",
                     violations=(Violation("MISSING_EVENT", "run-1", hostile, 3),
                                 Violation("CROSS_USER", "run-2", "user b saw user a's agent_started")))
    page = html.write_index(settings).read_text(encoding="utf-8")
    assert "7 passed, 1 failed" in page
    assert "tests/e2e/test_chat.py::test_reply" in page
    assert "no agent_completed" in page
    for metric in data["sla"]["metrics"]:
        assert re.search(rf">{re.escape(html.fmt_ms(metric['p95_ms']))}<", page), metric["metric"]
    assert "violations (2)" in page
    assert "MISSING_EVENT" in page
    assert "CROSS_USER" in page
    assert "started by goldenpath" in page  # said either way, never left out
    # Escaped: the message is shown, not run or fetched; the secret is masked.
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;" in page
    assert SECRET not in page
    assert "****" in page
    # Self-contained: no external reference at all (the SVG namespace is an identifier, not a fetch).
    refs = re.findall(r"<[^>]*\s(?:src|href|srcset|action)\s*=|url\(|@import", page)
    assert refs == []


def test_each_metric_has_a_plot(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    data = layer_run(settings, "e2e")
    page = html.write_index(settings).read_text(encoding="utf-8")
    assert page.count("<svg") == len(data["sla"]["metrics"]) == 2
    # With buckets in the report, the plot is a histogram: one bar per bucket.
    metric = dict(data["sla"]["metrics"][0], histogram=[[1.0, 4], [2.0, 9], [5.0, 2]])
    assert html.latency_svg(metric).count("<rect") == 3


def test_comparison_with_the_previous_run_shows_changes_and_new_violations(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, SLA_REGRESSION_PCT="50")
    first = layer_run(settings, "e2e", started="2026-01-01T10:00:00+00:00")
    history.archive(settings.reports_dir / "e2e.json", settings)
    second = layer_run(settings, "e2e", scale=2.0, started="2026-01-01T11:00:00+00:00",
                       violations=(Violation("CROSS_USER", "run-9", "user b saw user a's reply"),))
    history.archive(settings.reports_dir / "e2e.json", settings)
    page = html.write_index(settings).read_text(encoding="utf-8")
    assert "started 2026-01-01T10:00:00+00:00" in page
    before = {m["metric"]: m["p95_ms"] for m in first["sla"]["metrics"]}
    for metric in second["sla"]["metrics"]:
        change = (metric["p95_ms"] - before[metric["metric"]]) / before[metric["metric"]] * 100
        assert f"{change:+.1f}%" in page
    assert page.count(">regression<") == 2
    assert "New violations since the baseline: 1" in page
    assert history.regression_problems(second, settings)


def test_a_load_section_plots_its_timeline_and_lists_users(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    data = layer_run(settings, "multi_user")
    data["load"] = {"users": 3, "detection_power": 0.97, "memory_slope_kib_per_min": 12.5,
                    "timeline": [{"t_s": t, "events_per_s": 40 + t, "p95_ms": 8 + t / 10} for t in range(10)],
                    "per_user": [{"user": f"u{i}", "runs": 20, "p95_ms": 9.5 + i, "violations": 0}
                                 for i in range(3)]}
    (tmp_path / "multi_user.json").write_text(json.dumps(data), encoding="utf-8")
    page = html.write_index(settings).read_text(encoding="utf-8")
    assert "events_per_s over time" in page
    assert "p95_ms over time" in page
    assert page.count("<polyline") == 2
    assert "Per user (3)" in page
    assert ">u2<" in page
    assert "detection_power" in page


def test_missing_sections_are_left_out_not_a_crash(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    (tmp_path / "e2e.json").write_text(json.dumps({"layer": "e2e"}), encoding="utf-8")
    (tmp_path / "odd.json").write_text(json.dumps({"layer": "odd", "sla": {"metrics": "nope"},
                                                   "violations": 3, "outcomes": [],
                                                   "load": {"timeline": "x"}}), encoding="utf-8")
    (tmp_path / "collect.json").write_text(json.dumps({"collected": 3}), encoding="utf-8")  # not a layer
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    page = html.write_index(settings).read_text(encoding="utf-8")
    assert page.count("<section class=layer") == 2
    assert "Nothing was measured in this run." in page
    empty = settings_for(tmp_path / "none")
    assert "No layer report in this directory yet" in html.write_index(empty).read_text(encoding="utf-8")
