"""``invoke load --engine locust --workers N``: the load plan run by Locust on this machine.

A headless Locust master and N local workers (Locust's ``--processes N``, which forks them:
one big machine's cores all in use), running ``goldenpath/locust/locustfile.py``. The plan
is the load runner's own (goldenpath.load.config: the same flags, caps and LOAD_ALLOWED
rules), translated into Locust's flags. The settings reach every Locust process through the
environment, already resolved (Settings.as_env), so master and workers see one profile.

This module only builds and runs a command line: it never imports Locust, whose import
monkey-patches the standard library of the process that imports it.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

from goldenpath.core.errors import ConfigError
from goldenpath.core.settings import Settings
from goldenpath.load.config import LoadPlan

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# Beyond --run-time: Locust's own stop, the workers' last evidence and the report.
SHUTDOWN_MARGIN_S = 120.0


def check_engine_plan(plan: LoadPlan, workers: int) -> None:
    """What the Locust engine cannot do, refused before anything starts (ConfigError)."""
    if workers < 0:
        raise ConfigError(f"--workers must be 0 (one process) or more, got {workers}")
    if plan.sockets_per_user != 1:
        raise ConfigError("--sockets-per-user: the locust engine opens one socket per user; "
                          "use the asyncio engine for several")  # fmt: skip
    if plan.together:
        raise ConfigError("--together is not supported by the locust engine (Locust spawns at --ramp)")
    if plan.pid is not None:
        raise ConfigError("--pid: the locust engine does not read the target's memory; "
                          "use the asyncio engine")


def command(plan: LoadPlan, workers: int, settings: Settings) -> list[str]:
    """The Locust command line for the plan."""
    ramp = plan.ramp_per_s or plan.users  # 0 means all at once
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
           "-u", str(plan.users), "-r", f"{ramp:g}", "--run-time", f"{math.ceil(plan.duration_s)}s",
           "--gp-messages", str(plan.messages), "--gp-think", f"{plan.think_s:g}",
           "--html", str(settings.reports_dir / "locust-stats.html"), "--only-summary"]  # fmt: skip
    if workers:
        cmd += ["--processes", str(workers)]
    return cmd


def run(plan: LoadPlan, workers: int, settings: Settings) -> int:
    """Run Locust to the end; its exit code (non-zero when the goldenpath report failed)."""
    check_engine_plan(plan, workers)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **settings.as_env()}
    try:
        return subprocess.run(command(plan, workers, settings), env=env, cwd=settings.root, check=False,
                              timeout=plan.duration_s + SHUTDOWN_MARGIN_S).returncode  # fmt: skip
    except subprocess.TimeoutExpired:
        # subprocess.run killed it; Locust's forked workers die with their master (heartbeat).
        return 1
