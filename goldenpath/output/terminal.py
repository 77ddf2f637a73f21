"""What a developer sees in the terminal: the console every table is drawn on, the summary
at the end of a layer, and a heartbeat while a slow test runs.

On a terminal, rich draws as usual. Without one (CI, a pipe, a file) rich would still wrap
at 80 columns (or $COLUMNS) and fold a long URL in the middle; ``make_console`` gives plain
text at full width instead: no colour, no cursor control, every table as wide as its widest
cell, so no cell is split mid-token and a log line can be copied as it is.

Deliberately light: tasks.py builds its console at import time, before a bad flag is
refused, so the tables (which import the checks) are imported only when a summary is drawn.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

# Wide enough for any row a table here holds; tables are only as wide as their content.
PLAIN_WIDTH = 10_000
HEARTBEAT_S = 30.0


def make_console(file: TextIO | None = None, *, stderr: bool = False) -> Console:
    """rich's own console on a terminal; plain text at full width anywhere else."""
    stream = file if file is not None else (sys.stderr if stderr else sys.stdout)
    if _isatty(stream):
        return Console(file=stream)
    return Console(file=stream, width=PLAIN_WIDTH, force_terminal=False, color_system=None,
                   highlight=False, emoji=False, legacy_windows=False)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream is no terminal
        return False


def end_live(console: Console) -> None:
    """rich's Live leaves its last line open when not on a terminal; close it, so the next
    line (an error, the shell prompt) starts on a line of its own."""
    if not console.is_terminal:
        console.line()


def print_summary(report: dict[str, Any], console: Console) -> None:
    """A layer's end: status and counts, its failures, the SLA table, the violations."""
    from goldenpath.output.tables import failures_table, sla_table, violations_table

    layer = report.get("layer", "?")
    status = str(report.get("status") or "finished")
    outcomes = _dict(report.get("outcomes"))
    counts = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "no tests ran"
    duration = report.get("duration_s")
    took = f" in {duration:.1f} s" if isinstance(duration, int | float) else ""
    style = {"passed": "bold green", "failed": "bold red", "interrupted": "bold yellow"}.get(status, "bold")
    console.print(Text.assemble(("goldenpath ", "bold"), (f"{layer}: ", "bold"), (status, style),
                                f" ({counts}{took}, profile {report.get('profile', '?')})"))
    failures = [f for f in report.get("failures") or [] if isinstance(f, dict)]
    if failures:
        console.print(failures_table(failures))
    sla = _dict(report.get("sla"))
    metrics = [m for m in sla.get("metrics") or [] if isinstance(m, dict)]
    if metrics:
        console.print(sla_table(metrics))
    else:
        console.print(Text("service levels: nothing was measured in this run"))
    violations = [v for v in report.get("violations") or [] if isinstance(v, dict)]
    if violations:
        console.print(violations_table(violations))
    else:
        console.print(Text("contract and isolation violations: none"))


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def print_report_file(path: Path, console: Console | None = None) -> bool:
    """The summary of a written report (secrets already masked there); False if unreadable."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(report, dict):
        return False
    print_summary(report, console or make_console())
    return True


class Heartbeat:
    """While a test runs longer than ``interval`` seconds, one line every ``interval``:
    which test, and for how long, so a 10-minute layer never looks hung.

    One daemon thread for the session; ``begin``/``end`` bracket each test. It waits on a
    condition with a timeout (woken at once by ``end`` or ``close``), never a bare sleep.
    """

    def __init__(self, write_line: Callable[[str], None], interval: float = HEARTBEAT_S) -> None:
        self.write_line = write_line
        self.interval = interval
        self._lock = threading.Condition()
        self._test: str | None = None
        self._since = 0.0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="goldenpath-heartbeat", daemon=True)
        self._thread.start()

    def begin(self, test: str) -> None:
        with self._lock:
            self._test, self._since = test, time.monotonic()
            self._lock.notify_all()

    def end(self) -> None:
        with self._lock:
            self._test = None
            self._lock.notify_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with self._lock:
            while not self._closed:
                test, since = self._test, self._since
                if test is None:
                    self._lock.wait()
                    continue
                # Woken early by begin/end/close: re-check; timed out: still the same test.
                if self._lock.wait(timeout=self.interval) or self._closed:
                    continue
                if self._test == test and self._since == since:
                    elapsed = time.monotonic() - since
                    self.write_line(f"goldenpath: still running {test} ({elapsed:.0f} s)")
