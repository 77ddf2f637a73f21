"""`invoke preflight`: every environmental blocker of the strategy, found in seconds.

Each check is a small function returning an Outcome; ``run_checks`` runs them all at
once, times them, and turns any unexpected exception into a failed row with its message,
so one broken check never hides the others' answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from goldenpath.checks import ports
from goldenpath.checks.health import NamedProbe, all_probes
from goldenpath.checks.probes import ProbePolicy, run_probe
from goldenpath.core.errors import ConfigError, DockerUnavailable
from goldenpath.core.settings import Settings, load_settings
from goldenpath.hygiene import clean as docker_clean
from goldenpath.hygiene import usage as docker_usage
from goldenpath.hygiene.model import format_size

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
COLLECT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Outcome:
    status: str
    detail: str
    remediation: str = ""


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str
    seconds: float
    detail: str
    remediation: str = ""


@dataclass
class Context:
    """What every check may read: the profile was resolved before any check runs."""

    root: Path
    settings: Settings
    fix: bool = False
    applied: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Check:
    name: str
    help: str
    run: Callable[[Context], Outcome]


class _Skip(Exception):
    """Raised by a check that cannot run; becomes a `skip` row with the reason."""


def check_profile(ctx: Context) -> Outcome:
    s = ctx.settings
    return Outcome(OK, f"{s.profile}: backend {s.backend_url}, auth {s.auth_service_url}")


TOOLS = (("git", True), ("nox", True), ("uv", False), ("docker", False), ("pg_isready", False))


def check_tools(ctx: Context) -> Outcome:
    missing = [name for name, _ in TOOLS if shutil.which(name) is None]
    required = [name for name, needed in TOOLS if needed and name in missing]
    if required:
        return Outcome(FAIL, f"missing: {', '.join(required)}", "python3 -m pip install -e .")
    if missing:
        return Outcome(WARN, f"optional tools missing: {', '.join(missing)}",
                       "install them for the layers that use them (see README)")
    return Outcome(OK, ", ".join(name for name, _ in TOOLS) + f", Python {sys.version.split()[0]}")


def check_docker(ctx: Context) -> Outcome:
    """Reachable, and the disk under Docker's root below the high watermark (--fix cleans)."""
    try:
        found = docker_usage.usage(timeout_s=10.0)
    except DockerUnavailable as exc:
        raise _Skip(str(exc)) from None
    if found.disk is None:
        return Outcome(WARN, f"engine reachable; disk under {found.root_dir} not visible: "
                             f"{found.disk_problem}", "check the disk on the docker host")
    policy = docker_clean.Policy()
    used = found.disk.used_percent
    total = format_size(found.disk.total_bytes)
    headroom = f"{used:.1f}% of {total} used under {found.root_dir}"
    if used <= policy.low_percent:
        return Outcome(OK, headroom)
    if ctx.fix:
        result = docker_clean.clean(policy)
        ctx.applied.append(docker_clean.summary_line(result))
        return Outcome(OK if result.ok else FAIL, f"{headroom}; cleaned: {docker_clean.summary_line(result)}")
    status = FAIL if used > policy.high_percent else WARN
    return Outcome(status, headroom, "invoke docker.clean --dry-run, then invoke preflight --fix")


def check_auth_ports(ctx: Context) -> Outcome:
    settings = ctx.settings
    profiles = sorted((ctx.root / "envs").glob("*.env"))
    report = ports.check(settings, ctx.root, profiles, os.environ)
    if report.conflicts and ctx.fix and report.fix:
        ctx.applied += ports.apply_fix(report.fix, ctx.root, settings.profile,
                                       write_profile=False, environ=os.environ)
        settings = load_settings(ctx.root, settings.profile)
        report = ports.check(settings, ctx.root, profiles, os.environ)
    if not report.conflicts:
        return Outcome(OK, f"auth service at {settings.auth_service_url}")
    remedy = ("invoke auth.ports --fix" if report.fix else
              "start the auth service, or point AUTH_SERVICE_URL at it (invoke auth.ports)")
    return Outcome(FAIL, "; ".join(c.message for c in report.conflicts), remedy)


def probe_check(named: NamedProbe, remediation: str) -> Callable[[Context], Outcome]:
    name, target, probe = named

    def run(ctx: Context) -> Outcome:
        settings = ctx.settings
        policy = ProbePolicy(timeout_s=settings.timeout_s, deadline_s=settings.timeout_s * 2)
        result = run_probe(name, target, probe, policy)
        return Outcome(result.status, f"{result.target}: {result.detail}",
                       "" if result.ok else remediation)

    return run


def check_collection(ctx: Context) -> Outcome:
    """The collect session's own audit, run as that session (its venv holds the tests' deps)."""
    report = ctx.settings.reports_dir / "collect.json"
    report.unlink(missing_ok=True)
    try:
        # The resolved settings, --app-root included, handed on to the session.
        proc = subprocess.run([sys.executable, "-m", "nox", "-s", "collect", "--reuse-venv=yes"],
                              cwd=ctx.root, env={**os.environ, **ctx.settings.as_env()},
                              capture_output=True, text=True,
                              timeout=COLLECT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return Outcome(FAIL, f"collection took over {COLLECT_TIMEOUT_S:.0f}s", "nox -s collect")
    if not report.exists():
        last = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        return Outcome(FAIL, f"the collect session did not run: {last[0]}", "nox -s collect")
    data = json.loads(report.read_text())
    errors = data["errors"]
    if errors:
        kinds = sorted({e["kind"] for e in errors})
        causes = data.get("root_causes") or []
        first = f"; first cause: {causes[0]['summary']}" if causes else ""
        return Outcome(FAIL, f"{len(errors)} collection error(s): {', '.join(kinds)}{first}",
                       "nox -s collect (shows each file and missing name)")
    return Outcome(OK, f"{data['collected']} tests collected in {len(data['layers'])} layers")


def service_checks(ctx: Context) -> list[Check]:
    """One check per service the profile configures."""
    return [
        Check(name, f"{name} answers its own protocol",
              probe_check(named, "start it (invoke stack.up for the reference stack) or fix "
                                 "its URL in the profile; details: invoke staging.health"))
        for named in all_probes(ctx.settings) if (name := named[0].replace(" ", ":"))
    ]


def all_checks(ctx: Context) -> list[Check]:
    return [
        Check("profile", "the profile loads and validates", check_profile),
        Check("tools", "the tools the layers need are installed", check_tools),
        Check("docker", "the docker engine answers and its disk has headroom", check_docker),
        Check("auth-ports", "auth and backend addresses agree with what answers", check_auth_ports),
        *service_checks(ctx),
        Check("collection", "pytest collects every layer without errors", check_collection),
    ]


def select(checks: Sequence[Check], only: Sequence[str], skip: Sequence[str]) -> list[Check]:
    """--only/--skip by name or name prefix (`auth` selects every auth check)."""
    names = [check.name for check in checks]
    for wanted in [*only, *skip]:
        if not any(_matches(name, wanted) for name in names):
            raise ConfigError(f"unknown check {wanted!r}; checks: {', '.join(names)}")
    return [c for c in checks
            if (not only or any(_matches(c.name, w) for w in only))
            and not any(_matches(c.name, s) for s in skip)]


def _matches(name: str, wanted: str) -> bool:
    return name == wanted or name.startswith(wanted + ":") or name.startswith(wanted + "-")


def run_one(check: Check, ctx: Context) -> CheckResult:
    started = time.perf_counter()
    try:
        outcome = check.run(ctx)
    except _Skip as exc:
        outcome = Outcome(SKIP, str(exc))
    except Exception as exc:  # a check's bug must not hide the other checks
        outcome = Outcome(FAIL, f"the check itself failed: {type(exc).__name__}: {exc}",
                          "report this as a goldenpath bug")
    return CheckResult(check.name, outcome.status, time.perf_counter() - started,
                       outcome.detail, outcome.remediation)


def run_checks(checks: Sequence[Check], ctx: Context,
               on_done: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """All checks at once; results come back in the checks' order."""
    if not checks:
        return []
    results: dict[str, CheckResult] = {}
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = {pool.submit(run_one, check, ctx): check for check in checks}
        for future in as_completed(futures):
            result = future.result()
            results[result.name] = result
            if on_done:
                on_done(result)
    return [results[check.name] for check in checks]
