"""No engine at DOCKER_HOST: one clear line, quickly, from every entry point."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from goldenpath.core.errors import DockerUnavailable
from goldenpath.core.http import free_port
from goldenpath.hygiene.clean import Policy, clean
from goldenpath.hygiene.usage import usage

ROOT = Path(__file__).resolve().parents[2]
HOSTS = {
    "unix:///nonexistent.sock": "No such file or directory",
    f"tcp://127.0.0.1:{free_port()}": "Connection refused",
}
ENTRY_POINTS: dict[str, Callable[[], object]] = {
    "usage": lambda: usage(timeout_s=5),
    "clean": lambda: clean(Policy(threshold_bytes=0), dry_run=True, timeout_s=5),
}


@pytest.fixture(autouse=True)
def _plain_docker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("host", HOSTS)
def test_unreachable_engine_is_one_line_and_fast(monkeypatch: pytest.MonkeyPatch, host: str,
                                                 entry: str) -> None:
    monkeypatch.setenv("DOCKER_HOST", host)
    started = time.monotonic()
    with pytest.raises(DockerUnavailable) as caught:
        ENTRY_POINTS[entry]()
    assert time.monotonic() - started < 3
    assert str(caught.value) == (f"cannot reach the docker engine at {host}: {HOSTS[host]}; "
                                 "start dockerd or set DOCKER_HOST")


def test_the_operator_sees_the_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    # The library's side of the contract, in a process of its own: one line on stderr, exit 1.
    # The invoke tasks themselves are run against a missing engine in tests/integration/test_stack_tasks.py.
    script = ("import sys\n"
              "from goldenpath.hygiene.usage import DockerError, usage\n"
              "try:\n    usage(timeout_s=5)\n"
              "except DockerError as exc:\n    sys.exit(f'error: {exc}')\n")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
                          check=False, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: cannot reach the docker engine at unix:///nonexistent.sock: No such file or directory; "
        "start dockerd or set DOCKER_HOST"]


def test_an_engine_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel accepts the connection; nobody ever answers
        host = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("DOCKER_HOST", host)
        started = time.monotonic()
        with pytest.raises(DockerUnavailable) as caught:
            usage(timeout_s=1)
    assert time.monotonic() - started < 3
    assert str(caught.value) == (f"cannot reach the docker engine at {host}: no answer in time; "
                                 "start dockerd or set DOCKER_HOST")
