"""Run-over-run: each finished layer report kept under <reports>/history/, and the comparison.

A layer's report (<reports>/<layer>.json) is overwritten by every run, so "p95 doubled since
yesterday" needs the earlier ones: ``archive`` copies the finished report into
<reports>/history/<profile>--<layer>--<started>.json and keeps the newest
GOLDENPATH_HISTORY_KEEP (default 20) per profile and layer, so a layer run every few minutes
cannot crowd out another layer's history.

The baseline is GOLDENPATH_BASELINE: unset or ``previous`` is the newest finished run of the
same profile and layer that started before this one; anything else is a report JSON file
(relative to the repository). ``compare`` gives each metric's p95 change and the violations
that are new; with SLA_REGRESSION_PCT set, ``regression_problems`` turns a p95 more than that
percentage above the baseline's into a reason the layer fails. Reports are read as plain
dicts, tolerant of missing sections, so an older run's JSON still compares.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from goldenpath.core.files import write_atomically
from goldenpath.core.settings import Settings

HISTORY_DIR = "history"
PREVIOUS = "previous"
DEFAULT_KEEP = 20
# A run that never finished (killed while running, interrupted) is no fair baseline.
COMPARABLE = ("passed", "failed")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")
# Run ids, uuids, hex tokens and numbers differ between runs of the same finding.
_VOLATILE = re.compile(r"[0-9a-f]{8,}(?:-[0-9a-f]{4,})*|\d+(?:\.\d+)?", re.IGNORECASE)


@dataclass(frozen=True)
class Baseline:
    report: dict[str, Any] | None
    source: str  # where it came from, for the reader: a path, or why there is none
    error: str | None = None  # set when GOLDENPATH_BASELINE names something unreadable


@dataclass(frozen=True)
class MetricChange:
    metric: str
    baseline_p95_ms: float | None
    p95_ms: float | None
    change_pct: float | None  # None when either side was not measured
    regressed: bool  # over SLA_REGRESSION_PCT (never, when it is unset)


@dataclass(frozen=True)
class Comparison:
    layer: str
    baseline_source: str
    baseline_started_at: str | None
    metrics: list[MetricChange] = field(default_factory=list)
    new_violations: list[dict[str, Any]] = field(default_factory=list)
    regression_pct: float | None = None

    @property
    def regressions(self) -> list[MetricChange]:
        return [m for m in self.metrics if m.regressed]


def history_dir(settings: Settings) -> Path:
    return settings.reports_dir / HISTORY_DIR


def keep_count(settings: Settings) -> int:
    raw = settings.get("GOLDENPATH_HISTORY_KEEP")
    return int(raw) if raw else DEFAULT_KEEP


def regression_pct(settings: Settings) -> float | None:
    raw = settings.get("SLA_REGRESSION_PCT")
    return float(raw) if raw else None


def _key(report: dict[str, Any]) -> str:
    return f"{_safe(str(report.get('profile', '')))}--{_safe(str(report.get('layer', '')))}--"


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text) or "_"


def read_report(path: Path) -> dict[str, Any] | None:
    """A layer report as a dict; None for anything else (unreadable, not JSON, no layer)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("layer"), str) else None


def archive(report_path: Path, settings: Settings) -> Path | None:
    """Keep a finished report in the history and prune its profile and layer to the bound.

    A report still ``running`` is not kept: it is a run in progress, not a result."""
    report = read_report(report_path)
    if report is None or report.get("status") == "running":
        return None
    directory = history_dir(settings)
    stamp = _safe(str(report.get("started_at", "unknown")).replace(":", ""))
    target = directory / f"{_key(report)}{stamp}.json"
    number = 1
    while target.exists() and read_report(target) != report:
        number += 1
        target = directory / f"{_key(report)}{stamp}-{number}.json"
    write_atomically(target, report_path.read_text(encoding="utf-8"))
    prune(directory, _key(report), keep_count(settings))
    return target


def prune(directory: Path, prefix: str, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` files of one profile and layer; returns the deleted."""
    # The names sort by start time: the stamp is ISO 8601 with its colons dropped.
    entries = sorted(directory.glob(f"{prefix}*.json"))
    doomed = entries[:-keep] if keep > 0 else entries
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def baseline_for(report: dict[str, Any], settings: Settings) -> Baseline:
    """What ``report`` is compared with (see the module doc)."""
    chosen = (settings.get("GOLDENPATH_BASELINE") or PREVIOUS).strip()
    if chosen != PREVIOUS:
        return _baseline_file(report, settings.root / chosen, chosen)
    started = str(report.get("started_at", ""))
    candidates = []
    for path in sorted(history_dir(settings).glob(f"{_key(report)}*.json")):
        earlier = read_report(path)
        if (earlier is not None and earlier.get("status", "passed") in COMPARABLE
                and str(earlier.get("started_at", "")) < started):
            candidates.append((str(earlier.get("started_at", "")), path, earlier))
    if not candidates:
        return Baseline(None, f"no earlier finished {report.get('layer')} run of profile "
                              f"{report.get('profile')} in {history_dir(settings)}")
    _, path, earlier = max(candidates, key=lambda c: c[0])
    return Baseline(earlier, str(path))


def _baseline_file(report: dict[str, Any], path: Path, raw: str) -> Baseline:
    baseline = read_report(path)
    if baseline is None:
        return Baseline(None, raw, error=f"GOLDENPATH_BASELINE={raw}: not a readable goldenpath "
                                         "report JSON; give a reports/history/*.json file or 'previous'")
    if baseline.get("layer") != report.get("layer"):
        return Baseline(None, f"{raw} is the {baseline.get('layer')} layer's report, "
                              f"not {report.get('layer')}'s")
    return Baseline(baseline, raw)


def compare(report: dict[str, Any], baseline: dict[str, Any], source: str,
            regression_limit: float | None = None) -> Comparison:
    """Each metric's p95 against the baseline's, and the violations the baseline did not have."""
    before = {m.get("metric"): m for m in _metrics(baseline)}
    changes = []
    for metric in _metrics(report):
        name = str(metric.get("metric"))
        now = _number(metric.get("p95_ms"))
        then = _number(before.get(name, {}).get("p95_ms"))
        pct = (now - then) / then * 100 if now is not None and then else None
        regressed = regression_limit is not None and pct is not None and pct > regression_limit
        changes.append(MetricChange(name, then, now, pct, regressed))
    seen = {_finding(v) for v in _violations(baseline)}
    new = [v for v in _violations(report) if _finding(v) not in seen]
    return Comparison(str(report.get("layer")), source, baseline.get("started_at"), changes, new,
                      regression_limit)


def comparison_for(report: dict[str, Any], settings: Settings) -> tuple[Comparison | None, Baseline]:
    baseline = baseline_for(report, settings)
    if baseline.report is None:
        return None, baseline
    return compare(report, baseline.report, baseline.source, regression_pct(settings)), baseline


def regression_problems(report: dict[str, Any], settings: Settings) -> list[str]:
    """One line per p95 regression beyond SLA_REGRESSION_PCT; nothing when it is unset.

    A baseline named but unreadable is a problem too: a gate asked for must not pass silently."""
    limit = regression_pct(settings)
    if limit is None:
        return []
    comparison, baseline = comparison_for(report, settings)
    if baseline.error:
        return [baseline.error]
    if comparison is None:
        return []
    return [f"SLA regression: {m.metric} p95 {m.p95_ms:.1f} ms is {m.change_pct:.0f}% above the "
            f"baseline's {m.baseline_p95_ms:.1f} ms (SLA_REGRESSION_PCT={limit:g}; baseline "
            f"{comparison.baseline_source})"
            for m in comparison.regressions
            if m.p95_ms is not None and m.baseline_p95_ms is not None and m.change_pct is not None]


def _metrics(report: dict[str, Any]) -> list[dict[str, Any]]:
    sla = report.get("sla")
    metrics = sla.get("metrics") if isinstance(sla, dict) else None
    return [m for m in metrics if isinstance(m, dict)] if isinstance(metrics, list) else []


def _violations(report: dict[str, Any]) -> list[dict[str, Any]]:
    found = report.get("violations")
    return [v for v in found if isinstance(v, dict)] if isinstance(found, list) else []


def _finding(violation: dict[str, Any]) -> tuple[str, str]:
    return str(violation.get("code")), _VOLATILE.sub("#", str(violation.get("message", "")))


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


