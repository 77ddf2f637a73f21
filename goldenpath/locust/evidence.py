"""What a Locust process found, in a shape that crosses from worker to master.

A worker keeps one ``Evidence``: counts (users, runs, events, violations by code), the first
``EVIDENCE_LIMIT`` findings with their evidence, and every latency sample folded into a compact
histogram (3 significant digits, the precision of the SLA recorder's HdrHistogram). Its
``snapshot()`` is cumulative, so the master keeps the latest one per worker and a lost or
repeated message never double-counts; only the findings travel once each (``take_new``).

The master merges the snapshots into ``Merged``, which fills an ``SlaRecorder`` and so gates
the service levels with exactly the code every other layer uses.

Pure data, no locust, no gevent: unit-testable and picklable as plain dicts (Locust sends
custom messages with msgpack, which carries dicts, lists, str, int and float).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from goldenpath.protocol.clock import ClockOffset
from goldenpath.protocol.contract import Code
from goldenpath.protocol.ledger import Finding
from goldenpath.protocol.sla import METRICS, SlaRecorder

EVIDENCE_LIMIT = 100  # findings with evidence that reach the master, in all (the bound)
LEAK_CODES = frozenset((Code.FOREIGN_EVENT.value, Code.FOREIGN_CANARY.value))
_SIGNIFICANT = 3
_ERRORS_KEPT = 5


def bucket_us(value_ns: int) -> int:
    """The sample in microseconds, rounded to 3 significant digits (sign kept)."""
    us = value_ns // 1000 if value_ns >= 0 else -((-value_ns) // 1000)
    magnitude = abs(us)
    if magnitude < 10**_SIGNIFICANT:
        return us
    step = int(10 ** (len(str(magnitude)) - _SIGNIFICANT))
    rounded = (magnitude + step // 2) // step * step
    return rounded if us >= 0 else -rounded


@dataclass
class Evidence:
    """One process's findings and measurements (a worker's, or the only process's)."""

    counts: Counter[str] = field(default_factory=Counter)  # users, users_done, runs, events, ...
    codes: Counter[str] = field(default_factory=Counter)  # violations by code, all of them
    leaked_runs: list[str] = field(default_factory=list)  # first EVIDENCE_LIMIT distinct
    histograms: dict[str, Counter[int]] = field(default_factory=lambda: {m: Counter() for m in METRICS})
    max_us: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METRICS, 0))
    clock: ClockOffset | None = None  # the widest-uncertainty offset used for delivery
    stamp_resolution_ns: int = 0
    errors: list[str] = field(default_factory=list)  # the first few user errors (login, socket)
    _findings: list[Finding] = field(default_factory=list)
    _sent: int = 0

    def add(self, finding: Finding) -> bool:
        """Count a finding; True when it is among the first EVIDENCE_LIMIT (kept with evidence)."""
        self.codes[finding.code] += 1
        if finding.code in LEAK_CODES and finding.run_id and finding.run_id not in self.leaked_runs and (
                len(self.leaked_runs) < EVIDENCE_LIMIT):
            self.leaked_runs.append(finding.run_id)
        if len(self._findings) < EVIDENCE_LIMIT:
            self._findings.append(finding)
            return True
        return False

    def error(self, message: str) -> None:
        self.counts["user_errors"] += 1
        if len(self.errors) < _ERRORS_KEPT:
            self.errors.append(message)

    def record(self, metric: str, value_ns: int) -> None:
        us = bucket_us(value_ns)
        self.histograms[metric][us] += 1
        exact = max(0, value_ns // 1000)
        if exact > self.max_us[metric]:
            self.max_us[metric] = exact

    def use_clock(self, clock: ClockOffset, resolution_ns: int) -> None:
        if self.clock is None or clock.uncertainty_ns > self.clock.uncertainty_ns:
            self.clock = clock
        self.stamp_resolution_ns = max(self.stamp_resolution_ns, resolution_ns)

    def take_new(self) -> list[dict[str, Any]]:
        """The kept findings not handed out yet (each travels to the master once)."""
        new = self._findings[self._sent:]
        self._sent = len(self._findings)
        return [f.as_dict() for f in new]

    def snapshot(self) -> dict[str, Any]:
        """Everything but the findings, cumulative; plain types only."""
        clock = self.clock
        return {
            "counts": dict(self.counts),
            "codes": dict(self.codes),
            "leaked_runs": list(self.leaked_runs),
            # msgpack maps need string keys on the way back in some versions: keep them as pairs.
            "histograms": {m: sorted(h.items()) for m, h in self.histograms.items() if h},
            "max_us": {m: v for m, v in self.max_us.items() if v},
            "clock": None if clock is None else [clock.offset_ns, clock.uncertainty_ns, clock.rtt_ns,
                                                 clock.samples, clock.resolution_ns],
            "stamp_resolution_ns": self.stamp_resolution_ns,
            "errors": list(self.errors),
        }  # fmt: skip


@dataclass
class Merged:
    """The master's view: the latest snapshot of every node, and the first findings."""

    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    findings_dropped: int = 0  # evidence that arrived after the first EVIDENCE_LIMIT

    def receive(self, node: str, data: dict[str, Any]) -> None:
        snapshot = data.get("snapshot")
        if isinstance(snapshot, dict):
            self.snapshots[node] = snapshot
        for finding in data.get("findings") or ():
            if len(self.findings) < EVIDENCE_LIMIT:
                self.findings.append(finding)
            else:
                self.findings_dropped += 1

    def count(self, name: str) -> int:
        return sum(int(s.get("counts", {}).get(name, 0)) for s in self.snapshots.values())

    def codes(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for s in self.snapshots.values():
            total.update({str(k): int(v) for k, v in (s.get("codes") or {}).items()})
        return total

    def first_error(self) -> str | None:
        for s in self.snapshots.values():
            for error in s.get("errors") or ():
                return str(error)
        return None

    def leaked_runs(self) -> list[str]:
        runs: list[str] = []
        for s in self.snapshots.values():
            runs += [r for r in s.get("leaked_runs") or () if r not in runs]
        for f in self.findings:
            run = f.get("run_id")
            if f.get("code") in LEAK_CODES and run and run not in runs:
                runs.append(run)
        return runs

    def recorder(self) -> SlaRecorder:
        """An SLA recorder holding every node's samples (3 significant digits; exact maxima)."""
        recorder = SlaRecorder()
        for s in self.snapshots.values():
            maxima = s.get("max_us") or {}
            for metric, pairs in (s.get("histograms") or {}).items():
                if metric not in METRICS:
                    continue
                exact = int(maxima.get(metric, 0))
                top = max((int(us) for us, _ in pairs), default=0)
                for us, count in pairs:
                    us, count = int(us), int(count)
                    if us == top and exact and count:
                        # The largest bucket's first sample is the exact maximum: the gate on
                        # "max" then sees the true value, not its rounded bucket.
                        recorder.record(metric, exact * 1000)
                        count -= 1
                    for _ in range(count):
                        recorder.record(metric, us * 1000)
            clock = s.get("clock")
            if clock:
                offset_ns, uncertainty_ns, rtt_ns, samples, resolution_ns = (int(part) for part in clock)
                offset = ClockOffset(offset_ns=offset_ns, uncertainty_ns=uncertainty_ns, rtt_ns=rtt_ns,
                                     samples=samples, resolution_ns=resolution_ns)
                if recorder.clock is None or offset.uncertainty_ns > recorder.clock.uncertainty_ns:
                    recorder.clock = offset
            recorder.stamp_resolution_ns = max(recorder.stamp_resolution_ns,
                                               int(s.get("stamp_resolution_ns") or 0))
        return recorder
