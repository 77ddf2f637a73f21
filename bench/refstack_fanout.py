"""Fan-out benchmark: refstack against a bare `websockets` server, side by side, one run.

For 10, 100 and 500 concurrent users on loopback, each user sends a few messages and
reads every event of each run. Both servers send five frames per message of the same
shape, so per-event cost compares like with like. Prints events/s, p50/p99 delivery
latency (server timestamp to receipt; both on this machine's clock) and the ratio of
refstack's per-event cost to the bare server's. Target: at most 2x at 100 users.

Each round is repeated (--repeat, alternating the two servers) and the fastest of each
kept, because on a small shared machine noise only ever adds time.

    python bench/refstack_fanout.py [--users 10,100,500] [--messages 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from goldenpath.core import stack
from goldenpath.core.errors import StackError
from goldenpath.core.http import free_port
from goldenpath.core.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 60.0
TARGET_RATIO = 2.0
TARGET_USERS = 100


@dataclass(frozen=True)
class Round:
    server: str
    users: int
    events: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def us_per_event(self) -> float:
        return self.seconds / self.events * 1e6


async def e2e_tokens(auth_url: str, key: str, count: int) -> list[str]:
    limit = asyncio.Semaphore(20)

    async def one(client: httpx.AsyncClient, i: int) -> str:
        async with limit:
            answer = await client.post(f"{auth_url}/auth/e2e/test-auth",
                                       json={"email": f"bench-{i}@goldenpath.test"},
                                       headers={"X-E2E-Bypass-Key": key})
            answer.raise_for_status()
            token: str = answer.json()["access_token"]
            return token

    async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
        return list(await asyncio.gather(*(one(client, i) for i in range(count))))


def received_at(frame: dict[str, object], now: float, hist: HdrHistogram) -> None:
    sent = datetime.fromisoformat(str(frame["timestamp"])).timestamp()
    hist.record_value(max(1, int((now - sent) * 1e6)))


async def run_user(ws: ClientConnection, messages: int, go: asyncio.Event,
                   hist: HdrHistogram) -> int:
    await go.wait()
    events = 0
    for i in range(messages):
        await ws.send(json.dumps({"type": "user_message", "payload": {
            "text": f"bench message {i}", "thread_id": None, "message_id": f"m{i}"}}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
            received_at(frame, time.time(), hist)
            events += 1
            if frame["type"] == "agent_completed":
                break
    return events


async def one_round(server: str, ws_url: str, tokens: list[str | None], messages: int) -> Round:
    hist = HdrHistogram(1, 60_000_000, 3)
    go = asyncio.Event()
    sockets = []
    try:
        for token in tokens:
            ws = await connect(ws_url, subprotocols=[f"jwt.{token}"] if token else None,  # type: ignore[list-item]
                               open_timeout=TIMEOUT_S, max_queue=None)
            await asyncio.wait_for(ws.recv(), TIMEOUT_S)  # connection_established
            sockets.append(ws)
        tasks = [asyncio.create_task(run_user(ws, messages, go, hist)) for ws in sockets]
        started = time.perf_counter()
        go.set()
        events = sum(await asyncio.gather(*tasks))
        seconds = time.perf_counter() - started
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return Round(server, len(tokens), events, seconds,
                 hist.get_value_at_percentile(50) / 1000, hist.get_value_at_percentile(99) / 1000)


def render(rounds: list[Round], console: Console) -> float | None:
    table = Table(title="refstack fan-out vs bare websockets server (loopback)", title_justify="left")
    for column in ("users", "server", "events", "events/s", "p50 ms", "p99 ms", "µs/event", "ratio"):
        table.add_column(column, justify="right")
    target_ratio = None
    bare = {r.users: r for r in rounds if r.server == "bare"}
    for r in rounds:
        ratio = r.us_per_event / bare[r.users].us_per_event if r.server == "refstack" else 1.0
        if r.server == "refstack" and r.users == TARGET_USERS:
            target_ratio = ratio
        table.add_row(str(r.users), r.server, str(r.events), f"{r.events_per_s:,.0f}",
                      f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", f"{r.us_per_event:.0f}", f"{ratio:.2f}")
    console.print(table)
    return target_ratio


async def bench(users: list[int], messages: int, repeat: int, console: Console) -> list[Round]:
    key = secrets.token_urlsafe(24)
    settings = load_settings(ROOT, "local", environ={
        "BACKEND_URL": f"http://127.0.0.1:{free_port()}",
        "AUTH_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
    })
    bare_port = free_port()
    state = ROOT / ".goldenpath" / "bench"
    refstack = stack.refstack_spec(settings, state_dir=state / "refstack", extra_env={
        "E2E_OAUTH_SIMULATION_KEY": key, "REFSTACK_STEP_DELAY_MS": "0",
        "REFSTACK_DATA_DIR": str(state / "refstack" / f"data-{secrets.token_hex(4)}")})
    bare = stack.StackSpec(command=(sys.executable, str(ROOT / "bench" / "bare_server.py"), str(bare_port)),
                           health_urls=(f"http://127.0.0.1:{bare_port}/health",), state_dir=state / "bare")
    rounds: list[Round] = []
    with stack.running(refstack), stack.running(bare):
        tokens = await e2e_tokens(settings.auth_service_url, key, max(users))
        for count in users:
            console.print(f"{count} users ...")
            tries: dict[str, list[Round]] = {"bare": [], "refstack": []}
            for _ in range(repeat):
                tries["bare"].append(await one_round(
                    "bare", f"ws://127.0.0.1:{bare_port}/ws", [None] * count, messages))
                tries["refstack"].append(await one_round(
                    "refstack", settings.websocket_url, list(tokens[:count]), messages))
            rounds += [min(runs, key=lambda r: r.us_per_event) for runs in tries.values()]
    return rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="10,100,500", help="comma-separated user counts")
    parser.add_argument("--messages", type=int, default=10, help="messages per user per round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per server; the fastest counts")
    args = parser.parse_args()
    console = Console()
    try:
        users = [int(u) for u in args.users.split(",")]
    except ValueError:
        console.print(f"error: --users takes whole numbers separated by commas, not {args.users!r}")
        return 2
    if args.messages <= 0 or args.repeat <= 0 or any(u <= 0 for u in users):
        console.print("error: --users, --messages and --repeat must be positive")
        return 2
    try:
        rounds = asyncio.run(bench(users, args.messages, args.repeat, console))
    except StackError as exc:
        console.print(f"error: {exc}", markup=False)
        return 1
    ratio = render(rounds, console)
    if ratio is not None:
        verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
        console.print(f"refstack at {TARGET_USERS} users: {ratio:.2f}x the bare server's per-event "
                      f"cost; {verdict} the {TARGET_RATIO:.0f}x target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
