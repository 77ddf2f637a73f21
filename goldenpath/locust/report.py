"""The one goldenpath report of a Locust run, written by the master (or the only process).

It is a layer report (goldenpath.output.reports, layer ``locust``): the same JSON shape, the
same Markdown, the same SLA gate over the same recorder, so dashboards and the HTML renderer
read it like any other layer's. What differs is where the numbers come from: the merged
snapshots of every worker (goldenpath.locust.evidence). ``outcomes`` counts golden-path runs
(a run with a finding is ``failed``), since a Locust run has no tests.
"""

from __future__ import annotations

from pathlib import Path

from goldenpath.core.settings import Settings
from goldenpath.output import html
from goldenpath.output.reports import LayerReport, write_reports
from goldenpath.protocol.contract import Violation
from goldenpath.protocol.ledger import Finding
from goldenpath.protocol.sla import METRICS

from .evidence import EVIDENCE_LIMIT, Merged

LAYER = "locust"
_SHOWN_RUNS = 20


def build(settings: Settings, merged: Merged, *, started_at: str, ended_by: str) -> LayerReport:
    report = LayerReport(LAYER, settings, started_at=started_at)
    report.recorder = merged.recorder()
    report.clock = report.recorder.clock
    report.violations = [_violation(f) for f in merged.findings]
    runs, failed_runs = merged.count("runs"), merged.count("failed_runs")
    if runs - failed_runs:
        report.outcomes["passed"] = runs - failed_runs
    if failed_runs:
        report.outcomes["failed"] = failed_runs
    codes = merged.codes()
    users, nodes = merged.count("users"), len(merged.snapshots)
    report.notes += [
        f"{users} user(s) on {nodes} Locust process(es); {runs} run(s) checked, "
        f"{merged.count('events')} frame(s) checked, {merged.count('cut_short')} run(s) in flight at the "
        "stop (not judged)",
        f"the run ended: {ended_by}",
        "outcomes count golden-path runs (failed: a run with a finding), not tests",
    ]
    problems: list[str] = []
    if codes:
        total = sum(codes.values())
        by_code = ", ".join(f"{code} x{n}" for code, n in sorted(codes.items()))
        problems.append(f"{total} violation(s): {by_code}; the first {min(total, EVIDENCE_LIMIT)} with "
                        "their evidence are listed under violations")  # fmt: skip
    leaked = merged.leaked_runs()
    if leaked:
        shown = ", ".join(leaked[:_SHOWN_RUNS]) + (" ..." if len(leaked) > _SHOWN_RUNS else "")
        problems.append(f"another user's events or text reached a socket: leaked run(s) {shown}")
    errors = merged.count("user_errors")
    if errors:
        problems.append(f"{errors} user(s) could not log in, connect or keep their socket: "
                        f"{merged.first_error() or 'see the Locust failures'}")  # fmt: skip
    measured = [m for m in METRICS if report.recorder.count(m)]
    problems += [f"SLA {r.metric} failed: {r.message}"
                 for r in report.recorder.evaluate(settings.sla, metrics=measured).failures]  # fmt: skip
    if runs == 0:
        problems.append("no golden-path run was checked: the run validated nothing")
    if merged.findings_dropped:
        report.notes.append(f"{merged.findings_dropped} finding(s) beyond the first {EVIDENCE_LIMIT} "
                            "are counted, not listed")  # fmt: skip
    report.problems_found = problems
    report.finish("failed" if problems else "passed")
    return report


def _violation(data: dict[str, object]) -> Violation:
    try:
        return Finding(**data).violation()  # type: ignore[arg-type]
    except TypeError:  # a worker of another goldenpath version: keep what it said
        return Violation(str(data.get("code")), _text(data.get("run_id")), str(data.get("message")))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def write(report: LayerReport) -> list[Path]:
    """<reports>/locust.json and .md, and <reports>/index.html over every layer's report."""
    json_path, md_path = write_reports(report, report.settings.reports_dir)
    return [json_path, md_path, html.write_index(report.settings)]
