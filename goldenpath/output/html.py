"""reports/index.html: one self-contained page over every layer report in <reports>/.

What it shows, per layer: status, target (and whether goldenpath started it), profile, start,
duration, test counts, each failure with its message, the SLA table with a latency plot per
metric, every violation with its evidence, a load run's rates and per-user rows, and the
comparison with the baseline run (goldenpath.output.history).

Self-contained: inline CSS and inline SVG, no script, no font, no image, nothing fetched at
view time, so it opens from a CI artifact or a mail attachment exactly as it was written.
The plots are drawn here by hand: a few bars and polylines are ~100 lines, where a plotting
library would add a large dependency to every layer's virtualenv (matplotlib) or inline
megabytes of JavaScript per page (plotly). Every value from a report is markup-escaped, and
the page is masked with the profile's secret values like every other report.

Rendering is tolerant: a report is a dict read from JSON, and a section whose data is
missing (an older report, a layer that measured nothing, a run cut short) is left out,
never an error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from goldenpath.core.files import write_atomically
from goldenpath.core.masking import mask_text
from goldenpath.core.settings import Settings
from goldenpath.output import history
from goldenpath.output.reports import secret_values

INDEX = "index.html"
LOAD_REPORT = "load.json"
STATUS_ORDER = ("running", "interrupted", "failed", "passed")  # the worst first
OUTCOME_ORDER = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
# Keys a load timeline's rows may use for their time axis, in order of preference.
TIME_KEYS = ("t_s", "elapsed_s", "second", "t", "time_s")
TIMELINE_KEYS = ("timeline", "over_time", "series", "windows")
USER_KEYS = ("users", "per_user")


@dataclass(frozen=True)
class LayerPage:
    report: dict[str, Any]
    comparison: history.Comparison | None
    baseline: history.Baseline | None
    load: dict[str, Any] | None


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------

def layer_reports(directory: Path) -> list[dict[str, Any]]:
    """Every layer report in the directory (not the history), oldest first."""
    found = [r for path in sorted(directory.glob("*.json"))
             if path.name != LOAD_REPORT and (r := history.read_report(path)) is not None
             and isinstance(r.get("sla", {}), dict)]
    return sorted(found, key=lambda r: str(r.get("started_at", "")))


def load_section(report: dict[str, Any], directory: Path) -> dict[str, Any] | None:
    """A load run's section: the report's own ``load`` key, else the load runner's file
    beside it (<reports>/<layer>-load.json, or load.json for the multi_user layer)."""
    own = report.get("load")
    if isinstance(own, dict):
        return own
    layer = str(report.get("layer"))
    names = [f"{layer}-load.json"] + ([LOAD_REPORT] if layer == "multi_user" else [])
    for name in names:
        try:
            data = json.loads((directory / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return None


def pages(settings: Settings) -> list[LayerPage]:
    directory = settings.reports_dir
    result = []
    for report in layer_reports(directory):
        comparison, baseline = history.comparison_for(report, settings)
        result.append(LayerPage(report, comparison, baseline, load_section(report, directory)))
    return result


def write_index(settings: Settings) -> Path:
    """<reports>/index.html over every layer report there, atomically, secrets masked."""
    path = settings.reports_dir / INDEX
    page = render(pages(settings), title=f"goldenpath: profile {settings.profile}")
    write_atomically(path, mask_text(page, secret_values(settings)))
    return path


# ---------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d232a}
body{background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d5d9df}
h3{font-size:15px;margin:18px 0 6px}
section.layer{background:#fff;border:1px solid #dfe3e8;border-radius:6px;padding:4px 18px 14px;margin:18px 0}
table{border-collapse:collapse;margin:6px 0 10px;background:#fff}
th,td{border:1px solid #dfe3e8;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;word-break:break-all}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;color:#fff;font-size:12px}
.passed{background:#1f883d}.failed{background:#cf222e}.interrupted{background:#bf8700}.running{background:#6e7781}
.unknown{background:#6e7781}
.pass{color:#1f883d;font-weight:600}.fail{color:#cf222e;font-weight:600}.muted{color:#6e7781}
.plots{display:flex;flex-wrap:wrap;gap:12px}
.plot{border:1px solid #dfe3e8;border-radius:4px;padding:4px;background:#fff}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:6px 0}dl.kv dt{color:#57606a}
dl.kv dd{margin:0}
"""


def render(layer_pages: Sequence[LayerPage], *, title: str = "goldenpath report") -> str:
    body = [f"<h1>{_e(title)}</h1>", _run_summary([p.report for p in layer_pages])]
    if not layer_pages:
        body.append("<p>No layer report in this directory yet: run a layer, e.g. <code>nox -s e2e</code>."
                    "</p>")
    body += [_layer(page) for page in layer_pages]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            # Belt and braces: even a stray URL in a report can never make the page fetch it.
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body><main>\n"
            + "\n".join(body) + "\n</main></body></html>\n")


def overall_status(reports: Iterable[dict[str, Any]]) -> str:
    statuses = [status_of(r) for r in reports]
    for status in STATUS_ORDER:
        if status in statuses:
            return status
    return "unknown"


def status_of(report: dict[str, Any]) -> str:
    """The report's own status; an older report without one is judged from its contents."""
    status = report.get("status")
    if isinstance(status, str) and status:
        return status
    outcomes = _dict(report.get("outcomes"))
    failed = any(_int(outcomes.get(k)) for k in ("failed", "error"))
    sla_failed = _dict(report.get("sla")).get("passed") is False
    return "failed" if failed or sla_failed or _list(report.get("violations")) else "passed"


def _run_summary(reports: Sequence[dict[str, Any]]) -> str:
    if not reports:
        return ""
    status = overall_status(reports)
    starts = [str(r["started_at"]) for r in reports if r.get("started_at")]
    finishes = [str(r["finished_at"]) for r in reports if r.get("finished_at")]
    durations = [d for r in reports if (d := _float(r.get("duration_s"))) is not None]
    profiles = sorted({str(r.get("profile")) for r in reports if r.get("profile")})
    tests = _sum_outcomes(reports)
    rows = [
        ("status", _badge(status)),
        ("profile", _e(", ".join(profiles) or "unknown")),
        ("layers", _e(", ".join(str(r.get("layer")) for r in reports))),
        ("started", _e(min(starts)) if starts else "<span class=muted>unknown</span>"),
        ("finished", _e(max(finishes)) if finishes else "<span class=muted>not yet</span>"),
        ("duration", _e(f"{sum(durations):.1f} s over {len(durations)} layer(s)") if durations
         else "<span class=muted>unknown</span>"),
        ("tests", _e(_counts(tests))),
    ]
    targets = {_target_line(_dict(r.get("target"))) for r in reports if r.get("target")}
    rows += [("target", t) for t in sorted(targets)]
    return "<h2>The run</h2>" + _kv(rows)


def _target_line(target: dict[str, Any]) -> str:
    urls = ", ".join(f"{_e(k)} <code>{_e(v)}</code>" for k, v in target.items() if isinstance(v, str))
    started = target.get("started_by_goldenpath")
    if started is None:
        return urls
    who = "started by goldenpath for this run" if started else "not started by goldenpath"
    return f"{urls} <span class=muted>({who})</span>"


def _layer(page: LayerPage) -> str:
    report = page.report
    name = str(report.get("layer"))
    parts = [f"<section class=layer id=\"layer-{_e(name)}\">",
             f"<h2>{_e(name)} {_badge(status_of(report))}</h2>", _layer_facts(report)]
    parts += [_failures(report), _problems(report), _sla(report), _violations(report)]
    if page.load:
        parts.append(_load(page.load))
    parts.append(_comparison(page))
    notes = [str(n) for n in _list(report.get("notes"))]
    if notes:
        parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _layer_facts(report: dict[str, Any]) -> str:
    duration = _float(report.get("duration_s"))
    rows = [
        ("profile", _e(report.get("profile", "unknown"))),
        ("started", _e(report.get("started_at", "unknown"))),
        ("finished", _e(report.get("finished_at") or "not yet")),
        ("duration", _e(f"{duration:.1f} s") if duration is not None else "<span class=muted>unknown</span>"),
        ("tests", _e(_counts(_dict(report.get("outcomes"))))),
    ]
    if report.get("target"):
        rows.append(("target", _target_line(_dict(report.get("target")))))
    if report.get("clock"):
        rows.append(("clock", _e(report.get("clock"))))
    return _kv(rows)


def _failures(report: dict[str, Any]) -> str:
    failures = [_dict(f) for f in _list(report.get("failures"))]
    if not failures:
        return ""
    rows = [[f"<code>{_e(f.get('test', ''))}</code>", _e(f.get("message", ""))] for f in failures]
    return f"<h3>Failed tests ({len(failures)})</h3>" + _table(["test", "message"], rows)


def _problems(report: dict[str, Any]) -> str:
    problems = [str(p) for p in _list(report.get("problems"))]
    if not problems:
        return ""
    return ("<h3>Why this layer failed</h3><ul>"
            + "".join(f"<li class=fail>{_e(p)}</li>" for p in problems) + "</ul>")


def _sla(report: dict[str, Any]) -> str:
    sla = _dict(report.get("sla"))
    metrics = [_dict(m) for m in _list(sla.get("metrics"))]
    if not metrics:
        return "<h3>Service levels</h3><p class=muted>Nothing was measured in this run.</p>"
    rows = []
    for m in metrics:
        verdict = ("<span class=pass>pass</span>" if m.get("passed")
                   else f"<span class=fail>FAIL</span> {_e(m.get('message', ''))}")
        rows.append([_e(m.get("metric")), _num(_int(m.get("count"))),
                     *(_num(fmt_ms(m.get(k))) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
                     _num(fmt_ms(m.get("bound_ms"))), _e(" + ".join(map(str, _list(m.get("gate"))))),
                     verdict])
    table = _table(["metric", "samples", "p50 ms", "p95 ms", "p99 ms", "max ms", "bound ms", "gate",
                    "result"], rows)
    plots = "".join(f"<div class=plot>{latency_svg(m)}</div>" for m in metrics)
    return f"<h3>Service levels</h3>{table}<div class=plots>{plots}</div>"


def _violations(report: dict[str, Any]) -> str:
    violations = [_dict(v) for v in _list(report.get("violations"))]
    heading = f"<h3>Contract and isolation violations ({len(violations)})</h3>"
    if not violations:
        return heading + "<p>None.</p>"
    # Evidence is whatever the violation carries beyond its code and message.
    extra = sorted({k for v in violations for k in v if k not in ("code", "message")})
    rows = [[f"<code>{_e(v.get('code'))}</code>", _e(v.get("message", "")),
             *(_cell(v.get(k)) for k in extra)] for v in violations]
    return heading + _table(["code", "evidence", *extra], rows)


def _load(load: dict[str, Any]) -> str:
    """Whatever the load runner reported: its numbers, its sections, its rows, its timeline."""
    parts = ["<h3>Load</h3>"]
    scalars = [(k, v) for k, v in load.items() if not isinstance(v, list | dict)]
    if scalars:
        parts.append(_kv([(_e(k), _cell(v)) for k, v in scalars]))
    timeline = next((rows for k in TIMELINE_KEYS if (rows := _rows(load.get(k)))), [])
    if timeline:
        parts.append("<div class=plots>" + "".join(
            f"<div class=plot>{line_svg(series, name)}</div>"
            for name, series in timeline_series(timeline).items()) + "</div>")
    else:
        parts.append("<p class=muted>No timeline in this load report: rates and p95 over time "
                     "are not shown.</p>")
    for key, value in load.items():
        if isinstance(value, dict) and isinstance(value.get("metrics"), list):
            parts.append(f"<h4>{_e(key)}</h4>" + _sla({"sla": value}).replace("<h3>Service levels</h3>", ""))
        elif isinstance(value, dict):
            parts.append(f"<h4>{_e(key)}</h4>" + _kv([(_e(k), _cell(v)) for k, v in value.items()]))
        elif key not in TIMELINE_KEYS and (rows := _rows(value)):
            columns = list(dict.fromkeys(k for row in rows for k in row))
            title = f"Per user ({len(rows)})" if key in USER_KEYS else f"{key} ({len(rows)})"
            parts.append(f"<h4>{_e(title)}</h4>"
                         + _table(columns, [[_cell(row.get(c)) for c in columns] for row in rows]))
    return "\n".join(parts)


def timeline_series(rows: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Each numeric column of a timeline against its time column (or the row's position)."""
    time_key = next((k for k in TIME_KEYS if any(k in row for row in rows)), None)
    series: dict[str, list[tuple[float, float]]] = {}
    for position, row in enumerate(rows):
        x = _float(row.get(time_key)) if time_key else float(position)
        if x is None:
            continue
        for key, value in row.items():
            y = _float(value)
            if key != time_key and y is not None:
                series.setdefault(key, []).append((x, y))
    return series


def _comparison(page: LayerPage) -> str:
    heading = "<h3>Compared with the baseline</h3>"
    baseline = page.baseline
    if page.comparison is None:
        why = baseline.error or baseline.source if baseline else "no baseline"
        return heading + f"<p class=muted>{_e(why)}</p>"
    comparison = page.comparison
    limit = comparison.regression_pct
    rows = []
    for m in comparison.metrics:
        change = "" if m.change_pct is None else f"{m.change_pct:+.1f}%"
        verdict = ("<span class=fail>regression</span>" if m.regressed
                   else "<span class=muted>not gated</span>" if limit is None
                   else "<span class=pass>ok</span>")
        rows.append([_e(m.metric), _num(fmt_ms(m.baseline_p95_ms)), _num(fmt_ms(m.p95_ms)), _num(change),
                     verdict])
    gate = (f"p95 more than {limit:g}% above the baseline fails the layer (SLA_REGRESSION_PCT)"
            if limit is not None else "SLA_REGRESSION_PCT unset: changes are shown, not gated")
    parts = [heading, f"<p>baseline: <code>{_e(comparison.baseline_source)}</code>, started "
             f"{_e(comparison.baseline_started_at or 'unknown')}. {_e(gate)}.</p>",
             _table(["metric", "baseline p95 ms", "p95 ms", "change", "verdict"], rows)]
    new = comparison.new_violations
    parts.append(f"<p>New violations since the baseline: {len(new)}</p>")
    if new:
        parts.append(_table(["code", "evidence"], [[f"<code>{_e(v.get('code'))}</code>",
                                                   _e(v.get("message", ""))] for v in new]))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------
# Plots: inline SVG
# ---------------------------------------------------------------------------------------

WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 360, 180, 46, 14, 34, 30


def latency_svg(metric: dict[str, Any]) -> str:
    """The metric's latency histogram when the report carries buckets, else its percentiles
    against the bound on a log scale (what every report has)."""
    buckets = histogram_buckets(metric.get("histogram"))
    if buckets:
        return histogram_svg(str(metric.get("metric")), buckets, _float(metric.get("bound_ms")))
    return percentile_svg(metric)


def histogram_buckets(raw: object) -> list[tuple[float, int]]:
    """[[upper_ms, count], ...] or [{"le_ms": x, "count": n}, ...] -> [(upper_ms, count)]."""
    buckets = []
    for item in _list(raw):
        if isinstance(item, list | tuple) and len(item) == 2:
            upper, count = _float(item[0]), _int(item[1])
        elif isinstance(item, dict):
            upper, count = _float(item.get("le_ms", item.get("upper_ms"))), _int(item.get("count"))
        else:
            continue
        if upper is not None:
            buckets.append((upper, count))
    return sorted(buckets)


def histogram_svg(name: str, buckets: Sequence[tuple[float, int]], bound: float | None) -> str:
    top = max((c for _, c in buckets), default=0) or 1
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    bar_w = inner_w / len(buckets)
    shapes = []
    for i, (upper, count) in enumerate(buckets):
        h = inner_h * count / top
        x, y = PAD_L + i * bar_w, PAD_T + inner_h - h
        shapes.append(f"<rect x=\"{x:.1f}\" y=\"{y:.1f}\" width=\"{max(bar_w - 1, 1):.1f}\" "
                      f"height=\"{h:.1f}\" fill=\"#0969da\"><title>≤ {_e(fmt_ms(upper))} ms: "
                      f"{count}</title></rect>")
    labels = [(0, buckets[0][0]), (len(buckets) - 1, buckets[-1][0])]
    shapes += [f"<text x=\"{PAD_L + (i + 0.5) * bar_w:.1f}\" y=\"{HEIGHT - 12}\" font-size=\"10\" "
               f"text-anchor=\"middle\">{_e(fmt_ms(v))}</text>" for i, v in labels]
    caption = f"{name}: samples per latency bucket (ms)"
    if bound is not None:
        caption += f", bound {fmt_ms(bound)} ms"
    return _svg(caption, [*_axes(f"{top}", "0"), *shapes])


def percentile_svg(metric: dict[str, Any]) -> str:
    points = [(k, _float(metric.get(f"{k}_ms"))) for k in ("p50", "p95", "p99", "max")]
    values = [(k, v) for k, v in points if v is not None]
    name = str(metric.get("metric"))
    if not values:
        return _svg(f"{name}: not measured", [])
    bound = _float(metric.get("bound_ms"))
    scale = LogScale([v for _, v in values] + ([bound] if bound else []))
    inner_w = WIDTH - PAD_L - PAD_R
    row_h = (HEIGHT - PAD_T - PAD_B) / len(values)
    shapes = []
    for i, (label, value) in enumerate(values):
        y = PAD_T + i * row_h
        w = max(inner_w * scale.fraction(value), 1)
        over = bound is not None and value >= bound
        shapes.append(f"<text x=\"{PAD_L - 6}\" y=\"{y + row_h * 0.62:.1f}\" font-size=\"11\" "
                      f"text-anchor=\"end\">{label}</text>")
        shapes.append(f"<rect x=\"{PAD_L}\" y=\"{y + 3:.1f}\" width=\"{w:.1f}\" height=\"{row_h - 6:.1f}\" "
                      f"fill=\"{'#cf222e' if over else '#0969da'}\"><title>{label} {_e(fmt_ms(value))} ms"
                      "</title></rect>")
        shapes.append(f"<text x=\"{PAD_L + w + 4:.1f}\" y=\"{y + row_h * 0.62:.1f}\" font-size=\"10\">"
                      f"{_e(fmt_ms(value))}</text>")
    if bound is not None:
        x = PAD_L + inner_w * scale.fraction(bound)
        shapes.append(f"<line x1=\"{x:.1f}\" y1=\"{PAD_T - 4}\" x2=\"{x:.1f}\" y2=\"{HEIGHT - PAD_B}\" "
                      "stroke=\"#cf222e\" stroke-dasharray=\"4 3\"/>")
        anchor = "end" if x > WIDTH / 2 else "start"
        shapes.append(f"<text x=\"{x - 3 if anchor == 'end' else x + 3:.1f}\" y=\"{PAD_T - 6}\" "
                      f"font-size=\"10\" fill=\"#cf222e\" text-anchor=\"{anchor}\">"
                      f"bound {_e(fmt_ms(bound))} ms</text>")
    shapes += [f"<text x=\"{PAD_L + inner_w * scale.fraction(t):.1f}\" y=\"{HEIGHT - 12}\" font-size=\"10\" "
               f"text-anchor=\"middle\">{_e(_tick(t))}</text>" for t in scale.ticks()]
    return _svg(f"{name}: latency percentiles, ms (log scale)", [*_axes("", ""), *shapes])


@dataclass(frozen=True)
class LogScale:
    """Decades that cover the values: a 3 ms p95 and a 2000 ms bound both stay visible."""

    values: Sequence[float]

    @property
    def low(self) -> float:
        return math.floor(math.log10(max(min(self.values), 0.01)))

    @property
    def high(self) -> float:
        return max(math.ceil(math.log10(max(max(self.values), 0.01))), self.low + 1)

    def fraction(self, value: float) -> float:
        return (math.log10(max(value, 10 ** self.low)) - self.low) / (self.high - self.low)

    def ticks(self) -> list[float]:
        return [10.0 ** d for d in range(int(self.low), int(self.high) + 1)]


def line_svg(points: Sequence[tuple[float, float]], name: str) -> str:
    if not points:
        return _svg(f"{name}: no data", [])
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y1 = max(ys) if max(ys) > 0 else 1.0
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def at(x: float, y: float) -> str:
        return f"{PAD_L + inner_w * (x - x0) / (x1 - x0):.1f},{PAD_T + inner_h * (1 - max(y, 0) / y1):.1f}"

    path = " ".join(at(x, y) for x, y in points)
    shapes = [f"<polyline points=\"{path}\" fill=\"none\" stroke=\"#0969da\" stroke-width=\"2\"/>",
              *(f"<circle cx=\"{at(x, y).split(',')[0]}\" cy=\"{at(x, y).split(',')[1]}\" r=\"2.2\" "
                f"fill=\"#0969da\"><title>{_e(_short(x))}: {_e(_short(y))}</title></circle>"
                for x, y in points),
              f"<text x=\"{PAD_L}\" y=\"{HEIGHT - 12}\" font-size=\"10\">{_e(_short(x0))}</text>",
              f"<text x=\"{WIDTH - PAD_R}\" y=\"{HEIGHT - 12}\" font-size=\"10\" text-anchor=\"end\">"
              f"{_e(_short(x1))}</text>"]
    return _svg(f"{name} over time", [*_axes(_short(y1), "0"), *shapes])


def _axes(top: str, bottom: str) -> list[str]:
    base = HEIGHT - PAD_B
    return [f"<line x1=\"{PAD_L}\" y1=\"{PAD_T}\" x2=\"{PAD_L}\" y2=\"{base}\" stroke=\"#8c959f\"/>",
            f"<line x1=\"{PAD_L}\" y1=\"{base}\" x2=\"{WIDTH - PAD_R}\" y2=\"{base}\" stroke=\"#8c959f\"/>",
            f"<text x=\"{PAD_L - 4}\" y=\"{PAD_T + 8}\" font-size=\"10\" text-anchor=\"end\">"
            f"{_e(top)}</text>",
            f"<text x=\"{PAD_L - 4}\" y=\"{base}\" font-size=\"10\" text-anchor=\"end\">{_e(bottom)}</text>"]


def _svg(caption: str, shapes: Sequence[str]) -> str:
    return (f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" "
            f"viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{_e(caption)}\">"
            f"<text x=\"4\" y=\"13\" font-size=\"11\" font-weight=\"600\">{_e(caption)}</text>"
            + "".join(shapes) + "</svg>")


# ---------------------------------------------------------------------------------------
# Small pieces
# ---------------------------------------------------------------------------------------

def fmt_ms(value: object) -> str:
    """Milliseconds as the tables show them: ``4.6``, ``0.35`` below 1 ms, empty when absent."""
    number = _float(value)
    if number is None:
        return ""
    # Sub-millisecond latencies (a local tool call) keep two decimals rather than "0.0".
    return f"{number:.2f}" if abs(number) < 1 else f"{number:.1f}"


def _tick(value: float) -> str:
    """A decade's label: 0.01, 0.1, 1, 10, 100, 1k, 10k."""
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _short(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.2g}"


def _counts(outcomes: dict[str, Any]) -> str:
    ordered = [k for k in OUTCOME_ORDER if k in outcomes] + sorted(set(outcomes) - set(OUTCOME_ORDER))
    return ", ".join(f"{_int(outcomes[k])} {k}" for k in ordered) or "no tests ran"


def _sum_outcomes(reports: Iterable[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for report in reports:
        for key, count in _dict(report.get("outcomes")).items():
            total[key] = total.get(key, 0) + _int(count)
    return total


def _badge(status: str) -> str:
    css = status if status in STATUS_ORDER else "unknown"
    return f"<span class=\"badge {css}\">{_e(status)}</span>"


def _kv(rows: Sequence[tuple[str, str]]) -> str:
    """Pairs already escaped by the caller (a value may hold markup of our own)."""
    return "<dl class=kv>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num(text: object) -> str:
    return f"<td class=n>{_e(text)}</td>"


def _cell(value: object) -> str:
    if value is None:
        return "<span class=muted>–</span>"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _e(f"{value:.4g}")
    if isinstance(value, list | dict):
        return f"<code>{_e(json.dumps(value, default=str))}</code>"
    return _e(value)


def _rows(value: object) -> list[dict[str, Any]]:
    return [row for row in value if isinstance(row, dict)] if isinstance(value, list) else []


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
