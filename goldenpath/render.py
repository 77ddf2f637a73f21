"""rich tables for the invoke tasks' results: presentation only, no checks here."""

from __future__ import annotations

from rich.table import Table

from goldenpath.health import ServiceHealth
from goldenpath.masking import mask_value
from goldenpath.ports import PortReport


def health_table(rows: list[ServiceHealth]) -> Table:
    table = Table(title="reference stack", title_justify="left")
    for column in ("service", "url", "live", "ready", "dependencies", "ms", "problem"):
        table.add_column(column, overflow="fold")
    for row in rows:
        deps = "\n".join(f"{dep}={status}" for dep, status in row.checks.items())
        table.add_row(row.name, row.url, "yes" if row.live else "no", row.ready, deps,
                      f"{row.latency_ms:.0f}", row.problem)
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
