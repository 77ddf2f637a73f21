"""The load benchmark's baseline: the same scenario as goldenpath's load runner, as a Locust user.

Each user logs in through the E2E bypass, opens a WebSocket with websocket-client (the
jwt.<token> subprotocol), sends BENCH_MESSAGES messages one after the other and reads every
event of each run until its agent_completed, decoding each frame (json) and logging it to
Locust's statistics as one request. When every user is done, the runner quits, so the client's
CPU time covers the scenario and not idle waiting (a finished user waits, idle, for the
others). Run by bench/load_client.py, headless.

The frame count is written to BENCH_RESULT when Locust quits: its ``--csv`` statistics file
is only rewritten every second, so read after a short run it missed up to a third of the
frames (and made Locust look that much costlier per event).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import gevent
import gevent.event
import websocket
from locust import User, events, task
from locust.exception import StopUser

AUTH = os.environ["BENCH_AUTH_URL"]
WS = os.environ["BENCH_WS_URL"]
KEY = os.environ["BENCH_E2E_KEY"]
MESSAGES = int(os.environ["BENCH_MESSAGES"])
USERS = int(os.environ["BENCH_USERS"])
RESULT = os.environ["BENCH_RESULT"]
_done = {"users": 0, "frames": 0}
_all_done = gevent.event.Event()


def _write_result(environment: Any, **_: Any) -> None:
    with open(RESULT, "w", encoding="utf-8") as handle:
        json.dump({"frames": _done["frames"], "users_done": _done["users"],
                   "requests": environment.stats.total.num_requests}, handle)  # fmt: skip


events.quitting.add_listener(_write_result)  # type: ignore[no-untyped-call, unused-ignore]


class GoldenPathUser(User):
    def on_start(self) -> None:
        import requests

        email = f"locust-{uuid.uuid4().hex[:12]}@goldenpath.test"
        answer = requests.post(f"{AUTH}/auth/e2e/test-auth", json={"email": email},
                               headers={"X-E2E-Bypass-Key": KEY}, timeout=60)  # fmt: skip
        answer.raise_for_status()
        token = answer.json()["access_token"]
        self.ws = websocket.create_connection(WS, subprotocols=[f"jwt.{token}"], timeout=60)
        json.loads(self.ws.recv())  # connection_established

    @task
    def chat(self) -> None:
        fire = events.request.fire
        for number in range(MESSAGES):
            self.ws.send(json.dumps({"type": "user_message", "payload": {
                "text": f"locust message {number}", "thread_id": None, "message_id": str(uuid.uuid4())}}))
            sent = time.perf_counter()
            while True:
                raw = self.ws.recv()
                frame: dict[str, Any] = json.loads(raw)
                elapsed_ms = (time.perf_counter() - sent) * 1000
                _done["frames"] += 1
                fire(request_type="WS", name=str(frame.get("type")), response_time=elapsed_ms,  # type: ignore[no-untyped-call, unused-ignore]
                     response_length=len(raw), exception=None, context={})
                if frame.get("type") == "agent_completed":
                    break
        self.ws.close()
        _done["users"] += 1
        if _done["users"] >= USERS:
            _all_done.set()
            # From a greenlet of its own: quit() kills every user's greenlet, this one included,
            # and called from here it died half-way and Locust idled until --run-time.
            gevent.spawn(self.environment.runner.quit)
        # Hold the slot until everyone is done: while Locust is still ramping up, a user that
        # stopped is replaced by a new one (1,060 users ran at -u 1000 -r 200), extra work.
        _all_done.wait()
        raise StopUser()
