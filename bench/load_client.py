"""Load client benchmark: goldenpath's load runner against Locust, same scenario, same refstack.

N concurrent users on loopback (default 1,000) against a refstack this script starts on free
ports. Each user logs in (E2E bypass), opens a WebSocket, sends M messages one after the other
and reads every event of each run. goldenpath's runner (``python -m goldenpath.load``) checks
every frame against the contract and the per-user ledger; the Locust user
(bench/locust_ws_user.py, websocket-client) only decodes each frame and logs it; a third row
runs goldenpath.locust's GoldenPathUser under Locust (the same checks as the runner, on gevent,
for information: issue #13). All run as
child processes, and the client CPU time is each child's own (user + system, from
``getrusage(RUSAGE_CHILDREN)``), logins and connects included. Prints CPU seconds per 1,000
events and the ratio of events per client CPU-second (target: >= 3x Locust's).

    python bench/load_client.py [--users 1000] [--messages 5] [--profile]

``--profile`` then runs goldenpath's runner once more under cProfile (not counted above) and
prints where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from goldenpath.core import stack
from goldenpath.core.errors import StackError
from goldenpath.core.http import free_port
from goldenpath.core.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 3.0
CHILD_TIMEOUT_S = 600


@dataclass(frozen=True)
class Result:
    client: str
    users: int
    events: int
    cpu_s: float
    wall_s: float
    note: str = ""

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu_s / self.events * 1000 if self.events else float("inf")

    @property
    def events_per_cpu_s(self) -> float:
        return self.events / self.cpu_s if self.cpu_s else 0.0


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    import time

    before, started = children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
    return children_cpu() - before, time.perf_counter() - started, proc


def goldenpath_run(env: dict[str, str], users: int, messages: int, reports: Path,
                   profile: Path | None) -> Result:
    argv = [sys.executable]
    if profile is not None:
        argv += ["-m", "cProfile", "-o", str(profile)]
    argv += ["-m", "goldenpath.load", "--users", str(users), "--messages", str(messages),
             "--ramp", "200/s", "--duration", "300s", "--together"]
    cpu, wall, proc = run_child(argv, {**env, "GOLDENPATH_REPORTS_DIR": str(reports)})
    try:
        report = json.loads((reports / "load.json").read_text())
    except (OSError, ValueError):
        raise SystemExit(f"goldenpath's run wrote no report (exit {proc.returncode}): "
                         f"{(proc.stdout + proc.stderr)[-600:]}") from None
    totals = report["totals"]
    pongs = totals["users_connected"] * 4  # its clock pings: extra work Locust does not do
    run_events = totals["events"] - pongs
    failed = [g["name"] for g in report["gates"] if g["passed"] is False]
    note = f"{totals['runs_done']} runs, every frame checked; status {report['status']}"
    note += f" (failed: {', '.join(failed)})" if failed else ""
    return Result("goldenpath", totals["users_connected"], run_events, cpu, wall, note)


def locust_run(env: dict[str, str], settings_ws: str, auth: str, key: str, users: int, messages: int,
               work: Path) -> Result:  # fmt: skip
    result = work / "locust-result.json"
    child_env = {**env, "BENCH_AUTH_URL": auth, "BENCH_WS_URL": settings_ws, "BENCH_E2E_KEY": key,
                 "BENCH_MESSAGES": str(messages), "BENCH_USERS": str(users),
                 "BENCH_RESULT": str(result)}  # fmt: skip
    argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locust_ws_user.py"), "--headless",
            "-u", str(users), "-r", "200", "--run-time", "300s", "--only-summary",
            "--loglevel", "WARNING", "--stop-timeout", "10"]  # fmt: skip
    cpu, wall, proc = run_child(argv, child_env)
    try:
        counts = json.loads(result.read_text())
    except (OSError, ValueError):
        raise SystemExit(f"locust wrote no result (exit {proc.returncode}): "
                         f"{(proc.stdout + proc.stderr)[-600:]}") from None
    # Counted by the user file itself: Locust's --csv file lags up to a second behind.
    events = int(counts["frames"])
    note = f"{counts['users_done']} users done, frames decoded and logged, nothing checked"
    return Result("locust", users, events, cpu, wall, note)


def goldenpath_locust_run(env: dict[str, str], users: int, messages: int, reports: Path) -> Result:
    """goldenpath.locust's GoldenPathUser under Locust (one process, like the baseline): the
    same scenario with every frame checked by the load runner's ledger, on gevent."""
    argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "goldenpath" / "locust" / "locustfile.py"),
            "--headless", "-u", str(users), "-r", "200", "--run-time", "300s", "--only-summary",
            "--loglevel", "WARNING", "--gp-messages", str(messages), "--gp-think", "0"]  # fmt: skip
    cpu, wall, proc = run_child(argv, {**env, "GOLDENPATH_REPORTS_DIR": str(reports)})
    try:
        report = json.loads((reports / "locust.json").read_text())
    except (OSError, ValueError):
        raise SystemExit(f"GoldenPathUser's run wrote no report (exit {proc.returncode}): "
                         f"{(proc.stdout + proc.stderr)[-600:]}") from None
    metrics = {m["metric"]: m for m in report["sla"]["metrics"]}
    events = int(metrics.get("event_delivery", {}).get("count", 0))  # run events, pongs left out
    runs = sum(report["outcomes"].values())
    return Result("gp-locust", users, events, cpu, wall,
                  f"GoldenPathUser: {runs} runs, every frame checked; status {report['status']}")


def print_profile(path: Path, top: int = 18) -> None:
    import pstats

    print(f"\nwhere goldenpath's client time goes (cProfile, top {top} by own time):")
    pstats.Stats(str(path)).sort_stats("tottime").print_stats(top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="also profile goldenpath's runner (cProfile)")
    args = parser.parse_args()
    if args.users <= 0 or args.messages <= 0:
        print("error: --users and --messages must be positive", file=sys.stderr)
        return 2
    key = secrets.token_urlsafe(24)
    backend, auth = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    settings = load_settings(ROOT, "local", environ={"BACKEND_URL": backend, "AUTH_SERVICE_URL": auth})
    state = Path(tempfile.mkdtemp(prefix="gp-load-bench-"))
    spec = stack.refstack_spec(settings, state_dir=state / "refstack", extra_env={
        "E2E_OAUTH_SIMULATION_KEY": key, "REFSTACK_DATA_DIR": str(state / "data")})
    env = {**os.environ, "BACKEND_URL": backend, "AUTH_SERVICE_URL": auth, "E2E_OAUTH_SIMULATION_KEY": key,
           "LOAD_ALLOWED": "true", "GOLDENPATH_AUTOSTART": "0"}  # fmt: skip
    env.pop("GOLDENPATH_RESOLVED", None)
    results: list[Result] = []
    try:
        with stack.running(spec):
            results.append(goldenpath_run(env, args.users, args.messages, state / "reports", None))
            results.append(locust_run(env, settings.websocket_url, auth, key, args.users, args.messages,
                                      state))
            results.append(goldenpath_locust_run(env, args.users, args.messages, state / "locust-reports"))
            if args.profile:
                # A separate run: the profiler's own overhead must not count in the CPU compared above.
                goldenpath_run(env, args.users, args.messages, state / "profiled", state / "load.prof")
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"\n{args.users} concurrent users x {args.messages} messages on loopback against refstack "
          f"(2 cores shared with it)\n")
    print(f"{'client':<11} {'users':>6} {'events':>8} {'wall s':>7} {'CPU s':>7} {'CPU s/1k events':>16} "
          f"{'events/CPU-s':>13}  note")
    for r in results:
        print(f"{r.client:<11} {r.users:>6} {r.events:>8} {r.wall_s:>7.1f} {r.cpu_s:>7.2f} "
              f"{r.cpu_per_1000:>16.3f} {r.events_per_cpu_s:>13,.0f}  {r.note}")
    ours, theirs, checked = results
    ratio = ours.events_per_cpu_s / theirs.events_per_cpu_s if theirs.events_per_cpu_s else float("inf")
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"\nratio: goldenpath handles {ratio:.2f}x Locust's events per client CPU-second; "
          f"{verdict} the {TARGET_RATIO:g}x target")
    # Informative, not gated (issue #13): what the checks cost under Locust's gevent client.
    gp_locust = ours.events_per_cpu_s / checked.events_per_cpu_s if checked.events_per_cpu_s else float("inf")
    print(f"GoldenPathUser under Locust: {gp_locust:.2f}x fewer events per client CPU-second than "
          "goldenpath's asyncio runner, with the same checks")
    if args.profile:
        print_profile(state / "load.prof")
    return 0


if __name__ == "__main__":
    sys.exit(main())
