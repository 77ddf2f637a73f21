"""What the target says about itself around a load run: its open-connection count.

refstack's backend ``GET /health`` carries ``connections`` (its open WebSockets); a platform
whose /health has no such number is reported as "not exposed", never as returned to baseline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from goldenpath.core.http import health_url

POLL_S = 0.05


@dataclass
class ConnectionCount:
    exposed: bool
    baseline: int | None = None
    after: int | None = None
    returned: bool | None = None

    def message(self) -> str:
        if not self.exposed:
            return "the target's open-connection count: not exposed (no 'connections' in its /health)"
        if self.returned:
            return f"the target's open connections returned to the baseline {self.baseline}"
        return (f"the target's open connections did not return to the baseline {self.baseline}: "
                f"{self.after} after every socket was closed")  # fmt: skip


async def open_connections(http: httpx.AsyncClient, backend_url: str, timeout_s: float) -> int | None:
    """The backend's own count of open connections; None when its /health does not say."""
    try:
        async with asyncio.timeout(timeout_s):
            answer = await http.get(health_url(backend_url), timeout=timeout_s)
        body = answer.json()
    except (TimeoutError, httpx.HTTPError, ValueError):
        return None
    count = body.get("connections") if isinstance(body, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else None


async def back_to_baseline(http: httpx.AsyncClient, backend_url: str, baseline: int | None,
                           deadline_s: float) -> ConnectionCount:  # fmt: skip
    """Poll /health until the count is back at the baseline, at most ``deadline_s``: the server
    learns of each close asynchronously, so the count is a condition to wait for, with a bound."""
    if baseline is None:
        return ConnectionCount(exposed=False)
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    after = None
    while True:
        after = await open_connections(http, backend_url, max(0.1, min(2.0, end - loop.time())))
        if after is not None and after <= baseline:
            return ConnectionCount(True, baseline, after, True)
        if loop.time() >= end:
            return ConnectionCount(True, baseline, after, False)
        await asyncio.sleep(POLL_S)
