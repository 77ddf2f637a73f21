"""The multi-user layer's one load run: the profile's size, every event of every user checked.

The run happens once per session (it is the expensive part); each test then judges one of its
gates, so a failure names exactly what broke: a violation code, a latency bound, the trend,
the memory slope, the connection count or thread privacy.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from goldenpath.core.errors import ConfigError
from goldenpath.core.settings import Settings
from goldenpath.load.config import LoadPlan, check_plan
from goldenpath.load.report import Gate, LoadReport, write_load_report
from goldenpath.load.session import execute, run_loop
from goldenpath.output.reports import LayerReport
from goldenpath.protocol.ledger import Finding

# Two sockets a user: its runs reach both, so duplicates and late frames on a user's second
# socket are checked too, and the crowd has twice the connections.
SOCKETS_PER_USER = 2
SHOWN = 15


def layer_plan(settings: Settings) -> LoadPlan:
    """MULTI_USER_USERS users x MULTI_USER_MESSAGES messages, everyone connected together."""
    plan = LoadPlan(
        users=settings.multi_user_users,
        messages=settings.multi_user_messages,
        ramp_per_s=0.0,
        think_s=0.0,
        duration_s=float(settings.values["GOLDENPATH_LOAD_MAX_DURATION_S"]),
        sockets_per_user=SOCKETS_PER_USER,
        together=True,
        report_name=f"{settings.layer or 'multi_user'}-load",
    )
    try:
        check_plan(plan, settings, size_from_profile=True)
    except ConfigError as exc:
        pytest.exit(f"goldenpath: {exc}", returncode=2)
    return plan


def run_layer_load(settings: Settings, report: LayerReport) -> LoadReport:
    """The load run, its SLA samples and violations into the layer's report, its own section
    written beside it as <reports>/<layer>-load.json and .md."""
    plan = layer_plan(settings)
    load = run_loop(execute(settings, plan, recorder=report.recorder))
    report.add_violations(f.violation() for f in load.state.findings)
    json_path, _ = write_load_report(load, settings.reports_dir, plan.report_name)
    report.notes += [*load.lines()[:2], f"load section: {json_path}"]
    return load


def findings_text(findings: Sequence[Finding]) -> str:
    """Counts by code, then the first findings with their evidence, one a line."""
    codes: dict[str, int] = {}
    for finding in findings:
        codes[finding.code] = codes.get(finding.code, 0) + 1
    counts = ", ".join(f"{code} x{n}" for code, n in sorted(codes.items()))
    shown = "\n  ".join(str(f.violation()) for f in findings[:SHOWN])
    more = f"\n  ... and {len(findings) - SHOWN} more" if len(findings) > SHOWN else ""
    return f"{counts}:\n  {shown}{more}"


def gate(load: LoadReport, name: str) -> Gate:
    for candidate in load.gates():
        if candidate.name == name:
            return candidate
    raise AssertionError(f"the load run has no gate {name!r}: {[g.name for g in load.gates()]}")
