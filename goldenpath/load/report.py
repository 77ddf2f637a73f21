"""A load run's verdict: its gates, and the load section written as ``<reports>/<name>.json``.

The section (``LoadReport.as_dict()``), for whoever renders it:

    {"kind": "load", "status": "passed" | "failed" | "interrupted", "passed": bool,
     "target": {"backend", "websocket"}, "plan": {users, messages, ramp_per_s, think_s,
     duration_s, sockets_per_user, together, planned_runs},
     "started_at", "elapsed_s",
     "totals": {users_connected, runs_sent, runs_done, runs_timed_out, runs_checked, events,
                events_per_s, duration_reached,
                login_errors|connect_errors|socket_errors|bad_frames: {"count", "first"}},
     "client": {"cpu_s", "events_per_cpu_s", "loop", "parser"},
     "detection": {"runs_checked", "one_in_k", "text"},
     "violations": {"count", "by_code": {code: n}, "first": [Finding.as_dict(), ...<=50]},
     "sla": {"passed", "metrics": [MetricResult as dict]},
     "trends": [{"metric", "runs", "first_p95_ms", "last_p95_ms", "ratio", "bound_ratio",
                 "floor_ms", "passed" (null: too few runs), "message"}],
     "memory": {"measured", "source", "why_not", "samples", "slope_kib_per_run", "bound_kib",
                "passed" (null when not measured: never a pass), "message"},
     "connections": {"exposed", "baseline", "after", "returned", "message"},
     "privacy": {"checked", "breaches": [str]},
     "gates": [{"name", "passed" (true | false | null: not measured), "message"}],
     "users": [{"index", "user_id", "runs", "events", "violations", "p95_first_event_ms"}],
     "timeline": [{"t_s", "runs", "events_per_s", "p95_first_event_ms"}, ...]}  # by window

``passed`` is true only when every gate that could be measured passed and none failed.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from goldenpath.core.files import write_atomically
from goldenpath.core.masking import mask_text, mask_url
from goldenpath.core.settings import SPECS_BY_NAME, Settings
from goldenpath.load.memory import MemorySeries, slope_kib_per_run
from goldenpath.load.metrics import Trend, detection_sentence, one_in_k, percentile, trend, trend_floor_ms
from goldenpath.load.runner import LoadRunner, LoadState
from goldenpath.protocol.sla import METRICS, SlaReport

# The timeline's resolution: enough points for a trend, few enough to read.
TIMELINE_WINDOWS = 20
SHOWN_FINDINGS = 50


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool | None  # None: could not be measured, which is never a pass
    message: str


@dataclass(frozen=True)
class LoadReport:
    settings: Settings
    state: LoadState
    sla: SlaReport
    trends: tuple[Trend, ...]
    memory: MemorySeries
    slope_kib: float | None
    slope_bound_kib: float
    cpu_s: float | None
    started_at: str
    loop_name: str

    @property
    def runs_checked(self) -> int:
        return self.state.runs_done

    @property
    def by_code(self) -> dict[str, int]:
        return dict(sorted(Counter(f.code for f in self.state.findings).items()))

    def memory_gate(self) -> Gate:
        if self.memory.source is None:
            return Gate("memory", None, f"memory not measured: {self.memory.why_not}")
        if self.slope_kib is None:
            return Gate("memory", None, f"memory not measured: {len(self.memory.samples)} sample(s) from "
                                        f"{self.memory.source}, too few to fit a slope")  # fmt: skip
        ok = self.slope_kib <= self.slope_bound_kib
        first, last = self.memory.samples[0][1], self.memory.samples[-1][1]
        return Gate("memory", ok, f"memory slope {self.slope_kib:+.2f} KiB/run "
                                  f"{'<=' if ok else '>'} bound {self.slope_bound_kib:g} "
                                  f"(GOLDENPATH_MEMORY_SLOPE_KB); RSS {first / 1024:.1f} -> "
                                  f"{last / 1024:.1f} MiB over {self.state.runs_done} runs, "
                                  f"{len(self.memory.samples)} samples of {self.memory.source}")  # fmt: skip

    def gates(self) -> list[Gate]:
        s = self.state
        found = self.by_code
        gates = [Gate("violations", not found,
                      "no violation in any event of any user" if not found else
                      "violations: " + ", ".join(f"{code} x{n}" for code, n in found.items()))]  # fmt: skip
        errors = {"login": s.login_errors, "connect": s.connect_errors, "socket": s.socket_errors,
                  "frames": s.bad_frames}  # fmt: skip
        for name, count in errors.items():
            gates.append(Gate(f"{name}_errors", count.count == 0,
                              f"{count.count} {name} error(s)" + (f", the first: {count.first}" if count.first
                                                                   else "")))  # fmt: skip
        gates.append(Gate("runs_finished", s.runs_timed_out == 0,
                          f"{s.runs_timed_out} run(s) not ended within the run deadline"
                          if s.runs_timed_out else f"{s.runs_done} run(s) ended"))  # fmt: skip
        gates += [Gate(f"sla_{r.metric}", r.passed, r.message) for r in self.sla.results]
        gates += [Gate(f"trend_{t.metric}", t.passed, t.message()) for t in self.trends]
        gates.append(self.memory_gate())
        if s.connections is not None:
            gates.append(Gate("connections", s.connections.returned, s.connections.message()))
        if s.privacy_checked:
            gates.append(Gate("privacy", not s.privacy_breaches,
                              f"{s.privacy_checked} reads of another user's thread, "
                              + ("all refused with 404" if not s.privacy_breaches
                                 else f"{len(s.privacy_breaches)} not refused: {s.privacy_breaches[0]}")))
        return gates

    @property
    def passed(self) -> bool:
        return not self.state.interrupted and all(g.passed is not False for g in self.gates())

    @property
    def status(self) -> str:
        return "interrupted" if self.state.interrupted else "passed" if self.passed else "failed"

    def failures(self) -> list[Gate]:
        return [g for g in self.gates() if g.passed is False]

    def as_dict(self) -> dict[str, Any]:
        s, settings = self.state, self.settings
        elapsed = s.elapsed_s()
        findings_per_user = Counter(f.user_id for f in s.findings)
        slope_gate = self.memory_gate()
        return {
            "kind": "load",
            "status": self.status,
            "passed": self.passed,
            "target": {"backend": mask_url(settings.backend_url),
                       "websocket": mask_url(settings.websocket_url)},
            "plan": s.plan.as_dict(),
            "started_at": self.started_at,
            "elapsed_s": round(elapsed, 3),
            "totals": {
                "users_connected": s.users_connected, "runs_sent": s.runs_sent, "runs_done": s.runs_done,
                "runs_timed_out": s.runs_timed_out, "runs_checked": self.runs_checked, "events": s.events,
                "events_per_s": round(s.events / elapsed, 1) if elapsed > 0 else None,
                "duration_reached": s.duration_reached,
                **{name: asdict(count) for name, count in (
                    ("login_errors", s.login_errors), ("connect_errors", s.connect_errors),
                    ("socket_errors", s.socket_errors), ("bad_frames", s.bad_frames))},
            },
            "client": {"cpu_s": self.cpu_s, "loop": self.loop_name, "parser": "orjson",
                       "events_per_cpu_s": round(s.events / self.cpu_s, 1) if self.cpu_s else None},
            "detection": {"runs_checked": self.runs_checked, "one_in_k": one_in_k(self.runs_checked),
                          "text": detection_sentence(self.runs_checked)},
            "violations": {"count": len(s.findings), "by_code": self.by_code,
                           "first": [f.as_dict() for f in s.findings[:SHOWN_FINDINGS]]},
            "sla": {"passed": self.sla.passed, "clock": self.sla.clock.describe() if self.sla.clock else None,
                    "metrics": [asdict(r) for r in self.sla.results]},
            "trends": [{**asdict(t), "message": t.message()} for t in self.trends],
            "memory": {"measured": self.memory.source is not None, "source": self.memory.source,
                       "why_not": self.memory.why_not, "samples": len(self.memory.samples),
                       "slope_kib_per_run": self.slope_kib, "bound_kib": self.slope_bound_kib,
                       "passed": slope_gate.passed, "message": slope_gate.message},
            "connections": ({**asdict(s.connections), "message": s.connections.message()}
                            if s.connections else None),
            "privacy": {"checked": s.privacy_checked, "breaches": s.privacy_breaches},
            "gates": [asdict(g) for g in self.gates()],
            "users": [{"index": u.index, "user_id": u.user_id, "runs": u.runs, "events": u.events,
                       "violations": findings_per_user.get(u.user_id or "", 0),
                       "p95_first_event_ms": u.p95_ms()} for u in s.users],
            "timeline": timeline(s.completions, elapsed),
        }

    def lines(self) -> list[str]:
        """The summary a terminal shows: totals, detection power, then every gate."""
        s = self.state
        elapsed = s.elapsed_s()
        rate = f"{s.events / elapsed:,.0f} events/s" if elapsed > 0 else ""
        cpu = f", client CPU {self.cpu_s:.1f}s ({s.events / self.cpu_s:,.0f} events per CPU-second)" if (
            self.cpu_s) else ""
        head = [f"load {self.status}: {s.users_connected}/{s.plan.users} users connected, "
                f"{s.runs_done} runs, "
                f"{s.events:,} events in {elapsed:.1f}s ({rate}){cpu}",
                detection_sentence(self.runs_checked)]  # fmt: skip
        if s.duration_reached:
            head.append(f"the duration ({s.plan.duration_s:g}s) was reached before every message was sent")
        marks = {True: "PASS", False: "FAIL", None: "NOT MEASURED"}
        return head + [f"{marks[g.passed]} {g.name}: {g.message}" for g in self.gates()]

    def markdown(self) -> str:
        lines = [f"# goldenpath load report ({self.status})", "", *(f"- {line}" for line in self.lines())]
        lines += ["", "## Violations", ""]
        shown = self.state.findings[:SHOWN_FINDINGS]
        lines += [f"- `{f.code}` {f.message} [{f.evidence()}]" for f in shown] or ["None."]
        return "\n".join(lines) + "\n"


def build_report(runner: LoadRunner, started_at: str | None = None, loop_name: str = "asyncio") -> LoadReport:
    settings, state = runner.settings, runner.state
    sla = settings.sla
    trend_bound = float(settings.values["GOLDENPATH_TREND_MAX_RATIO"])
    users, crowd = state.plan.users, sla.concurrent_users
    trends = (
        trend("first_event", [state.first_event_by_seq[k] for k in sorted(state.first_event_by_seq)],
              trend_bound, trend_floor_ms(sla.first_event_ms, users, crowd)),
        trend("tool_result", [state.tool_result_by_seq[k] for k in sorted(state.tool_result_by_seq)],
              trend_bound, trend_floor_ms(sla.tool_result_ms, users, crowd)),
    )  # fmt: skip
    memory = runner.memory.series if runner.memory else MemorySeries(None, "the run ended before it began")
    return LoadReport(
        settings=settings, state=state,
        sla=runner.recorder.evaluate(sla, metrics=METRICS),
        trends=trends, memory=memory,
        slope_kib=slope_kib_per_run(memory, state.plan.planned_runs) if memory.source else None,
        slope_bound_kib=float(settings.values["GOLDENPATH_MEMORY_SLOPE_KB"]),
        cpu_s=runner.cpu_s, started_at=started_at or datetime.now(UTC).isoformat(timespec="seconds"),
        loop_name=loop_name,
    )  # fmt: skip


def write_load_report(report: LoadReport, directory: Path, name: str = "load") -> tuple[Path, Path]:
    """``<directory>/<name>.json`` and ``.md``, atomically, any secret value masked."""
    secrets = [value for key, value in report.settings.values.items()
               if (spec := SPECS_BY_NAME.get(key)) is not None and spec.secret]  # fmt: skip
    json_path, md_path = directory / f"{name}.json", directory / f"{name}.md"
    text = json.dumps(report.as_dict(), indent=2, default=str)
    write_atomically(json_path, mask_text(text, secrets) + "\n")
    write_atomically(md_path, mask_text(report.markdown(), secrets))
    return json_path, md_path


def loop_name() -> str:
    loop = asyncio.get_running_loop()
    return f"{type(loop).__module__}.{type(loop).__name__}"


def timeline(completions: Sequence[tuple[float, int, float | None]], elapsed_s: float,
             windows: int = TIMELINE_WINDOWS) -> list[dict[str, float | int | None]]:
    """Events per second and first-event p95 in equal windows of the run, by when runs ended:
    a run's events are counted in the window its last one came, which smooths nothing away
    that a window of a few seconds would show."""
    if not completions or elapsed_s <= 0:
        return []
    width = elapsed_s / windows
    rows: list[dict[str, float | int | None]] = []
    for index in range(windows):
        start, end = index * width, (index + 1) * width
        inside = [c for c in completions if start <= c[0] < end or (index == windows - 1 and c[0] >= end)]
        firsts = [ms for _, _, ms in inside if ms is not None]
        rows.append({"t_s": round(end, 3), "runs": len(inside),
                     "events_per_s": round(sum(events for _, events, _ in inside) / width, 1),
                     "p95_first_event_ms": percentile(firsts, 95)})
    return rows
