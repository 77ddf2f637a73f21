"""The backend's memory stays flat while many users chat: no leak per run."""

from __future__ import annotations

import os
import socket
import statistics
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from goldenpath.core.http import is_loopback
from goldenpath.core.procinfo import Listener, find_listener
from goldenpath.core.settings import Settings
from goldenpath.output.reports import LayerReport
from goldenpath.testkit.support import service_missing

from .support import Crowd, run

BUDGET_SETTING = "GOLDENPATH_MEMORY_BUDGET_MB"
PER_RUN_SETTING = "GOLDENPATH_MEMORY_PER_RUN_KB"
# A healthy reference stack grows about 1 KiB a run (allocator and database caches filling);
# refstack's memory_leak fault keeps 256 KiB a run by default.
WARMUP_WAVES = 2
WAVES = 6
MESSAGES_PER_USER = 5


@dataclass(frozen=True)
class Growth:
    """Resident memory after the warm-up and after each measured wave, KiB."""

    rss_kib: list[int]
    runs_per_wave: int

    @property
    def waves(self) -> list[int]:
        return [after - before for before, after in zip(self.rss_kib, self.rss_kib[1:], strict=False)]

    @property
    def total_kib(self) -> int:
        return self.rss_kib[-1] - self.rss_kib[0]

    @property
    def runs(self) -> int:
        return len(self.waves) * self.runs_per_wave

    @property
    def median_per_run_kib(self) -> float:
        # The median wave: a one-off jump (an arena, a cache filling) is not a trend; a leak is in every wave.
        return statistics.median(self.waves) / self.runs_per_wave

    def describe(self) -> str:
        per_wave = ", ".join(f"{kib:+d}" for kib in self.waves)
        return (f"RSS {self.rss_kib[0] / 1024:.1f} -> {self.rss_kib[-1] / 1024:.1f} MiB "
                f"({self.total_kib / 1024:+.1f} MiB) over {self.runs} runs in {len(self.waves)} wave(s) of "
                f"{self.runs_per_wave}; per wave KiB: {per_wave}; median wave "
                f"{self.median_per_run_kib:.1f} KiB per run")  # fmt: skip


@dataclass(frozen=True)
class Limits:
    """How much growth is allowed: in all, and per run in the median wave."""

    budget_kib: float
    per_run_kib: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        # Both are validated, with their defaults, by goldenpath.config.
        return cls(float(settings.values[BUDGET_SETTING]) * 1024,
                   float(settings.values[PER_RUN_SETTING]))


def backend_process(settings: Settings) -> Listener:
    """The local process serving the backend, or a skip saying why there is none to watch."""
    url = settings.backend_url
    if not is_loopback(url):
        pytest.skip(f"the backend {url} is not on this machine: its memory cannot be read from here")
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    listener = find_listener(port)
    if listener is None:
        service_missing("the backend's process", f"none visible to this user listens on port {port} "
                        "(another user's, or behind a container's port proxy)")
    return listener


async def load(settings: Settings, report: LayerReport, backend: Listener, budget_kib: float) -> Growth:
    async with Crowd(settings, report) as crowd:
        members = await crowd.join(settings.sla.concurrent_users)
        runs_per_wave = len(members) * MESSAGES_PER_USER
        for wave in range(WARMUP_WAVES):
            await crowd.wave(members, MESSAGES_PER_USER, f"warm-up {wave + 1}")
        rss = [backend.rss_kib()]
        for wave in range(WAVES):
            await crowd.wave(members, MESSAGES_PER_USER, f"wave {wave + 1}")
            rss.append(backend.rss_kib())
            if rss[-1] - rss[0] > budget_kib:
                break  # over budget already: more waves would only eat the machine's memory
        unfinished = [r for m in members for _, r in m.runs if r.outcome != "agent_completed"]
        assert not unfinished, (f"{len(unfinished)} run(s) under load did not complete, e.g. "
                                f"{unfinished[0].outcome}: {unfinished[0].events[-1:]}")  # fmt: skip
        crowd.record()
    return Growth(rss, runs_per_wave)


@pytest.mark.slow
@pytest.mark.websocket
def test_backend_memory_is_stable_under_load(gp_settings: Settings, gp_report: LayerReport) -> None:
    """Warm up, then read the backend's RSS after each of several waves of concurrent runs:
    the total growth stays within a generous budget, and the median wave (the trend, not one
    number) grows by less than a few KiB a run. Only a backend on this machine can be watched."""
    backend = backend_process(gp_settings)
    limits = Limits.from_settings(gp_settings)
    calls = 20 + (WARMUP_WAVES + WAVES) * MESSAGES_PER_USER
    growth = run(load(gp_settings, gp_report, backend, limits.budget_kib), gp_settings, calls=calls)
    gp_report.notes.append(f"backend memory ({backend.describe()}): {growth.describe()}")
    assert growth.total_kib < limits.budget_kib, (
        f"backend memory grew beyond {limits.budget_kib / 1024:g} MiB: {growth.describe()} "
        f"({backend.describe()})"
    )
    assert growth.median_per_run_kib < limits.per_run_kib, (
        f"backend memory grew by {limits.per_run_kib:g} KiB or more per run in the median wave, a leak: "
        f"{growth.describe()} ({backend.describe()})"
    )


def test_the_memory_watch_finds_the_listening_process() -> None:
    """The instrument of the test above: a port this process listens on leads back to this
    process, with a resident size, so a wrong pid cannot make the memory check pass vacuously."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        listener = find_listener(port)
        assert listener is not None, f"no process found listening on port {port}, though this one does"
        assert listener.pids == (os.getpid(),), f"port {port} is ours; procinfo names {listener.describe()}"
        assert listener.rss_kib() > 0, f"VmRSS of this process reads {listener.rss_kib()} KiB"
    assert find_listener(port) is None, f"port {port} is closed, but procinfo still finds a listener"
