"""A layer pointed at a target that is down, remote and silent, or speaks something else ends
with one clear line and a non-zero exit: never a hang, never a traceback."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from goldenpath.core import stack
from goldenpath.core.http import free_port
from goldenpath.core.settings import load_settings
from goldenpath.testkit.support import environ_without_settings

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = "2"


def layer(tmp_path: Path, backend: str, auth: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nox", "--noxfile", str(REPO / "noxfile.py"), "-s", "e2e",
         "--reuse-venv=yes"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env={**environ_without_settings(), "BACKEND_URL": backend, "AUTH_SERVICE_URL": auth,
             "GOLDENPATH_TIMEOUT_S": TIMEOUT_S, "GOLDENPATH_REPORTS_DIR": str(tmp_path), **env},
    )


def one_clear_line(proc: subprocess.CompletedProcess[str], expected: str) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert expected in output, output[-3000:]
    assert "Traceback" not in output
    # The layer's tests never started: the check stopped it first.
    assert "collected" not in output


class Health(BaseHTTPRequestHandler):
    """Any GET is 200 JSON: an HTTP service that looks alive and has no WebSocket (and,
    as an auth service, takes no registration: POST is not implemented)."""

    service = "backend"

    def do_GET(self) -> None:
        body = json.dumps({"status": "ok", "service": self.service}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass  # the test reads the layer's output, not this server's


class AuthHealth(Health):
    service = "auth-service"


@contextmanager
def http_only(handler: type[Health] = Health) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def garbage_socket() -> Iterator[str]:
    """/health is fine; the WebSocket upgrades, then sends bytes that are not JSON."""
    port = free_port()
    ready = threading.Event()
    running: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def health(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/health":
            return connection.respond(HTTPStatus.OK, '{"status": "ok"}')
        return None

    async def handler(ws: ServerConnection) -> None:
        await ws.send("\x00\x01 this is not json")
        await ws.wait_closed()

    async def main() -> None:
        done = asyncio.Event()
        running.append((asyncio.get_running_loop(), done))
        async with serve(handler, "127.0.0.1", port, process_request=health):
            ready.set()
            await done.wait()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop, done = running[0]
        loop.call_soon_threadsafe(done.set)
        thread.join(5)


@pytest.fixture(scope="module")
def auth_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real auth service, so the check gets as far as the WebSocket."""
    port = free_port()
    settings = load_settings(REPO, "local", environ={
        "AUTH_SERVICE_URL": f"http://127.0.0.1:{port}", "BACKEND_URL": f"http://127.0.0.1:{free_port()}"})
    spec = stack.refstack_spec(settings, state_dir=tmp_path_factory.mktemp("auth-only"))
    spec = stack.StackSpec(command=(*spec.command, "--only", "auth"),
                           health_urls=(f"{settings.auth_service_url}/health",),
                           state_dir=spec.state_dir, env=spec.env)
    with stack.running(spec):
        yield settings.auth_service_url


def test_a_silent_loopback_target_without_autostart(tmp_path: Path) -> None:
    silent = f"http://127.0.0.1:{free_port()}"
    proc = layer(tmp_path, silent, f"http://127.0.0.1:{free_port()}", GOLDENPATH_AUTOSTART="0")
    one_clear_line(proc, f"target {silent} does not answer and GOLDENPATH_AUTOSTART=0")


def test_an_unreachable_remote_target(tmp_path: Path) -> None:
    proc = layer(tmp_path, "http://staging.invalid:8000", "http://staging.invalid:8081")
    one_clear_line(proc, "does not answer /health; it is not on loopback")


def test_a_target_that_accepts_and_never_answers(tmp_path: Path) -> None:
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        url = f"http://127.0.0.1:{hole.getsockname()[1]}"
        # Autostart declared beside the URLs (both from the environment), so goldenpath tries
        # to start the reference stack there and finds the port taken.
        proc = layer(tmp_path, url, url, GOLDENPATH_AUTOSTART="1")
    one_clear_line(proc, "is already taken by another process")


def test_a_typod_port_is_not_replaced_by_the_reference_stack(tmp_path: Path) -> None:
    # The URL comes from the environment, autostart from the profile (envs/local.env): the
    # user meant their own app, so nothing is started in its place.
    silent = f"http://127.0.0.1:{free_port()}"
    proc = layer(tmp_path, silent, f"http://127.0.0.1:{free_port()}")
    one_clear_line(proc, f"nothing answers at {silent} (BACKEND_URL from environment), and goldenpath "
                         "starts the reference stack only for the profile's own embedded target")


def test_an_http_server_without_a_websocket(tmp_path: Path, auth_only: str) -> None:
    with http_only() as backend:
        proc = layer(tmp_path, backend, auth_only, E2E_OAUTH_SIMULATION_KEY="")
    one_clear_line(proc, "not a WebSocket endpoint")


def test_a_websocket_that_sends_garbage(tmp_path: Path, auth_only: str) -> None:
    with garbage_socket() as backend:
        proc = layer(tmp_path, backend, auth_only)
    one_clear_line(proc, "non-JSON")


def test_wrong_credentials_in_the_profile(tmp_path: Path, auth_only: str) -> None:
    with http_only() as backend:
        proc = layer(tmp_path, backend, auth_only, E2E_OAUTH_SIMULATION_KEY="not-the-key")
    one_clear_line(proc, "403")


def test_a_profile_without_credentials_where_registration_is_closed(tmp_path: Path) -> None:
    with http_only(AuthHealth) as auth, http_only() as backend:
        proc = layer(tmp_path, backend, auth, E2E_OAUTH_SIMULATION_KEY="")
    one_clear_line(proc, "cannot get a test user by registering")
    assert "set E2E_OAUTH_SIMULATION_KEY in .env for this profile" in proc.stdout + proc.stderr
