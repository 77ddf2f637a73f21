"""A layer's run, written as reports/<layer>.json and reports/<layer>.md, secrets masked.

Tests add what they saw (runs for the SLA, contract violations, notes); the pytest plugin
adds the outcome counts and writes both files at the end of the session. JUnit XML comes
from pytest itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from goldenpath.core.files import write_atomically
from goldenpath.core.masking import mask_text, mask_url
from goldenpath.core.settings import SPECS_BY_NAME, Settings
from goldenpath.protocol.clock import ClockOffset
from goldenpath.protocol.contract import Violation
from goldenpath.protocol.events import Run
from goldenpath.protocol.sla import METRICS, SlaRecorder, SlaReport


@dataclass
class LayerReport:
    layer: str
    settings: Settings
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    recorder: SlaRecorder = field(default_factory=SlaRecorder)
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    clock: ClockOffset | None = None

    def add_run(self, run: Run, clock: ClockOffset | None = None) -> None:
        """A finished run's latencies count towards the report's SLA table."""
        self.recorder.add_run(run, clock)
        if clock is not None:
            self.clock = clock

    def add_connection_time(self, connect_ns: int) -> None:
        self.recorder.add_connection_time(connect_ns)

    def add_violations(self, violations: Iterable[Violation]) -> None:
        self.violations.extend(violations)

    def sla(self) -> SlaReport:
        """The SLA over what was measured; metrics nobody measured are left out, not failed."""
        measured = [m for m in METRICS if self.recorder.count(m)]
        return self.recorder.evaluate(self.settings.sla, metrics=measured)

    def target(self) -> dict[str, str]:
        s = self.settings
        return {"backend": mask_url(s.backend_url), "auth": mask_url(s.auth_service_url),
                "websocket": mask_url(s.websocket_url)}

    def as_dict(self) -> dict[str, Any]:
        sla = self.sla()
        return {
            "layer": self.layer,
            "profile": self.settings.profile,
            "target": self.target(),
            "started_at": self.started_at,
            "outcomes": self.outcomes,
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
        lines = [
            f"# goldenpath {self.layer} report",
            "",
            f"- profile: `{self.settings.profile}`",
            *(f"- {name}: `{url}`" for name, url in self.target().items()),
            f"- started: {self.started_at}",
            f"- tests: {counts}",
            f"- clock: {self.clock.describe() if self.clock else 'no offset estimate'}",
            "",
            "## Service levels",
            "",
        ]
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
