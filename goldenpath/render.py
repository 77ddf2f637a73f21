"""rich tables for the invoke tasks' results: presentation only, no checks here."""

from __future__ import annotations

from rich.table import Table

from goldenpath.masking import mask_value
from goldenpath.ports import PortReport
from goldenpath.preflight import CheckResult
from goldenpath.service_probes import ProbeResult

STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


def probe_table(title: str, results: list[ProbeResult]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("probe", "target", "status", "ms", "tries", "detail"):
        table.add_column(column, overflow="fold")
    for result in results:
        style = STATUS_STYLE.get(result.status, "")
        table.add_row(result.name, result.target, f"[{style}]{result.status}[/]",
                      f"{result.latency_ms:.0f}", str(result.attempts), result.detail)
    return table


def ports_tables(report: PortReport) -> list[Table]:
    declared = Table(title=f"auth/backend addresses (profile {report.profile})", title_justify="left")
    for column in ("source", "key", "value", "port"):
        declared.add_column(column, overflow="fold")
    for item in report.declarations:
        declared.add_row(item.source, item.key, mask_value(item.key, item.value), str(item.port or ""))
    answering = Table(title="what answers /health", title_justify="left")
    answering.add_column("port")
    answering.add_column("service")
    for listener in report.listeners:
        answering.add_row(str(listener.port), listener.identity or "(unidentified)")
    tables = [declared, answering]
    if report.conflicts:
        conflicts = Table(title="conflicts", title_justify="left")
        conflicts.add_column("code")
        conflicts.add_column("problem", overflow="fold")
        for conflict in report.conflicts:
            conflicts.add_row(conflict.code, conflict.message)
        tables.append(conflicts)
    return tables


def preflight_table(results: list[CheckResult], pending: list[str]) -> Table:
    table = Table(title="preflight", title_justify="left")
    for column in ("check", "status", "time", "detail", "remediation"):
        table.add_column(column, overflow="fold")
    for result in results:
        style = STATUS_STYLE.get(result.status, "")
        table.add_row(result.name, f"[{style}]{result.status}[/]", f"{result.seconds:.2f}s",
                      result.detail, result.remediation)
    for name in pending:
        table.add_row(name, "[dim]running[/]", "", "", "")
    return table
