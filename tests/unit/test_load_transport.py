"""The load runner's lean HTTP transport, against a real HTTP/1.1 server (the stdlib's, in a thread)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from goldenpath.client.auth import AuthClient
from goldenpath.core.errors import AuthRefused, Unreachable
from goldenpath.core.http import free_port
from goldenpath.load.transport import new_client


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.peers: set[int] = set()  # client ports seen: one per TCP connection
        self.busy = 0
        self.most_busy = 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # the /slow answer waits for it (bounded)
        self.release.set()
        self.two_busy = threading.Event()  # set once two requests are being answered at once


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the auth service and backend answer
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        return

    def _answer(self, status: int, body: dict[str, object], *, close: bool = False) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if close:
            self.close_connection = True  # closed after answering, without saying so: a stale keep-alive

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.peers.add(self.client_address[1])
            self.server.busy += 1
            self.server.most_busy = max(self.server.most_busy, self.server.busy)
            if self.server.busy >= 2:
                self.server.two_busy.set()
        try:
            if self.path == "/slow":
                self.server.release.wait(5)
            auth = self.headers.get("Authorization")
            self._answer(200 if auth != "Bearer bad" else 401, {"path": self.path, "auth": auth},
                         close=self.path == "/drop")  # fmt: skip
        finally:
            with self.server.lock:
                self.server.busy -= 1

    def do_POST(self) -> None:
        self.server.peers.add(self.client_address[1])
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.headers.get("X-E2E-Bypass-Key") != "key":
            self._answer(403, {"detail": "wrong key"})
            return
        self._answer(200, {"access_token": f"token-for-{body['email']}", "refresh_token": "r",
                           "user_id": "u1"})  # fmt: skip


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _base(srv: _Server) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def test_answers_come_back_whole_and_connections_are_kept_alive(server: _Server) -> None:
    async def go() -> list[httpx.Response]:
        async with new_client(max_connections=4) as http:
            return [await http.get(f"{_base(server)}/thing/{i}", headers={"Authorization": "Bearer t"})
                    for i in range(5)]  # fmt: skip

    answers = asyncio.run(go())
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.json()["path"] for a in answers] == [f"/thing/{i}" for i in range(5)]
    assert answers[0].json()["auth"] == "Bearer t"
    assert len(server.peers) == 1  # one after the other: the same connection each time


def test_a_connection_the_server_closed_is_not_reused(server: _Server) -> None:
    async def go() -> list[int]:
        async with new_client() as http:
            first = await http.get(f"{_base(server)}/drop")
            second = await http.get(f"{_base(server)}/after")
            return [first.status_code, second.status_code]

    assert asyncio.run(go()) == [200, 200]
    assert len(server.peers) == 2


def test_at_most_max_connections_requests_are_in_flight(server: _Server) -> None:
    server.release.clear()

    async def go() -> list[int]:
        async with new_client(max_connections=2) as http:
            calls = [asyncio.create_task(http.get(f"{_base(server)}/slow")) for _ in range(6)]
            # Both slots taken (bounded wait); the other four wait for one, then all are let go.
            both = await asyncio.to_thread(server.two_busy.wait, 5)
            server.release.set()
            assert both
            return [(await c).status_code for c in calls]

    assert asyncio.run(go()) == [200] * 6
    assert server.most_busy == 2
    assert len(server.peers) == 2


def test_auth_client_logs_in_and_is_refused_through_it(server: _Server) -> None:
    async def go(key: str) -> str:
        async with new_client() as http:
            tokens = await AuthClient(_base(server), http, e2e_key=key).new_test_user("a@goldenpath.test")
            return tokens.access_token

    assert asyncio.run(go("key")) == "token-for-a@goldenpath.test"
    with pytest.raises(AuthRefused, match="403"):
        asyncio.run(go("wrong"))


def test_nothing_listening_is_unreachable_not_a_traceback() -> None:
    async def go() -> None:
        async with new_client() as http:
            await AuthClient(f"http://127.0.0.1:{free_port()}", http, e2e_key="k").new_test_user("a@b.test")

    with pytest.raises(Unreachable, match="cannot connect"):
        asyncio.run(go())


def test_https_goes_to_httpx_own_transport() -> None:
    async def go() -> None:
        async with new_client() as http:
            await http.get(f"https://127.0.0.1:{free_port()}/", timeout=2)

    with pytest.raises(httpx.ConnectError):  # httpx's TLS transport tried; not "unsupported protocol"
        asyncio.run(go())
