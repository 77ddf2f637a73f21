"""What a load run shows while it runs: users connected, runs done, events per second, p95 so
far, violations so far. On a terminal a rich status line redrawn in place; elsewhere (CI, a
pipe) one plain line every few seconds, so a log is not flooded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from rich.console import Console
from rich.live import Live
from rich.text import Text

from goldenpath.load.metrics import percentile
from goldenpath.load.runner import LoadState

TERMINAL_EVERY_S = 0.5
PLAIN_EVERY_S = 5.0


def status_line(state: LoadState) -> str:
    elapsed = state.elapsed_s()
    rate = state.events / elapsed if elapsed > 0 else 0.0
    recent = list(state.first_event_by_seq.values())[-500:]
    p95 = percentile(recent, 95)
    p95_text = f"{p95:.1f} ms" if p95 is not None else "-"
    errors = state.connect_errors.count + state.login_errors.count + state.socket_errors.count
    return (f"{elapsed:6.1f}s  users {state.users_connected}/{state.plan.users}  "
            f"runs {state.runs_done}/{state.plan.planned_runs}  {rate:,.0f} events/s  "
            f"first-event p95 {p95_text}  violations {len(state.findings)}  errors {errors}")  # fmt: skip


async def show(state: LoadState, console: Console, done: Callable[[], bool] | None = None) -> None:
    """Redraw until cancelled (the runner's caller cancels it when the run is over)."""
    if console.is_terminal:
        with Live(Text(status_line(state)), console=console, refresh_per_second=4, transient=False) as live:
            with contextlib.suppress(asyncio.CancelledError):
                while done is None or not done():
                    live.update(Text(status_line(state)))
                    await asyncio.sleep(TERMINAL_EVERY_S)
            live.update(Text(status_line(state)))
        return
    with contextlib.suppress(asyncio.CancelledError):
        while done is None or not done():
            await asyncio.sleep(PLAIN_EVERY_S)
            console.print(status_line(state), markup=False, highlight=False)
