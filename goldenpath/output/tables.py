"""Every rich table goldenpath draws: presentation only, no checks here.

The checks, the docker planner and the usage reader return data; this module turns it
into tables for the terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from goldenpath.checks.collect import CollectResult
from goldenpath.checks.ports import PortReport
from goldenpath.core.masking import mask_value
from goldenpath.hygiene.model import ACCOUNTING, Usage, disk_line, format_size, short_id

if TYPE_CHECKING:
    # Types only: importing the checks and the docker planner costs seconds (redis, psycopg,
    # the docker SDK), which the collection audit, drawn from here too, must not pay.
    from goldenpath.checks.preflight import CheckResult
    from goldenpath.checks.probes import ProbeResult
    from goldenpath.hygiene.clean import CleanResult

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
    tables = [declared, *app_ports_tables(report), answering]
    if report.conflicts:
        conflicts = Table(title="conflicts", title_justify="left")
        conflicts.add_column("code")
        conflicts.add_column("problem", overflow="fold")
        for conflict in report.conflicts:
            conflicts.add_row(conflict.code, Text(conflict.message))
        tables.append(conflicts)
    return tables


def app_ports_tables(report: PortReport) -> list[Table]:
    """The application's declarations, file by file and line by line (values are its own:
    Text cells, so a bracket in a value is not read as markup)."""
    scan = report.app
    if scan is None:
        return []
    caption = [f"env files: {', '.join(scan.env_files) or 'none found'}",
               f"compose files: {', '.join(scan.compose_files) or 'none found'}",
               *report.notes, *scan.problems]
    table = Table(title=Text(f"the application's auth/backend addresses ({scan.root})"),
                  title_justify="left", caption=Text("\n".join(caption)), caption_justify="left")
    for column in ("file:line", "role", "key", "value", "port", "note"):
        table.add_column(column, overflow="fold")
    for item in scan.declarations:
        key = item.where if item.key == "ports" else f"{item.where} {item.key}".strip()
        table.add_row(Text(item.place), item.role, Text(key), Text(mask_value(item.key, item.value)),
                      str(item.port or ""), Text(item.note))
    return [table]


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
    from goldenpath.hygiene.clean import summary_line  # the docker SDK: only when drawing a clean

    lines += [*dict.fromkeys(plan.notes), plan.accounting, summary_line(result)]
    return lines


def _display(name: str) -> str:
    """An anonymous volume's 64-digit name would fill the row; its id column has the start."""
    return f"{name[:12]}…" if len(name) > 40 and " " not in name else name


def print_collect(result: CollectResult, console: Console, detail_rows: int = 2000) -> None:
    """The audit: how pytest was run, counts per kind, root causes ranked, then the details.

    Every cell is a Text: pytest's messages carry brackets (``[tool.pytest]``) that rich
    would otherwise read as markup and drop.
    """
    info = result.pytest
    where = f", rootdir {info.rootdir}" if info.rootdir else ""
    where += f", configfile {info.configfile}" if info.configfile else ""
    console.print(Text(f"pytest {info.version or '(version unknown)'} via {info.python or '?'}{where}"))
    if info.choice:
        console.print(Text(f"interpreter: {info.choice}"))
    for note in result.notes:
        console.print(Text(f"note: {note}"))
    problem = result.config_error
    if problem:
        console.print(Text(f"{problem.kind} ({problem.name}), verbatim:", style="bold red"))
        console.print(Text(problem.detail))
    if result.errors or result.warnings:
        counts = Table(title="Collection findings, per kind", title_justify="left")
        counts.add_column("kind")
        counts.add_column("count", justify="right")
        for kind, count in result.counts().items():
            counts.add_row(Text(kind), str(count))
        console.print(counts)
    causes = result.root_causes()
    if causes and not problem:
        ranked = Table(title="Root causes, by how many errors each explains", title_justify="left")
        for column in ("#", "errors", "cause", "files", "hint"):
            if column in ("#", "errors"):
                ranked.add_column(column, justify="right")
            else:
                ranked.add_column(column, overflow="fold")
        for rank, cause in enumerate(causes, 1):
            shown = list(cause.files[:5]) + ([f"... and {len(cause.files) - 5} more"]
                                             if len(cause.files) > 5 else [])
            ranked.add_row(str(rank), str(cause.count), Text(cause.summary), Text("\n".join(shown)),
                           Text(cause.hint))
        console.print(ranked)
    details = sorted([*result.errors, *result.warnings], key=lambda e: (e.file, e.kind, e.name))
    if details and not problem:
        # One plain line per error (grep-able, and quick to draw for thousands): the hints
        # are in the root causes above, said once per cause rather than once per file.
        console.print(Text("Details, one line per file (paths relative to the audited root):", style="bold"))
        for error in details[:detail_rows]:
            where_from = f" (in {error.source})" if error.source else ""
            console.print(Text(f"  {error.file}: {error.kind}: {error.name or '-'}: "
                               f"{error.detail.splitlines()[0] if error.detail else ''}{where_from}"),
                          soft_wrap=True)
        if len(details) > detail_rows:
            console.print(Text(f"  ... {len(details) - detail_rows} more in the JSON report (--json)"))
    verdict = Text("clean", style="green") if result.ok else Text("FAILED", style="red")
    if not result.errors and not result.collected:
        verdict.append(" (no tests collected: a layer with no tests proves nothing)")
    line = Text(f"collect: {result.collected} tests in {len(result.layers)} layer(s), "
                f"{len(result.errors)} error(s), {len(result.warnings)} warning(s): ")
    console.print(line.append_text(verdict))


# The end-of-layer summary (goldenpath.output.terminal): drawn from the report's JSON, so
# the terminal shows exactly what the report says. Cells are Text: messages carry brackets.
def _ms_cell(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    return f"{value:.2f}" if abs(value) < 1 else f"{value:.1f}"


def sla_table(metrics: list[dict[str, Any]]) -> Table:
    table = Table(title="service levels", title_justify="left")
    for column in ("metric", "samples", "p50 ms", "p95 ms", "p99 ms", "max ms", "bound ms", "result"):
        table.add_column(column, justify="left" if column in ("metric", "result") else "right")
    for m in metrics:
        result = (Text("pass", style="green") if m.get("passed")
                  else Text(f"FAIL: {m.get('message', '')}", style="red"))
        table.add_row(Text(str(m.get("metric", ""))), str(m.get("count", "")),
                      *(_ms_cell(m.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "bound_ms")),
                      result)
    return table


def violations_table(violations: list[dict[str, Any]]) -> Table:
    table = Table(title=f"contract and isolation violations ({len(violations)})", title_justify="left")
    for column in ("code", "run", "event", "evidence"):
        table.add_column(column)
    for v in violations:
        index = v.get("index")
        table.add_row(Text(str(v.get("code", ""))), Text(str(v.get("run_id") or "")),
                      "" if index is None else str(index), Text(str(v.get("message", ""))))
    return table


def failures_table(failures: list[dict[str, Any]]) -> Table:
    table = Table(title=f"failed tests ({len(failures)})", title_justify="left")
    table.add_column("test")
    table.add_column("message")
    for f in failures:
        table.add_row(Text(str(f.get("test", ""))), Text(str(f.get("message", ""))))
    return table
