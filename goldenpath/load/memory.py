"""The target's resident memory through a load run, and its growth per run.

Where it is read from, in order: ``--pid``; the process listening on the backend's port when
the backend is on this machine (goldenpath.core.procinfo); a remote target's
GOLDENPATH_METRICS_URL (Prometheus text, ``process_resident_memory_bytes``). Otherwise memory is
"not measured", said so with the reason, and never counted as a pass.

The growth is the least-squares slope of RSS (KiB) against runs completed, sampled once every
user is connected (connections cost memory too) and fitted after the first fifth of the runs:
start-up work (sessions, connection buffers, allocator arenas,
the database's page cache filling) happens early and is not a leak; a leak is in every run.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from goldenpath.core.http import is_loopback
from goldenpath.core.masking import mask_url
from goldenpath.core.procinfo import Listener, find_listener, vm_rss_kib
from goldenpath.core.settings import Settings

WARMUP_FRACTION = 0.2
_PROM_RSS = re.compile(rb"^process_resident_memory_bytes(?:\{[^}]*\})?\s+([0-9.eE+]+)", re.MULTILINE)


@dataclass
class MemorySeries:
    """Samples of (runs completed, RSS KiB), where they came from, or why there are none."""

    source: str | None  # "pid 123 (python -m refstack)", "http://host/metrics", None: not measured
    why_not: str | None = None
    samples: list[tuple[int, int]] = field(default_factory=list)
    errors: int = 0


def fit_slope(points: list[tuple[int, int]]) -> float | None:
    """Least-squares slope of y over x; None with fewer than 3 points or no spread in x."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx


def slope_kib_per_run(series: MemorySeries, planned_runs: int) -> float | None:
    """The fitted growth per run, warm-up left out (every sample when that leaves too few)."""
    after = [p for p in series.samples if p[0] >= planned_runs * WARMUP_FRACTION]
    return fit_slope(after if len(after) >= 3 else series.samples)


def parse_prometheus_rss(body: bytes) -> int | None:
    """KiB from a Prometheus text body's process_resident_memory_bytes; None when absent."""
    match = _PROM_RSS.search(body)
    if match is None:
        return None
    try:
        return int(float(match.group(1)) / 1024)
    except ValueError:
        return None


class MemoryWatch:
    """Reads the target's RSS on demand; ``series`` says from where, or why not."""

    def __init__(self, series: MemorySeries, *, pids: tuple[int, ...] = (), url: str | None = None,
                 http: httpx.AsyncClient | None = None, timeout_s: float = 2.0) -> None:  # fmt: skip
        self.series = series
        self._pids = pids
        self._url = url
        self._http = http
        self._timeout_s = timeout_s

    @property
    def measured(self) -> bool:
        return self.series.source is not None

    @property
    def local(self) -> bool:
        return bool(self._pids)

    async def sample(self, runs_done: int) -> None:
        kib = self._local() if self._pids else await self._remote()
        if kib is None:
            self.series.errors += 1
        else:
            self.series.samples.append((runs_done, kib))

    def _local(self) -> int | None:
        values = [vm_rss_kib(pid) for pid in self._pids]
        alive = [v for v in values if v is not None]
        return sum(alive) if alive else None

    async def _remote(self) -> int | None:
        if self._url is None or self._http is None:
            return None
        try:
            async with asyncio.timeout(self._timeout_s):
                answer = await self._http.get(self._url, timeout=self._timeout_s)
        except (TimeoutError, httpx.HTTPError):
            return None
        return parse_prometheus_rss(answer.content) if answer.status_code == 200 else None


def memory_watch(settings: Settings, pid: int | None, http: httpx.AsyncClient) -> MemoryWatch:
    """Where the target's memory can be read from; a watch that says why not, otherwise."""
    if pid is not None:
        if vm_rss_kib(pid) is None:
            return MemoryWatch(MemorySeries(None, f"--pid {pid}: no such process visible here"))
        return MemoryWatch(MemorySeries(f"pid {pid}"), pids=(pid,))
    url = settings.backend_url
    if is_loopback(url):
        listener = _listener(url)
        if listener is not None:
            return MemoryWatch(MemorySeries(listener.describe()[:200]), pids=listener.pids)
        why = "no process visible to this user listens on the backend's port (another user's, or a container)"
    else:
        why = "the backend is not on this machine"
    metrics = settings.get("GOLDENPATH_METRICS_URL")
    if metrics:
        return MemoryWatch(MemorySeries(f"{mask_url(metrics)} (process_resident_memory_bytes)"),
                           url=metrics, http=http, timeout_s=min(settings.timeout_s, 5.0))  # fmt: skip
    return MemoryWatch(MemorySeries(None, f"{why}, and GOLDENPATH_METRICS_URL is not set"))


def _listener(url: str) -> Listener | None:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return find_listener(port)
