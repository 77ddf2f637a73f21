"""A layer's run, written as reports/<layer>.json and reports/<layer>.md, secrets masked.

Lifecycle: the pytest plugin writes both files at the START of the session with status
``running`` (replacing any earlier run's report), and rewrites them at the end as
``passed``, ``failed`` or ``interrupted`` (Ctrl-C: with what was measured so far). A run
killed outright leaves ``running``, which says exactly that: it never finished. Tests add
what they saw (runs for the SLA, contract violations, notes); the plugin adds outcomes and
failures. Every violation and every failed SLA the report records fails the layer
(``problems``), so the report and the exit code never disagree. JUnit XML comes from pytest.

The JSON shape (renderers, e.g. the HTML report, rely on it; keys are always present):

    {
      "layer": "e2e",                     # the nox session / layer name
      "profile": "local",                 # envs/<profile>.env
      "status": "running" | "passed" | "failed" | "interrupted",
      "target": {"backend": url, "auth": url, "websocket": url,   # passwords masked
                 "started_by_goldenpath": true | false},          # the auto-started refstack?
      "started_at": "2025-01-01T12:00:00+00:00",                  # ISO 8601 UTC, seconds
      "finished_at": "..." | null,        # null while running
      "duration_s": 12.3 | null,          # null while running
      "outcomes": {"passed": 3, "failed": 1, ...},   # only non-zero counts; keys among
                                          # passed, failed, error, skipped, xfailed, xpassed
      "failures": [{"test": "tests/e2e/test_x.py::test_y", "message": "one line"}],
      "problems": ["one line per reason the layer failed beyond its tests' own verdicts:
                    recorded violations, failed SLA metrics, 'validated nothing'"],
      "clock": "offset ..." | null,       # the server clock offset estimate, described
      "sla": {"passed": true | false | null,          # null: nothing was measured
              "metrics": [{metric, count, bound_ms, gate, passed, measured, message,
                           p50_ms, p95_ms, p99_ms, max_ms, at_gate_ms, uncertainty_ms,
                           marginal, histogram: [[upper_ms, samples], ...]}]},
      "violations": [{"code": "MISSING_EVENT", "run_id": "..." | null, "message": "...",
                      "index": 3 | null}],
      "notes": ["free text"]
    }
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from goldenpath.core.files import write_atomically
from goldenpath.core.masking import mask_text, mask_url
from goldenpath.core.settings import SPECS_BY_NAME, Settings, is_true
from goldenpath.protocol.clock import ClockOffset
from goldenpath.protocol.contract import Violation
from goldenpath.protocol.events import Run
from goldenpath.protocol.sla import METRICS, SlaRecorder, SlaReport

Status = Literal["running", "passed", "failed", "interrupted"]
STARTED_VAR = "GOLDENPATH_TARGET_STARTED"
# Outcomes in which a test reached a verdict: anything else (skipped) validated nothing.
VERDICTS = ("passed", "failed", "error", "xfailed", "xpassed")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Failure:
    test: str
    message: str


@dataclass
class LayerReport:
    layer: str
    settings: Settings
    started_at: str = field(default_factory=_now)
    recorder: SlaRecorder = field(default_factory=SlaRecorder)
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    clock: ClockOffset | None = None
    status: Status = "running"
    finished_at: str | None = None
    duration_s: float | None = None
    failures: list[Failure] = field(default_factory=list)
    # Set by whoever ends the run: reasons beyond the tests' own verdicts (see problems()).
    problems_found: list[str] = field(default_factory=list)
    _started_mono: float = field(default_factory=time.monotonic, repr=False)

    def add_run(self, run: Run, clock: ClockOffset | None = None) -> None:
        """A finished run's latencies count towards the report's SLA table."""
        self.recorder.add_run(run, clock)
        if clock is not None:
            self.clock = clock

    def add_connection_time(self, connect_ns: int) -> None:
        self.recorder.add_connection_time(connect_ns)

    def add_violations(self, violations: Iterable[Violation]) -> None:
        self.violations.extend(violations)

    def add_outcome(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def add_failure(self, test: str, message: str) -> None:
        # One line: the first non-blank line of the message, so a table row stays a row.
        first = next((line.strip() for line in message.splitlines() if line.strip()), "")
        self.failures.append(Failure(test, first or "(no message)"))

    def sla(self) -> SlaReport:
        """The SLA over what was measured; metrics nobody measured are left out, not failed."""
        measured = [m for m in METRICS if self.recorder.count(m)]
        return self.recorder.evaluate(self.settings.sla, metrics=measured)

    def validated_nothing(self) -> bool:
        """No test reached a verdict: none ran, or every one skipped."""
        return not any(self.outcomes.get(outcome) for outcome in VERDICTS)

    def problems(self) -> list[str]:
        """One line per reason this layer fails whatever its tests said: every recorded
        violation and every failed SLA metric fails it, and so does validating nothing."""
        lines = []
        if self.violations:
            codes = ", ".join(sorted({str(v.code) for v in self.violations}))
            lines.append(f"{len(self.violations)} contract violation(s) recorded in the "
                         f"{self.layer} report: {codes}")
        lines += [f"SLA {r.metric} failed: {r.message}" for r in self.sla().failures]
        if self.validated_nothing():
            what = "every test skipped" if self.outcomes.get("skipped") else "no test ran"
            lines.append(f"the {self.layer} layer validated nothing: {what}")
        return lines

    def finish(self, status: Status) -> None:
        self.status = status
        self.finished_at = _now()
        self.duration_s = round(time.monotonic() - self._started_mono, 3)

    def started_by_goldenpath(self) -> bool:
        # Unset: pytest run by hand, not by a session that could have started anything.
        return is_true(self.settings.get(STARTED_VAR) or "0")

    def target(self) -> dict[str, Any]:
        s = self.settings
        return {"backend": mask_url(s.backend_url), "auth": mask_url(s.auth_service_url),
                "websocket": mask_url(s.websocket_url),
                "started_by_goldenpath": self.started_by_goldenpath()}

    def as_dict(self) -> dict[str, Any]:
        sla = self.sla()
        return {
            "layer": self.layer,
            "profile": self.settings.profile,
            "status": self.status,
            "target": self.target(),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "outcomes": dict(sorted(self.outcomes.items())),
            "failures": [asdict(f) for f in self.failures],
            "problems": self.problems_found,
            "clock": self.clock.describe() if self.clock else None,
            # Nothing measured is not a pass: null, so no dashboard counts it as one.
            "sla": {"passed": sla.passed if sla.results else None,
                    "metrics": [asdict(r) for r in sla.results]},
            "violations": [asdict(v) for v in self.violations],
            "notes": self.notes,
        }

    def markdown(self) -> str:
        sla = self.sla()
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.outcomes.items())) or "no tests ran"
        who = ("the reference stack, started by goldenpath for this run" if self.started_by_goldenpath()
               else "not started by goldenpath")
        lines = [
            f"# goldenpath {self.layer} report",
            "",
            f"- status: **{self.status}**{STATUS_NOTE[self.status]}",
            f"- profile: `{self.settings.profile}`",
            *(f"- {name}: `{url}`" for name, url in self.target().items() if isinstance(url, str)),
            f"- target: {who}",
            f"- started: {self.started_at}",
            f"- finished: {self.finished_at or 'not yet'}"
            + (f" ({self.duration_s:.1f} s)" if self.duration_s is not None else ""),
            f"- tests: {counts}",
            f"- clock: {self.clock.describe() if self.clock else 'no offset estimate'}",
        ]
        if self.problems_found:
            lines += ["", "## Why this layer failed", "", *(f"- {p}" for p in self.problems_found)]
        if self.failures:
            lines += ["", "## Failed tests", "", *(f"- `{f.test}`: {f.message}" for f in self.failures)]
        lines += ["", "## Service levels", ""]
        if sla.results:
            lines += ["| metric | samples | p50 ms | p95 ms | p99 ms | max ms | bound ms | result |",
                      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
            lines += [
                f"| {r.metric} | {r.count} | {_ms(r.p50_ms)} | {_ms(r.p95_ms)} | {_ms(r.p99_ms)} "
                f"| {_ms(r.max_ms)} | {r.bound_ms:g} | {'pass' if r.passed else 'FAIL: ' + r.message} |"
                for r in sla.results
            ]
        else:
            lines.append("Nothing was measured in this run.")
        lines += ["", "## Contract violations", ""]
        lines += [f"- `{v.code}` {v.message}" for v in self.violations] or ["None."]
        if self.notes:
            lines += ["", "## Notes", "", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines) + "\n"


STATUS_NOTE: dict[str, str] = {
    "running": " (the run has not finished; if no run is going on, it was killed)",
    "passed": "",
    "failed": "",
    "interrupted": " (cut short: what follows is what was measured until then)",
}


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def secret_values(settings: Settings) -> list[str]:
    return [value for key, value in settings.values.items()
            if (spec := SPECS_BY_NAME.get(key)) is not None and spec.secret]


def write_reports(report: LayerReport, directory: Path) -> tuple[Path, Path]:
    """Both files, atomically; any secret value that slipped into a message is masked."""
    secrets = secret_values(report.settings)
    json_path = directory / f"{report.layer}.json"
    md_path = directory / f"{report.layer}.md"
    text = json.dumps(report.as_dict(), indent=2, default=str)
    write_atomically(json_path, mask_text(text, secrets) + "\n")
    write_atomically(md_path, mask_text(report.markdown(), secrets))
    return json_path, md_path
