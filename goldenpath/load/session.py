"""One load run from start to report, for the command line and the multi-user layer alike.

The event loop is uvloop when it is installed (the ``bench`` group has it; it takes a fair
share off the per-frame cost of the socket reads), else asyncio's own: the checks are the same
either way. Ctrl-C (SIGINT) and SIGTERM stop the run instead of killing it: no new message is
sent, every socket is closed, and the report is written marked interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from goldenpath.core.files import write_atomically
from goldenpath.core.settings import Settings
from goldenpath.load.config import LoadPlan
from goldenpath.load.live import show
from goldenpath.load.report import LoadReport, build_report, loop_name, write_load_report
from goldenpath.load.runner import LoadRunner
from goldenpath.protocol.sla import SlaRecorder

T = TypeVar("T")
EXIT_INTERRUPTED = 130


async def execute(settings: Settings, plan: LoadPlan, *, recorder: SlaRecorder | None = None,
                  console: Console | None = None) -> LoadReport:  # fmt: skip
    """Run the plan, with the live view on ``console`` when given; signals stop it cleanly."""
    runner = LoadRunner(settings, plan, recorder=recorder)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, runner.stop)
            handled.append(sig)
    view = asyncio.create_task(show(runner.state, console)) if console is not None else None
    try:
        await runner.run()
    finally:
        if view is not None:
            view.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await view
        for sig in handled:
            loop.remove_signal_handler(sig)
    return build_report(runner, started_at, loop_name())


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when it is installed, else on asyncio's default loop."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def run_and_report(settings: Settings, plan: LoadPlan, console: Console | None = None,
                   *, also_json: Path | None = None) -> int:  # fmt: skip
    """The command line's run: live view, summary lines, the report files; the exit code."""
    console = console or Console(soft_wrap=True)
    report = run_loop(execute(settings, plan, console=console))
    json_path, md_path = write_load_report(report, settings.reports_dir, plan.report_name)
    if also_json is not None:
        write_atomically(also_json, json_path.read_text(encoding="utf-8"))
    for line in report.lines():
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"load report: {json_path} and {md_path}", markup=False, highlight=False)
    if report.state.interrupted:
        return EXIT_INTERRUPTED
    return 0 if report.passed else 1
