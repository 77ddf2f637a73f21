"""Preflight benchmark: its checks at once against the same checks one after another.

One run, side by side: (1) `run_checks` as `invoke preflight` runs them, all at once;
(2) the same check functions in sequence; (3) the shell commands an operator would type
(pg_isready, redis-cli ping, curl, docker system df) in sequence. One check always times
out: its Redis URL points at a listener that never answers. Target: (1)/(2) <= 0.5 with
six or more checks.

    python bench/preflight.py [--timeout 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from goldenpath.checks import preflight
from goldenpath.core import stack
from goldenpath.core.http import free_port
from goldenpath.core.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.5


def shell_commands(ctx: preflight.Context, timeout_s: float) -> list[list[str]]:
    """What an operator would run by hand for the same services, where the tool exists."""
    assert ctx.settings is not None
    s = ctx.settings
    commands = [["curl", "-sf", "-m", str(timeout_s), f"{url}/health"]
                for url in (s.auth_service_url, s.backend_url)]
    commands += [["curl", "-sf", "-m", str(timeout_s), f"{s.auth_service_url}/health/ready"],
                 ["curl", "-sf", "-m", str(timeout_s), f"{s.backend_url}/api/health/ready"]]
    if s.database_url:
        parts = urlsplit(s.database_url)
        commands.append(["pg_isready", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
                         "-t", str(max(1, round(timeout_s)))])
    if s.redis_url:
        commands.append(["timeout", str(timeout_s), "redis-cli", "-u", s.redis_url, "ping"])
    if s.clickhouse_url:
        commands.append(["curl", "-sf", "-m", str(timeout_s), f"{s.clickhouse_url.rstrip('/')}/ping"])
    commands.append(["timeout", "30", "docker", "system", "df"])
    return [c for c in commands if shutil.which(c[0])]


def timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=2.0, help="per-call timeout, seconds")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the fastest of each counts")
    args = parser.parse_args()
    console = Console()
    if args.timeout <= 0 or args.repeat <= 0:
        console.print("error: --timeout and --repeat must be positive")
        return 2

    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)  # accepts in the kernel, never answers: a hung service
        environ = {
            "BACKEND_URL": f"http://127.0.0.1:{free_port()}",
            "AUTH_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
            "E2E_OAUTH_SIMULATION_KEY": "bench-preflight-key-0123456789",
            "GOLDENPATH_TIMEOUT_S": str(args.timeout),
            "REDIS_URL": f"redis://127.0.0.1:{hole.getsockname()[1]}/0",
            **{k: os.environ[k] for k in ("DATABASE_URL", "CLICKHOUSE_URL") if os.environ.get(k)},
        }
        settings = load_settings(ROOT, "local", environ=environ)
        # The stack itself gets no Redis: only goldenpath's probe should meet the black hole.
        healthy = settings.with_values({"REDIS_URL": ""}, "bench")
        spec = stack.refstack_spec(healthy, state_dir=ROOT / ".goldenpath" / "bench" / "preflight")
        with stack.running(spec):
            ctx = preflight.Context(root=ROOT, settings=settings)
            checks = preflight.all_checks(ctx)
            os.environ.update(environ)  # the auth-ports check reads the process environment
            together, alone, shell = [], [], []
            for _ in range(args.repeat):
                together.append(timed(lambda: preflight.run_checks(checks, ctx)))
                alone.append(timed(lambda: [preflight.run_one(c, ctx) for c in checks]))
                shell.append(timed(lambda: [subprocess.run(c, capture_output=True, check=False)
                                            for c in shell_commands(ctx, args.timeout)]))
            results = preflight.run_checks(checks, ctx)

    table = Table(title=f"preflight, {len(checks)} checks, one timing out ({args.timeout:g}s)",
                  title_justify="left")
    for column in ("way", "seconds (best)", "ratio to preflight"):
        table.add_column(column, justify="right")
    best = min(together)
    for name, runs in (("preflight (concurrent)", together), ("same checks in sequence", alone),
                       (f"{len(shell_commands(ctx, args.timeout))} shell commands in sequence", shell)):
        table.add_row(name, f"{min(runs):.2f}", f"{min(runs) / best:.2f}")
    console.print(table)
    console.print("check statuses: " + ", ".join(f"{r.name}={r.status}" for r in results))
    ratio = best / min(alone)
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    console.print(f"preflight / sequential = {ratio:.2f}; {verdict} the {TARGET_RATIO} target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
