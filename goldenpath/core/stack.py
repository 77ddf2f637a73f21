"""Run a target stack (the reference platform, or a stand-in) as a background process.

The same code serves ``invoke stack.up|down|status|logs`` (detached, tracked by a pid
file, outliving the invoke process) and the nox sessions' auto-start (a context manager
that always stops it, and a parent-death signal so that it dies with the run even when the
run is killed outright).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from goldenpath.core.errors import StackError
from goldenpath.core.files import write_atomically
from goldenpath.core.http import answers_ok, health_url, http_get, port_is_open, service_name
from goldenpath.core.procinfo import argv
from goldenpath.core.settings import SPECS_BY_NAME, Settings

STATE_DIR = Path(".goldenpath") / "stack"
POLL_INTERVAL_S = 0.1
# linux/prctl.h: the signal the kernel sends a process when its parent dies.
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class StackSpec:
    """How to start a stack and how to tell that it is up."""

    command: tuple[str, ...]
    health_urls: tuple[str, ...]
    state_dir: Path = STATE_DIR
    env: Mapping[str, str] = field(default_factory=dict)
    startup_timeout_s: float = 30.0

    @property
    def pid_path(self) -> Path:
        return self.state_dir / "stack.pid"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "stack.log"

    @property
    def secrets_path(self) -> Path:
        """Secrets `invoke stack.up` made up for this stack, for the layers that use it (0600)."""
        return self.state_dir / "secrets.env"


def refstack_spec(
    settings: Settings,
    *,
    python: str = sys.executable,
    faults: str | None = None,
    state_dir: Path = STATE_DIR,
    extra_env: Mapping[str, str] | None = None,
) -> StackSpec:
    """The reference stack on the profile's ports, started as ``python -m refstack``."""
    # A setting the profile leaves out is passed as empty ("not configured"), so a
    # DATABASE_URL in our own environment never leaks into a stack meant for SQLite.
    unset = {name: "" for name in SPECS_BY_NAME if name not in settings.values}
    env = {
        **unset,
        **settings.as_env(),
        "REFSTACK_DATA_DIR": str(state_dir / "data"),
        **(extra_env or {}),
    }
    if faults:
        env["REFSTACK_FAULTS"] = faults
    return StackSpec(
        command=(python, "-m", "refstack"),
        health_urls=(health_url(settings.backend_url), health_url(settings.auth_service_url)),
        state_dir=state_dir,
        env=env,
    )


@dataclass
class RunningStack:
    pid: int
    spec: StackSpec
    process: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return pid_alive(self.pid)


def start(spec: StackSpec, *, die_with_parent: bool = False) -> RunningStack:
    """Start the stack in its own process group and wait until every health URL answers 200.

    ``die_with_parent``: the stack belongs to this process's run and gets SIGTERM from the
    kernel when this process dies, however it dies (SIGKILL included). `invoke stack.up`
    leaves it off: its stack is meant to outlive the invoke process.
    """
    _refuse_taken_ports(spec.health_urls)
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    with spec.log_path.open("ab") as log:
        process = subprocess.Popen(
            spec.command,
            env={**os.environ, **spec.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal reaches us, and we stop it in order.
            start_new_session=True,
            preexec_fn=_parent_death_signal() if die_with_parent else None,
        )
    stack = RunningStack(process.pid, spec, process)
    write_atomically(spec.pid_path, f"{process.pid}\n")
    try:
        wait_healthy(stack)
    except BaseException:
        stop(stack)
        raise
    return stack


def wait_healthy(stack: RunningStack) -> None:
    deadline = time.monotonic() + stack.spec.startup_timeout_s
    pending = list(stack.spec.health_urls)
    while pending:
        if not stack.alive():
            code = stack.process.returncode if stack.process else "?"
            raise StackError(
                f"stack exited with code {code} while starting: {last_log_line(stack.spec)}"
                f" (full log: {stack.spec.log_path})"
            )
        if answers_ok(pending[0], timeout_s=1.0):
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise StackError(
                f"stack not healthy after {stack.spec.startup_timeout_s:.0f}s: {pending[0]} "
                f"does not answer 200; see {stack.spec.log_path}"
            )
        time.sleep(POLL_INTERVAL_S)


def stop(stack: RunningStack, timeout_s: float = 10.0) -> None:
    """SIGTERM the whole process group, SIGKILL what is left after timeout_s."""
    _signal_group(stack.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while stack.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if stack.alive():
        _signal_group(stack.pid, signal.SIGKILL)
        if stack.process is not None:
            stack.process.wait(timeout=5)
    stack.spec.pid_path.unlink(missing_ok=True)
    # A stopped stack's secrets open nothing; they are not left lying around either.
    stack.spec.secrets_path.unlink(missing_ok=True)


@contextmanager
def running(spec: StackSpec) -> Iterator[RunningStack]:
    """The stack for the duration of a with-block; stopped on failure and Ctrl-C too, and
    by the kernel when this process is killed before it can stop it."""
    stack = start(spec, die_with_parent=True)
    try:
        yield stack
    finally:
        stop(stack)


def find_running(spec: StackSpec) -> RunningStack | None:
    """The stack a previous ``stack.up`` left running, from its pid file.

    A pid outlives its process (a reboot, a crash): the pid file counts only while that pid
    still runs the stack's own command, so `stack.down` never signals a stranger.
    """
    try:
        pid = int(spec.pid_path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    running = argv(pid)
    # The interpreter may differ between `stack.up` and `stack.down`; the arguments may not.
    if not pid_alive(pid) or running is None or running[1:] != list(spec.command[1:]):
        spec.pid_path.unlink(missing_ok=True)
        return None
    return RunningStack(pid, spec)


def write_secrets(spec: StackSpec, served: Mapping[str, str], values: Mapping[str, str]) -> None:
    """The secrets made up for this stack, beside its pid file, readable by its owner only.

    ``served`` names the URLs the stack answers on: a layer takes the secrets only for
    that target. The values never reach a log or a report (they are secret settings).
    """
    lines = [
        "# Written by `invoke stack.up`: secrets made up for the stack it started, read by the",
        "# layers that use that stack; removed by `invoke stack.down`. Never copy or commit.",
        *(f"{key}={value}" for key, value in {**served, **values}.items()),
    ]
    # write_atomically's file is only its owner's (0600), which a secrets file must be.
    write_atomically(spec.secrets_path, "\n".join(lines) + "\n")


def _parent_death_signal() -> Callable[[], None]:
    """A preexec_fn asking the kernel to SIGTERM the child when its parent dies.

    Linux only (prctl); elsewhere the with-block's own stop is all there is. The signal
    fires when the *thread* that forked exits, so the fork must come from the main thread:
    a stack started from a worker thread would die with that thread.
    """
    if threading.current_thread() is not threading.main_thread():
        raise StackError("a stack tied to its run must be started from the main thread "
                         "(the kernel ties it to the thread that starts it)")
    if not sys.platform.startswith("linux"):
        return lambda: None
    # Looked up in the parent: the child, between fork and exec, only makes the call.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
            os._exit(126)  # never run a stack that would outlive its run
        # The parent may have died before prctl: then nobody would ever signal us.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def last_log_line(spec: StackSpec) -> str:
    try:
        lines = spec.log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # Already gone is exactly what stopping wants.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _refuse_taken_ports(urls: Sequence[str]) -> None:
    for url in urls:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        if port_is_open(host, port, timeout_s=0.5):
            who = service_name(http_get(url, timeout_s=1.0)) or "another process"
            raise StackError(
                f"port {port} on {host} is already taken by {who}; stop it, or point "
                "the profile at a free port (BACKEND_URL / AUTH_SERVICE_URL)"
            )
