"""Per-event analytics rows in ClickHouse, over its HTTP interface, batched in the background.

Recording is an append to a list: the event path never waits for ClickHouse. A background
task flushes every FLUSH_INTERVAL seconds or as soon as BATCH_ROWS rows are waiting.

The SQL is deliberately conservative so that it runs on Debian's clickhouse-server 18.16 as
well as on current releases: DateTime (seconds, always sent as a unix timestamp so the
server time zone does not matter) plus a UInt16 millisecond column instead of DateTime64,
MergeTree() with PARTITION BY / ORDER BY, and INSERT ... FORMAT JSONEachRow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import httpx

from refstack.settings import ClickHouseTarget

log = logging.getLogger("refstack.analytics")

TABLE = "refstack_events"
FLUSH_INTERVAL = 0.2
BATCH_ROWS = 500
MAX_BUFFERED_ROWS = 100_000
TIMEOUT = 2.0

# (epoch, event_type, user_id, run_id, thread_id, message_id, tool_name, latency_ms)
Row = tuple[float, str, str, str, str, str, str, float]

_COLUMNS = (
    "ts", "ts_ms", "event_type", "user_id", "run_id", "thread_id", "message_id",
    "tool_name", "latency_ms",
)  # fmt: skip


class AnalyticsUnavailable(Exception):
    """ClickHouse cannot be reached or rejected a statement."""


class Analytics:
    def __init__(self, target: ClickHouseTarget) -> None:
        self.target = target
        self._table = f"{target.database}.{TABLE}"
        auth = (target.user or "default", target.password or "") if target.user else None
        self._client = httpx.AsyncClient(base_url=target.base_url, auth=auth, timeout=TIMEOUT)
        self._rows: list[Row] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._schema_ready = False
        self._failing = False
        self.written = 0
        self.dropped = 0

    def record(
        self,
        epoch: float,
        event_type: str,
        user_id: str,
        run_id: str,
        thread_id: str,
        message_id: str,
        tool_name: str,
        latency_ms: float,
    ) -> None:
        rows = self._rows
        rows.append((epoch, event_type, user_id, run_id, thread_id, message_id, tool_name, latency_ms))
        if len(rows) >= BATCH_ROWS:
            self._wake.set()

    async def start(self) -> None:
        try:
            await self._ensure_schema()
        except AnalyticsUnavailable as exc:
            log.warning("clickhouse unavailable at start (will retry): %s", exc)
        self._task = asyncio.create_task(self._flush_loop(), name="refstack-analytics")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        pending = len(self._rows)
        try:
            await asyncio.wait_for(self.flush(), timeout=0.5)
        except TimeoutError:
            log.warning("clickhouse: final flush timed out; up to %d rows lost", pending)
        await self._client.aclose()

    async def ping(self) -> None:
        """SELECT 1 through the HTTP interface (checks credentials too), then the schema."""
        answer = await self._query("SELECT 1")
        if answer.strip() != "1":
            raise AnalyticsUnavailable(f"clickhouse: unexpected answer to SELECT 1: {answer[:80]!r}")
        await self._ensure_schema()

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=FLUSH_INTERVAL)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        if not self._rows:
            return
        batch, self._rows = self._rows, []
        body = "\n".join(json.dumps(dict(zip(_COLUMNS, _wire(row), strict=True))) for row in batch)
        try:
            await self._ensure_schema()
            await self._query(f"INSERT INTO {self._table} FORMAT JSONEachRow", body)
        except AnalyticsUnavailable as exc:
            # Keep the rows for the next attempt, within a bound: analytics must never be
            # the reason the process runs out of memory.
            self._rows = batch + self._rows
            overflow = len(self._rows) - MAX_BUFFERED_ROWS
            if overflow > 0:
                del self._rows[:overflow]
                self.dropped += overflow
            if not self._failing:
                log.warning("clickhouse: insert failed, buffering rows: %s", exc)
                self._failing = True
            return
        if self._failing:
            log.warning("clickhouse: inserts recovered")
            self._failing = False
        self.written += len(batch)

    async def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        if self.target.database != "default":
            await self._query(f"CREATE DATABASE IF NOT EXISTS {self.target.database}")
        await self._query(
            f"CREATE TABLE IF NOT EXISTS {self._table} ("
            " ts DateTime,"
            " ts_ms UInt16,"
            " event_type String,"
            " user_id String,"
            " run_id String,"
            " thread_id String,"
            " message_id String,"
            " tool_name String,"
            " latency_ms Float64"
            ") ENGINE = MergeTree() PARTITION BY toYYYYMM(ts) ORDER BY (ts, run_id)"
        )
        self._schema_ready = True

    async def _query(self, query: str, body: str | None = None) -> str:
        try:
            if body is None:
                response = await self._client.post("/", content=query.encode())
            else:
                response = await self._client.post("/", params={"query": query}, content=body.encode())
        except httpx.HTTPError as exc:
            raise AnalyticsUnavailable(f"clickhouse: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            first_line = response.text.strip().splitlines()[0] if response.text.strip() else ""
            raise AnalyticsUnavailable(f"clickhouse: HTTP {response.status_code}: {first_line[:200]}")
        return response.text


def _wire(row: Row) -> tuple[Any, ...]:
    epoch, *rest = row
    seconds = int(epoch)
    return (seconds, int((epoch - seconds) * 1000), *rest)
