"""goldenpath's side of a Locust run: settings, the shared canary book, evidence, the report.

Registered on Locust's global event hooks when ``goldenpath.locust`` is imported (the way
Locust plugins hook in), so a locustfile needs nothing but its user class:

- ``init_command_line_parser``: ``--gp-messages N``, messages per user (default the profile's
  MULTI_USER_MESSAGES; 0: keep sending until Locust stops the run). Locust hands it on to the
  workers with the spawn message.
- ``init``: every process reads the goldenpath profile (GOLDENPATH_ENV, .env) once; a bad
  one is one line and exit 2. The master (or the only process) listens for evidence.
- ``test_start`` / ``test_stop``: a process that runs users sends its evidence every second,
  and once more when its users stopped (after their last findings).
- ``quitting``: the master writes the goldenpath report and, when it failed, makes the exit
  code non-zero even if Locust's own stats were spared every failure.

When every user has sent its messages, the master stops the run (and, headless, quits)
instead of idling until ``--run-time``: so the workers' last evidence arrives through the
ordered stop handshake, before the report is written.
"""

from __future__ import annotations

import sys
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
from locust import argument_parser, events
from locust.env import Environment
from locust.runners import STATE_RUNNING, MasterRunner, WorkerRunner

from goldenpath.core.errors import ConfigError
from goldenpath.core.settings import Settings, load_settings
from goldenpath.protocol.contract import Contract
from goldenpath.protocol.ledger import CanaryBook

from . import report
from .evidence import Evidence, Merged

MESSAGE_TYPE = "goldenpath_evidence"
FLUSH_INTERVAL_S = 1.0  # how often a worker reports; like Locust's own stats reporter, a pace


@dataclass
class Process:
    """One Locust process's goldenpath state, shared by the users it runs."""

    settings: Settings
    contract: Contract
    canaries: CanaryBook
    evidence: Evidence = field(default_factory=Evidence)
    merged: Merged | None = None  # on the master, or the only process
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    started_mono: float = field(default_factory=time.monotonic)
    ended_by: str = "Locust stopped the run (--run-time, Ctrl-C or the web UI)"
    flusher: gevent.Greenlet | None = None
    ending: bool = False
    report_paths: list[Path] = field(default_factory=list)


_PROCESSES: weakref.WeakKeyDictionary[Environment, Process] = weakref.WeakKeyDictionary()


def process_of(environment: Environment) -> Process:
    """This process's state, created on first use (ConfigError on a bad profile)."""
    existing = _PROCESSES.get(environment)
    if existing is None:
        settings = load_settings(Path.cwd())
        existing = Process(settings, Contract.from_settings(settings), CanaryBook())
        _PROCESSES[environment] = existing
    return existing


def messages_per_user(environment: Environment, process: Process, default: int | None) -> int:
    """--gp-messages, else the user class's own number, else the profile's MULTI_USER_MESSAGES."""
    chosen = getattr(environment.parsed_options, "gp_messages", None) if environment.parsed_options else None
    if chosen is not None:
        return int(chosen)
    return default if default is not None else process.settings.multi_user_messages


def think_time(environment: Environment) -> float | None:
    """--gp-think, seconds between a user's messages; None when not given."""
    chosen = getattr(environment.parsed_options, "gp_think", None) if environment.parsed_options else None
    return float(chosen) if chosen is not None else None


def _add_arguments(parser: Any, **_: Any) -> None:
    parser.add_argument("--gp-messages", type=int, default=None, include_in_web_ui=True,
                        help="goldenpath: messages each user sends, then it only listens (default: "
                             "the profile's MULTI_USER_MESSAGES; 0: until the run stops)")  # fmt: skip
    parser.add_argument("--gp-think", type=float, default=None, include_in_web_ui=True,
                        help="goldenpath: seconds between a user's messages (default: the user "
                             "class's wait_time)")  # fmt: skip


def _on_init(environment: Environment, runner: Any = None, **_: Any) -> None:
    try:
        process = process_of(environment)
    except ConfigError as exc:
        sys.stderr.write(f"goldenpath: {exc}\n")
        raise SystemExit(2) from None
    chosen = getattr(environment.parsed_options, "gp_messages", None) if environment.parsed_options else None
    think = getattr(environment.parsed_options, "gp_think", None) if environment.parsed_options else None
    if (chosen is not None and chosen < 0) or (think is not None and think < 0):
        sys.stderr.write("goldenpath: --gp-messages and --gp-think must be 0 or more\n")
        raise SystemExit(2)
    if runner is not None and not isinstance(runner, WorkerRunner):
        process.merged = Merged()
        runner.register_message(MESSAGE_TYPE, _on_evidence)


def _on_test_start(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return  # the master runs no users
    process = process_of(environment)
    if process.flusher is None or process.flusher.dead:
        process.flusher = gevent.spawn(_flush_every, environment, process)


def _on_test_stop(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return
    process = process_of(environment)
    if process.flusher is not None:
        process.flusher.kill(block=False)
        process.flusher = None
    flush(environment, process)  # after the users' on_stop: their last findings go too


def _on_quitting(environment: Environment, **_: Any) -> None:
    process = _PROCESSES.get(environment)
    if process is None or process.merged is None:
        return  # a worker, or a process whose profile never loaded
    result = report.build(process.settings, process.merged, started_at=process.started_at,
                          ended_by=process.ended_by)  # fmt: skip
    result.duration_s = round(time.monotonic() - process.started_mono, 3)  # the run's, not the report's
    process.report_paths = report.write(result)
    verdict = "passed" if result.status == "passed" else "FAILED"
    sys.stderr.write(f"goldenpath: locust run {verdict}; report {process.report_paths[0]}\n")
    for line in result.problems_found:
        sys.stderr.write(f"goldenpath:   {line}\n")
    if result.status != "passed" and not environment.process_exit_code:
        options = environment.parsed_options
        environment.process_exit_code = int(getattr(options, "exit_code_on_error", 1) or 1)


def flush(environment: Environment, process: Process) -> None:
    runner = environment.runner
    if runner is None:
        return
    evidence = process.evidence
    runner.send_message(MESSAGE_TYPE, {"snapshot": evidence.snapshot(), "findings": evidence.take_new()})


def _flush_every(environment: Environment, process: Process) -> None:
    while True:
        gevent.sleep(FLUSH_INTERVAL_S)
        flush(environment, process)


def _on_evidence(environment: Environment, msg: Any, **_: Any) -> None:
    process = process_of(environment)
    if process.merged is None:
        return
    process.merged.receive(str(msg.node_id), msg.data if isinstance(msg.data, dict) else {})
    runner = environment.runner
    target = runner.target_user_count if runner is not None else 0
    if (not process.ending and runner is not None and runner.state == STATE_RUNNING and target > 0
            and process.merged.count("users_done") >= target):
        process.ending = True
        process.ended_by = f"all {target} users sent their messages"
        gevent.spawn(_end_run, environment)


def _end_run(environment: Environment) -> None:
    # Outside the runner's greenlet group, which quit() kills.
    runner = environment.runner
    if runner is None:
        return
    runner.stop()  # distributed: waits until every worker stopped, its last evidence sent first
    options = environment.parsed_options
    if options is not None and getattr(options, "headless", False):
        runner.quit()


def _cache_default_args() -> None:
    """Make Locust's ``default_args_dict()`` compute once per process.

    A worker handling a spawn message calls it once per option it was sent (locust/runners.py,
    ``custom_args_from_master``), and each call builds and runs Locust's whole argument parser:
    about 10 ms each, a second per spawn message on an idle core, several seconds on a busy
    one. That blocks the worker's event loop long enough to miss its heartbeats, and the master
    then drops the workers mid-ramp ("The last worker went missing, stopping test"). The
    result depends only on Locust's own parser setup (custom arguments are excluded by design),
    so a per-process cache is exact; each caller gets its own copy.
    """
    if getattr(argument_parser.default_args_dict, "goldenpath_cached", False):
        return
    compute = argument_parser.default_args_dict
    cached: dict[str, Any] = {}

    def default_args_dict() -> dict[str, Any]:
        if not cached:
            cached.update(compute())
        return dict(cached)

    default_args_dict.goldenpath_cached = True  # type: ignore[attr-defined]
    argument_parser.default_args_dict = default_args_dict


_cache_default_args()
# Locust's global hooks: every Environment a locustfile run creates fires them.
events.init_command_line_parser.add_listener(_add_arguments)
events.init.add_listener(_on_init)
events.test_start.add_listener(_on_test_start)
events.test_stop.add_listener(_on_test_stop)
events.quitting.add_listener(_on_quitting)
