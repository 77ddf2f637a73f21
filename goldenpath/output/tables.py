"""Every rich table goldenpath draws: presentation only, no checks here.

The checks, the docker planner and the usage reader return data; this module turns it
into tables for the terminal.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from goldenpath.checks.collect import CollectResult
from goldenpath.checks.ports import PortReport
from goldenpath.checks.preflight import CheckResult
from goldenpath.checks.probes import ProbeResult
from goldenpath.core.masking import mask_value
from goldenpath.hygiene.clean import CleanResult, summary_line
from goldenpath.hygiene.model import ACCOUNTING, Usage, disk_line, format_size, short_id

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


def usage_table(usage: Usage) -> Table:
    """`docker system df`, plus the disk: one row per kind, the disk and notes in the caption."""
    scope = f" (only {usage.only_label})" if usage.only_label else ""
    table = Table(title=f"docker disk usage at {usage.host}{scope}", title_justify="left", min_width=90,
                  caption="\n".join([disk_line(usage), *usage.notes, ACCOUNTING]), caption_justify="left")
    for column in ("kind", "total", "active", "size", "reclaimable"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for row in usage.categories():
        share = f" ({100 * row.reclaimable_bytes / row.bytes:.0f}%)" if row.bytes else ""
        table.add_row(row.kind, str(row.count), str(row.active), format_size(row.bytes),
                      format_size(row.reclaimable_bytes) + share)
    return table


def clean_table(result: CleanResult) -> Table:
    """The plan (dry run) or what happened, one row per object, totals in the caption."""
    plan = result.plan
    verb = "would remove" if result.dry_run else "removed"
    title = f"docker clean{' (dry run)' if result.dry_run else ''}: {plan.trigger}"
    table = Table(title=title, title_justify="left", caption="\n".join(_caption(result)),
                  caption_justify="left", min_width=90)
    for column in ("#", "action", "kind", "name", "id", "bytes", "reason"):
        table.add_column(column, justify="right" if column in ("#", "bytes") else "left", overflow="fold")
    removed = {(v.kind, v.id): v for v in result.removed}
    failed = {(f.victim.kind, f.victim.id): f.error for f in result.failed}
    skipped = {(f.victim.kind, f.victim.id): f.error for f in result.skipped}
    for number, victim in enumerate(plan.victims, 1):
        key = (victim.kind, victim.id)
        done = removed.get(key, victim)
        if result.dry_run or key in removed:
            action, reason = verb, victim.reason
        elif key in failed:
            action, reason = "[red]failed[/]", failed[key]
        elif key in skipped:
            action, reason = "[yellow]skipped[/]", skipped[key]
        else:
            action, reason = "not reached", victim.reason
        table.add_row(str(number), action, victim.kind, _display(victim.name), short_id(victim.id),
                      format_size(done.bytes), reason)
    for item in plan.kept:
        table.add_row("", "[green]kept[/]", item.kind, _display(item.name), short_id(item.id), "",
                      item.reason)
    return table


def _caption(result: CleanResult) -> list[str]:
    plan = result.plan
    lines = [f"policy: {plan.policy.describe()}"]
    lines += [*dict.fromkeys(plan.notes), plan.accounting, summary_line(result)]
    return lines


def _display(name: str) -> str:
    """An anonymous volume's 64-digit name would fill the row; its id column has the start."""
    return f"{name[:12]}…" if len(name) > 40 and " " not in name else name


def print_collect(result: CollectResult, console: Console) -> None:
    """The audit's errors by kind, then its verdict."""
    if result.errors:
        table = Table(title="Collection errors, by kind", title_justify="left")
        for column in ("kind", "file", "name", "detail / fix"):
            table.add_column(column, overflow="fold")
        for error in sorted(result.errors, key=lambda e: (e.kind, e.file, e.name)):
            table.add_row(error.kind, error.file, error.name, error.hint or error.detail)
        console.print(table)
    verdict = "[green]clean[/]" if result.ok else "[red]FAILED[/]"
    if not result.errors and not result.collected:
        verdict += " (no tests collected: a layer with no tests proves nothing)"
    console.print(f"collect: {result.collected} tests in {len(result.layers)} layer(s), "
                  f"{len(result.errors)} error(s): {verdict}")
