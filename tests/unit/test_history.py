"""Run history: the bounded archive, the baseline choice, the comparison and the regression gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from goldenpath.core.settings import Settings, load_settings
from goldenpath.output import history

REPO = Path(__file__).resolve().parents[2]


def settings_for(reports: Path, **extra: str) -> Settings:
    return load_settings(REPO, "local", environ={"GOLDENPATH_REPORTS_DIR": str(reports), **extra})


def report(started: str, p95: float, *, layer: str = "e2e", profile: str = "local",
           status: str = "passed", violations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"layer": layer, "profile": profile, "status": status, "started_at": started,
            "sla": {"passed": True, "metrics": [{"metric": "first_event", "p95_ms": p95, "count": 10}]},
            "violations": violations or []}


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_archive_keeps_the_newest_runs_per_profile_and_layer(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, GOLDENPATH_HISTORY_KEEP="3")
    current = tmp_path / "e2e.json"
    for minute in range(5):
        write(current, report(f"2026-01-01T10:0{minute}:00+00:00", 10 + minute))
        assert history.archive(current, settings) is not None
    other = write(tmp_path / "unit.json", report("2026-01-01T09:00:00+00:00", 1, layer="unit"))
    history.archive(other, settings)
    kept = sorted(p.name for p in history.history_dir(settings).glob("local--e2e--*.json"))
    assert kept == ["local--e2e--2026-01-01T100200+0000.json", "local--e2e--2026-01-01T100300+0000.json",
                    "local--e2e--2026-01-01T100400+0000.json"]
    # Another layer's history is not pruned away by this one's.
    assert len(list(history.history_dir(settings).glob("local--unit--*.json"))) == 1


def test_a_running_report_is_not_archived(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    path = write(tmp_path / "e2e.json", report("2026-01-01T10:00:00+00:00", 5, status="running"))
    assert history.archive(path, settings) is None
    assert not history.history_dir(settings).exists()


def test_previous_is_the_newest_finished_earlier_run_of_the_same_profile(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    archive = history.history_dir(settings)
    archive.mkdir()
    write(archive / "local--e2e--a.json", report("2026-01-01T08:00:00+00:00", 5))
    write(archive / "local--e2e--b.json", report("2026-01-01T09:00:00+00:00", 6))
    write(archive / "local--e2e--c.json", report("2026-01-01T09:30:00+00:00", 7, status="interrupted"))
    write(archive / "ci--e2e--d.json", report("2026-01-01T09:45:00+00:00", 8, profile="ci"))
    now = report("2026-01-01T10:00:00+00:00", 12)
    write(archive / "local--e2e--e.json", now)  # the current run, already archived
    baseline = history.baseline_for(now, settings)
    assert baseline.report is not None
    assert baseline.report["started_at"] == "2026-01-01T09:00:00+00:00"
    comparison = history.compare(now, baseline.report, baseline.source)
    change = comparison.metrics[0]
    assert (change.baseline_p95_ms, change.p95_ms, change.change_pct) == (6, 12, 100)
    assert not change.regressed  # no SLA_REGRESSION_PCT: shown, not gated


def test_no_earlier_run_means_no_comparison_and_says_why(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    comparison, baseline = history.comparison_for(report("2026-01-01T10:00:00+00:00", 5), settings)
    assert comparison is None
    assert "no earlier finished e2e run of profile local" in baseline.source


def test_a_named_baseline_file_and_its_errors(tmp_path: Path) -> None:
    now = report("2026-01-01T10:00:00+00:00", 30)
    good = write(tmp_path / "base.json", report("2025-12-01T10:00:00+00:00", 10))
    chosen = history.baseline_for(now, settings_for(tmp_path, GOLDENPATH_BASELINE=str(good)))
    assert chosen.report is not None
    assert chosen.error is None
    wrong_layer = write(tmp_path / "unit.json", report("2025-12-01T10:00:00+00:00", 1, layer="unit"))
    chosen = history.baseline_for(now, settings_for(tmp_path, GOLDENPATH_BASELINE=str(wrong_layer)))
    assert chosen.report is None
    assert "unit layer's report" in chosen.source
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    limited = settings_for(tmp_path, GOLDENPATH_BASELINE=str(broken), SLA_REGRESSION_PCT="50")
    problems = history.regression_problems(now, limited)
    assert len(problems) == 1
    assert "GOLDENPATH_BASELINE=" in problems[0]
    assert "'previous'" in problems[0]


def test_the_regression_gate_is_off_by_default(tmp_path: Path) -> None:
    base = write(tmp_path / "base.json", report("2025-12-01T10:00:00+00:00", 10))
    tripled = report("2026-01-01T10:00:00+00:00", 30)
    assert history.regression_problems(tripled, settings_for(tmp_path, GOLDENPATH_BASELINE=str(base))) == []


def test_regression_beyond_the_bound_fails_and_within_it_passes(tmp_path: Path) -> None:
    base = write(tmp_path / "base.json", report("2025-12-01T10:00:00+00:00", 10))
    gated = settings_for(tmp_path, GOLDENPATH_BASELINE=str(base), SLA_REGRESSION_PCT="50")
    within = report("2026-01-01T10:00:00+00:00", 14.9)
    beyond = report("2026-01-01T10:00:00+00:00", 16)
    assert history.regression_problems(within, gated) == []
    [line] = history.regression_problems(beyond, gated)
    assert "first_event p95 16.0 ms is 60% above the baseline's 10.0 ms" in line


def test_new_violations_ignore_run_ids_and_numbers(tmp_path: Path) -> None:
    old = [{"code": "MISSING_EVENT", "message": "run 1a2b3c4d5e: no agent_completed after 3 events"}]
    now_v = [{"code": "MISSING_EVENT", "message": "run 9f8e7d6c5b: no agent_completed after 4 events"},
             {"code": "CROSS_USER", "message": "user 2 received user 1's event"}]
    comparison = history.compare(report("b", 1, violations=now_v), report("a", 1, violations=old), "x")
    assert [v["code"] for v in comparison.new_violations] == ["CROSS_USER"]
