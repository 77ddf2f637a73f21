"""Invoke tasks for ops: `invoke --list` shows them, `invoke --help TASK` explains one.

Every task takes `--env <profile>` (default: GOLDENPATH_ENV, else local) and
`--json <file>` (write its result as JSON). Exit codes: 0 ok, 1 a check failed,
2 a usage or configuration error.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from goldenpath.core import stack as stack_process
from goldenpath.core.errors import ConfigError, DockerError, PolicyError, StackError
from goldenpath.core.files import write_atomically
from goldenpath.core.settings import Settings, load_settings
from goldenpath.core.target import local_secrets, unconfigured
from goldenpath.output.terminal import make_console

if TYPE_CHECKING:
    from goldenpath.checks.ports import PortReport
    from goldenpath.checks.probes import ProbeResult
    from goldenpath.load.config import LoadPlan

# The checks, the docker SDK and the tables are imported inside the tasks that use them:
# importing them all costs about a second, and a bad flag must be refused well before that.

ROOT = Path(__file__).resolve().parent
# Plain text at full width in a pipe or CI log: no URL folded mid-token (output.terminal).
console = make_console()

ENV_HELP = "profile to use (a file in envs/); default: GOLDENPATH_ENV, else local"
JSON_HELP = "also write the result as JSON to this file"


def settings_for(env: str) -> Settings:
    try:
        return load_settings(ROOT, env or None)
    except ConfigError as exc:
        raise Exit(f"error: {exc}", code=2) from None


APP_ROOT_HELP = ("the application's repository (default: GOLDENPATH_APP_ROOT): the collection audit "
                 "and the auth port checks read its files")


def with_app_root(settings: Settings, app_root: str) -> Settings:
    """--app-root wins over GOLDENPATH_APP_ROOT; checked here, before any work."""
    if app_root:
        path = Path(app_root).expanduser().resolve()
        if not path.is_dir():
            raise Exit(f"error: --app-root {app_root}: not a directory; name the application's "
                       "repository", code=2)
        settings = settings.with_values({"GOLDENPATH_APP_ROOT": str(path)}, "--app-root")
    elif settings.app_root is not None and not settings.app_root.is_dir():
        raise Exit(f"error: GOLDENPATH_APP_ROOT={settings.get('GOLDENPATH_APP_ROOT')} "
                   f"({settings.origins['GOLDENPATH_APP_ROOT']}): not a directory", code=2)
    return settings


def json_output(path: str) -> Path | None:
    """The --json file, checked before any work: its directory must exist and be writable.

    Checked first so that a typo costs a second, not a whole run; no directory is created.
    """
    if not path:
        return None
    target = Path(path)
    parent = target.parent
    if target.is_dir():
        raise Exit(f"error: --json {path} is a directory; name a file", code=2)
    if parent.exists() and not parent.is_dir():
        raise Exit(f"error: --json {path}: {parent} is a file, not a directory", code=2)
    if not parent.is_dir():
        raise Exit(f"error: --json {path}: directory {parent} does not exist; create it first", code=2)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise Exit(f"error: --json {path}: directory {parent} is not writable", code=2)
    return target


def write_json(target: Path | None, payload: Any) -> None:
    if target is None:
        return
    try:
        write_atomically(target, json.dumps(payload, indent=2, default=str) + "\n")
    except OSError as exc:
        raise Exit(f"error: cannot write --json {target}: {exc.strerror or exc}", code=2) from None


def flag_without_value(flag: str, values: list[str] | None) -> bool:
    """invoke hands a repeatable flag given with no value over as an empty list, the same
    as a flag not given at all; only the command line tells them apart."""
    return not values and flag in sys.argv


def number(flag: str, value: str, *, minimum: float, whole: bool = False) -> float:
    """A numeric flag, parsed here so a typo is one line and exit 2, not invoke's traceback."""
    try:
        parsed = float(value)
    except ValueError:
        parsed = float("nan")
    if not parsed >= minimum or (whole and not parsed.is_integer()) or parsed == float("inf"):
        kind = "a whole number" if whole else "a number"
        raise Exit(f"error: --{flag} takes {kind} of at least {minimum:g}, not {value!r}", code=2)
    return parsed


def spec_for(settings: Settings) -> stack_process.StackSpec:
    """The background stack: its pid file, log and data live in GOLDENPATH_STACK_DIR."""
    return stack_process.refstack_spec(settings, state_dir=settings.stack_dir)


def stack_health(settings: Settings) -> list[ProbeResult]:
    from goldenpath.checks.health import http_probes
    from goldenpath.checks.probes import ProbePolicy, run_probes
    from goldenpath.output.tables import probe_table

    rows = run_probes(http_probes(settings), ProbePolicy(timeout_s=settings.timeout_s))
    console.print(probe_table("reference stack", rows))
    return rows


BACKEND_FLAGS = {"postgres": "DATABASE_URL", "redis": "REDIS_URL", "clickhouse": "CLICKHOUSE_URL"}


@task(help={
    "env": ENV_HELP,
    "postgres": "require PostgreSQL (DATABASE_URL) instead of the embedded SQLite",
    "redis": "require Redis (REDIS_URL) for sessions and token revocation",
    "clickhouse": "require ClickHouse (CLICKHOUSE_URL) for per-event analytics",
    "faults": "inject faults, e.g. 'drop:tool_completed,leak:0.1' (see docs/refstack.md)",
    "json": JSON_HELP,
})
def up(c: Context, env: str = "", postgres: bool = False, redis: bool = False,
       clickhouse: bool = False, faults: str = "", json: str = "") -> None:
    """Start the reference stack in the background on the profile's ports; wait until healthy."""
    out = json_output(json)
    settings = settings_for(env)
    wanted = {"postgres": postgres, "redis": redis, "clickhouse": clickhouse}
    for flag, on in wanted.items():
        if on and not settings.get(BACKEND_FLAGS[flag]):
            raise Exit(f"error: --{flag} needs {BACKEND_FLAGS[flag]} (set it in .env or the "
                       "environment)", code=2)
    # Secrets the profile lacks are made up for this stack and handed to the layers that
    # use it through a file only its owner can read (core.target.stack_up_secrets).
    made = local_secrets(settings)
    settings = settings.with_values(made, "generated by stack.up") if made else settings
    spec = stack_process.refstack_spec(settings, faults=faults or None,
                                       state_dir=settings.stack_dir)
    running = stack_process.find_running(spec)
    if running:
        raise Exit(f"error: the stack is already running (pid {running.pid}); "
                   "`invoke stack.down` first", code=1)
    spec.secrets_path.unlink(missing_ok=True)  # a dead stack's, if any
    try:
        if made:
            stack_process.write_secrets(spec, {"BACKEND_URL": settings.backend_url,
                                               "AUTH_SERVICE_URL": settings.auth_service_url}, made)
        started = stack_process.start(spec)
    except (StackError, OSError) as exc:
        spec.secrets_path.unlink(missing_ok=True)
        why = exc if isinstance(exc, StackError) else f"cannot start the stack: {exc.strerror or exc}"
        raise Exit(f"error: {why}", code=1) from None
    rows = stack_health(settings)
    if made:
        console.print(f"generated {', '.join(sorted(made))} for this stack: in {spec.secrets_path} "
                      "(mode 0600), read by the layers that use it")
    console.print(f"stack up (pid {started.pid}); log: {spec.log_path}")
    write_json(out, {"pid": started.pid, "probes": [asdict(r) for r in rows]})


@task(help={"env": ENV_HELP, "json": JSON_HELP})
def down(c: Context, env: str = "", json: str = "") -> None:
    """Stop the background reference stack and everything it started."""
    out = json_output(json)
    spec = spec_for(settings_for(env))
    running = stack_process.find_running(spec)
    if running is None:
        spec.secrets_path.unlink(missing_ok=True)  # a dead stack's secrets open nothing
        console.print("no stack running")
        write_json(out, {"stopped": None})
        return
    stack_process.stop(running)
    console.print(f"stack stopped (pid {running.pid})")
    write_json(out, {"stopped": running.pid})


@task(help={"env": ENV_HELP, "json": JSON_HELP})
def status(c: Context, env: str = "", json: str = "") -> None:
    """Liveness, readiness and dependencies of both services; exit 1 unless all healthy."""
    out = json_output(json)
    settings = settings_for(env)
    running = stack_process.find_running(spec_for(settings))
    rows = stack_health(settings)
    console.print(f"background stack: pid {running.pid}" if running else
                  "background stack: not started by `invoke stack.up`")
    write_json(out, {"pid": running.pid if running else None,
                      "probes": [asdict(r) for r in rows]})
    if not all(row.ok for row in rows):
        raise Exit("error: the target is not healthy", code=1)


@task(help={"env": ENV_HELP, "lines": "how many of the last lines to show", "json": JSON_HELP})
def logs(c: Context, env: str = "", lines: str = "50", json: str = "") -> None:
    """The last lines of the background stack's log."""
    out = json_output(json)
    count = int(number("lines", lines, minimum=1, whole=True))
    log_path = spec_for(settings_for(env)).log_path
    if not log_path.exists():
        raise Exit(f"error: no log at {log_path}; start the stack with `invoke stack.up`", code=1)
    text = log_path.read_text(errors="replace").splitlines()[-count:]
    console.print("\n".join(text), markup=False, highlight=False)
    write_json(out, {"log": str(log_path), "lines": text})


def port_report(settings: Settings) -> PortReport:
    from goldenpath.checks import ports as port_alignment

    try:
        return port_alignment.check(settings, ROOT, sorted((ROOT / "envs").glob("*.env")), os.environ)
    except ConfigError as exc:
        raise Exit(f"error: {exc}", code=2) from None


@task(name="ports", help={
    "env": ENV_HELP,
    "fix": "write the resolved address into .env (atomically, after a backup in .env.bak)",
    "write_profile": "with --fix, also write it into the committed profile envs/<profile>.env",
    "app_root": APP_ROOT_HELP,
    "write_app": "with --fix, also align this one application env file (atomically, after a "
                 "backup in FILE.bak); goldenpath never writes the application's files otherwise",
    "json": JSON_HELP,
})
def auth_ports(c: Context, env: str = "", fix: bool = False, write_profile: bool = False,
               app_root: str = "", write_app: str = "", json: str = "") -> None:
    """Find auth/backend port mismatches: every declaration against what really answers."""
    from goldenpath.checks import ports as port_alignment
    from goldenpath.checks.app import load_app
    from goldenpath.output.tables import ports_tables

    out = json_output(json)
    if write_profile and not fix:
        raise Exit("error: --write-profile only goes with --fix", code=2)
    if write_app and not fix:
        raise Exit("error: --write-app only goes with --fix", code=2)
    settings = with_app_root(settings_for(env), app_root)
    if write_app and settings.app_root is None:
        raise Exit("error: --write-app names one of the application's files: give --app-root "
                   "(or GOLDENPATH_APP_ROOT) too", code=2)
    report = port_report(settings)
    for table in ports_tables(report):
        console.print(table)
    done: list[str] = []
    if fix and (report.fix or write_app):
        try:
            if report.fix:
                done = port_alignment.apply_fix(report.fix, ROOT, settings.profile,
                                                write_profile=write_profile, environ=os.environ)
            if write_app and settings.app_root is not None:
                app = load_app(ROOT / "pyproject.toml", settings.app_root)
                done += port_alignment.apply_app_fix(report, app, write_app)
        except ConfigError as exc:
            raise Exit(f"error: {exc}", code=2) from None
        console.print("\n".join(done), markup=False, highlight=False)
        report = port_report(with_app_root(settings_for(env), app_root))
    elif report.fix:
        console.print(f"fixable: {report.fix.reason}; `invoke auth.ports --fix` sets "
                      + ", ".join(f"{k}={v}" for k, v in report.fix.values.items()), markup=False)
    write_json(out, {**report.as_dict(), "applied": done})
    if report.conflicts:
        raise Exit(f"error: {len(report.conflicts)} conflict(s) remain", code=1)
    console.print("auth ports aligned: nothing to fix")


@task(iterable=["only", "skip"], help={
    "env": ENV_HELP,
    "only": "run only this check (repeatable; a prefix like 'auth' selects its group)",
    "skip": "skip this check (repeatable)",
    "fix": "apply the safe remediations: auth port alignment into .env, docker clean by policy",
    "app_root": APP_ROOT_HELP,
    "json": JSON_HELP,
})
def preflight(c: Context, env: str = "", only: list[str] | None = None, skip: list[str] | None = None,
              fix: bool = False, app_root: str = "", json: str = "") -> None:
    """Every environmental blocker at once: profile, tools, docker, auth ports, services, collection."""
    out = json_output(json)
    if flag_without_value("--only", only) or flag_without_value("--skip", skip) or any(
            not name.strip() for name in [*(only or []), *(skip or [])]):
        raise Exit("error: --only and --skip take a check's name, e.g. --only auth-ports", code=2)
    settings = with_app_root(settings_for(env), app_root)
    # Imported only now: the checks bring in the data-service and docker clients (about a
    # second), and a bad flag or profile must be refused before that.
    from rich.live import Live

    from goldenpath.checks import preflight as checks
    from goldenpath.output.tables import preflight_table
    from goldenpath.output.terminal import end_live

    ctx = checks.Context(root=ROOT, settings=settings, fix=fix)
    try:
        chosen = checks.select(checks.all_checks(ctx), only or [], skip or [])
    except ConfigError as exc:
        raise Exit(f"error: {exc}", code=2) from None
    done: list[checks.CheckResult] = []
    pending = [check.name for check in chosen]
    with Live(preflight_table(done, pending), console=console, transient=False) as live:
        def progress(result: checks.CheckResult) -> None:
            done.append(result)
            pending.remove(result.name)
            live.update(preflight_table(done, pending))

        results = checks.run_checks(chosen, ctx, on_done=progress)
        live.update(preflight_table(results, []))
    end_live(console)
    for line in ctx.applied:
        console.print(f"fixed: {line}")
    write_json(out, {"profile": ctx.settings.profile, "checks": [asdict(r) for r in results],
                     "applied": ctx.applied})
    failed = [r.name for r in results if r.status == "fail"]
    if failed:
        raise Exit(f"preflight failed: {', '.join(failed)}", code=1)


@task(name="health", help={
    "env": ENV_HELP,
    "timeout": "seconds one attempt of a probe may take (default: GOLDENPATH_TIMEOUT_S)",
    "retries": "attempts after the first failure",
    "interval": "seconds between attempts",
    "deadline": "seconds a probe may take in all, retries included",
    "successes": "consecutive successes a probe needs to pass",
    "json": JSON_HELP,
})
def staging_health(c: Context, env: str = "", timeout: str = "", retries: str = "2",
                   interval: str = "1", deadline: str = "30", successes: str = "1",
                   json: str = "") -> None:
    """Protocol-aware probes of every service the profile names, all at once."""
    from goldenpath.checks.health import all_probes
    from goldenpath.checks.probes import ProbePolicy, run_probes
    from goldenpath.output.tables import probe_table

    out = json_output(json)
    settings = settings_for(env)
    if unconfigured(settings):
        # The built-in loopback defaults are nobody's staging: probing them says nothing.
        raise Exit(f"error: no target configured in profile {settings.profile!r}: set "
                   f"{' and '.join(unconfigured(settings))} in envs/{settings.profile}.env "
                   "or the environment", code=2)
    policy = ProbePolicy(
        timeout_s=number("timeout", timeout, minimum=0.001) if timeout else settings.timeout_s,
        retries=int(number("retries", retries, minimum=0, whole=True)),
        interval_s=number("interval", interval, minimum=0),
        deadline_s=number("deadline", deadline, minimum=0.001),
        successes=int(number("successes", successes, minimum=1, whole=True)),
    )
    rows = run_probes(all_probes(settings), policy)
    console.print(probe_table(f"staging health (profile {settings.profile})", rows))
    write_json(out, {"profile": settings.profile, "probes": [asdict(r) for r in rows]})
    failed = [row.name for row in rows if row.status == "fail"]
    if failed:
        raise Exit(f"error: unhealthy: {', '.join(failed)}", code=1)


@task(name="usage", help={"env": ENV_HELP, "json": JSON_HELP})
def docker_usage(c: Context, env: str = "", json: str = "") -> None:
    """Images, containers, volumes and build cache, with reclaimable bytes and free disk."""
    from goldenpath.hygiene import usage as docker_disk
    from goldenpath.output.tables import usage_table

    out = json_output(json)
    settings_for(env)
    try:
        found = docker_disk.usage()
    except DockerError as exc:
        raise Exit(f"error: {exc}", code=1) from None
    console.print(usage_table(found))
    write_json(out, asdict(found))


def percent(flag: str, value: str) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        message = f"error: --{flag} takes a percentage of the disk, e.g. 85, not {value!r}"
        raise Exit(message, code=2) from None
    if not 0 < number < 100:
        raise Exit(f"error: --{flag} must be between 0 and 100, not {value}", code=2)
    return number


# No automatic short flags: -h would stand for --high and hide --help.
@task(name="clean", iterable=["keep"], auto_shortflags=False, help={
    "env": ENV_HELP,
    "high": "start evicting above this % of the disk used (kubelet-style high watermark; default 85)",
    "low": "evict until below this % used (low watermark; default 80)",
    "threshold": "instead of watermarks: evict images until they total below this size, e.g. 10GB",
    "min_age": "never remove anything used more recently than this, e.g. 1h, 2d (default 1h)",
    "keep": "keep images whose tag matches this regex (repeatable)",
    "keep_label": "keep images carrying this label, key or key=value (default goldenpath.keep=true)",
    "containers": "also remove stopped containers older than --min-age",
    "volumes": "also remove unused anonymous volumes older than --min-age",
    "build_cache_keep": "prune build cache down to this size, e.g. 5GB",
    "dry_run": "print the plan with bytes; remove nothing",
    "json": JSON_HELP,
})
def docker_clean(c: Context, env: str = "", high: str = "", low: str = "",
                 threshold: str = "", min_age: str = "", keep: list[str] | None = None,
                 keep_label: str = "goldenpath.keep=true", containers: bool = False,
                 volumes: bool = False, build_cache_keep: str = "", dry_run: bool = False,
                 json: str = "") -> None:
    """Free docker disk by policy: dangling images first, then least recently used."""
    from goldenpath.hygiene import clean as docker_cleaning
    from goldenpath.output.tables import clean_table

    out = json_output(json)
    settings_for(env)
    try:
        policy = docker_cleaning.policy_from_options(
            high=percent("high", high), low=percent("low", low), threshold=threshold,
            min_age=min_age, keep=keep or (), keep_label=keep_label, containers=containers, volumes=volumes,
            build_cache_keep=build_cache_keep)
        result = docker_cleaning.clean(policy, dry_run=dry_run)
    except PolicyError as exc:
        raise Exit(f"error: {exc}", code=2) from None
    except DockerError as exc:
        raise Exit(f"error: {exc}", code=1) from None
    console.print(clean_table(result))
    write_json(out, asdict(result))
    if not result.ok:
        raise Exit("error: some objects could not be removed (see the table)", code=1)


@task(name="load", help={
    "env": ENV_HELP,
    "users": "simulated users, each with its own account (default: MULTI_USER_USERS); more than "
             "SLA_CONCURRENT_USERS needs LOAD_ALLOWED=true",
    "messages": "messages each user sends (default: MULTI_USER_MESSAGES)",
    "ramp": "users started per second, e.g. 50/s (0: all at once)",
    "think": "pause between a user's messages, with a unit, e.g. 0.5s",
    "duration": "stop sending after this long, with a unit, e.g. 60s (cap GOLDENPATH_LOAD_MAX_DURATION_S)",
    "sockets_per_user": "sockets each user opens",
    "together": "start sending only once every user is connected",
    "pid": "the target's process id, to read its memory (default: the backend port's listener)",
    "json": JSON_HELP,
    "engine": "asyncio (goldenpath's runner, one process) or locust (Locust's master and workers; "
              "report in <reports>/locust.json)",
    "workers": "locust engine: local Locust worker processes (0: a single process)",
})
def load(c: Context, env: str = "", users: str = "", messages: str = "", ramp: str = "100/s",
         think: str = "0s", duration: str = "60s", sockets_per_user: str = "1", together: bool = False,
         pid: str = "", json: str = "", engine: str = "asyncio", workers: str = "") -> None:
    """The golden path at load: every event of every user checked; report in <reports>/load.json."""
    from goldenpath.load.config import plan_from_flags

    if engine not in ("asyncio", "locust"):
        raise Exit(f"error: --engine must be asyncio or locust, got {engine!r}", code=2)
    if workers and engine != "locust":
        raise Exit("error: --workers is for --engine locust", code=2)
    out = json_output(json)
    settings = settings_for(env)
    try:
        plan = plan_from_flags(users or None, messages or None, ramp, think, duration, sockets_per_user,
                               together, pid or None, settings)
    except ConfigError as exc:
        raise Exit(f"error: {exc}", code=2) from None
    if engine == "locust":
        load_with_locust(plan, workers, settings)
        return
    from goldenpath.load.session import run_and_report

    code = run_and_report(settings, plan, console, also_json=out)
    if code:
        raise Exit("load: interrupted" if code == 130 else "load: a gate failed (see above)", code=code)


def load_with_locust(plan: LoadPlan, workers: str, settings: Settings) -> None:
    from goldenpath.locust import launch

    count = int(number("workers", workers, minimum=0, whole=True)) if workers else 0
    try:
        launch.check_engine_plan(plan, count)
    except ConfigError as exc:
        raise Exit(f"error: {exc}", code=2) from None
    code = launch.run(plan, count, settings)
    if code:
        raise Exit(f"load: the locust run failed (exit {code}; see {settings.reports_dir / 'locust.md'})",
                   code=code)  # fmt: skip


ns = Collection(preflight)
ns.add_collection(Collection("stack", up, down, status, logs))
ns.add_collection(Collection("auth", auth_ports))
ns.add_collection(Collection("docker", docker_usage, docker_clean))
ns.add_collection(Collection("staging", staging_health))
ns.add_task(load)
