"""reports/index.html in a real browser: headless Chromium renders it with no console error
and no network request, and the key numbers are on the page; a screenshot goes to reports/.

The page is driven over the DevTools protocol (websockets, already a dependency):
``Network.requestWillBeSent`` reports every request the page makes, of any scheme, before it
is sent; ``Runtime.consoleAPICalled``, ``Runtime.exceptionThrown`` and ``Log.entryAdded``
report console errors. The browser's own background traffic (update checks, sign-in) is not
the page's, so it is attributed to no page and is not counted; it goes to a proxy of ours
that refuses everything, so nothing leaves the machine either way. A control page that does
fetch and does log an error proves both detectors fire.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from goldenpath.core.settings import Settings, load_settings
from goldenpath.output import history, html
from goldenpath.output.reports import LayerReport, write_reports
from goldenpath.protocol.contract import Violation
from goldenpath.testkit.support import current_settings, service_missing

REPO = Path(__file__).resolve().parents[2]
MS = 1_000_000
DEADLINE_S = 60.0
_DEVTOOLS = re.compile(r"DevTools listening on (ws://\S+)")


class RefusingProxy:
    """The browser's only way out: accepts each connection and answers 403."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()


@dataclass
class Visit:
    requests: list[str] = field(default_factory=list)  # URLs the page asked for, beyond itself
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    text: str = ""
    svg_count: int = 0
    screenshot: bytes = b""


class Browser:
    """One headless Chromium, spoken to over the DevTools protocol."""

    def __init__(self, profile_dir: Path, proxy_port: int) -> None:
        executable = shutil.which("chromium") or shutil.which("chromium-browser")
        if not executable:
            service_missing("chromium", "install Debian's package: apt-get install -y chromium")
        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-port=0", f"--user-data-dir={profile_dir}", "--hide-scrollbars",
             f"--proxy-server=http://127.0.0.1:{proxy_port}", "--proxy-bypass-list=<-loopback>",
             "--window-size=1280,2000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.stack = contextlib.ExitStack()
        try:
            self.ws: ClientConnection = self.stack.enter_context(
                connect(self._devtools_url(), max_size=64 * 2**20, open_timeout=DEADLINE_S))
        except BaseException:
            self.close()  # the browser must not outlive a failed start
            raise
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def _devtools_url(self) -> str:
        # Chromium prints its DevTools address on stderr once it listens; a deadline, not a wait.
        assert self.process.stderr is not None
        lines: list[str] = []
        found = threading.Event()
        address: list[str] = []

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                lines.append(line)
                match = _DEVTOOLS.search(line)
                if match and not found.is_set():
                    address.append(match.group(1))
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        assert found.wait(DEADLINE_S), ("chromium did not start its DevTools endpoint:\n"
                                        + "".join(lines[-20:]))
        return address[0]

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        number = next(self.ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + DEADLINE_S
        while True:
            reply = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if reply.get("id") == number:
                assert "error" not in reply, (method, reply["error"])
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
            self.events.append(json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.1))))

    def visit(self, page: Path, *, screenshot: bool = False) -> Visit:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session=session)
        self.events.clear()
        self.call("Page.navigate", {"url": page.as_uri()}, session)
        self.wait_for("Page.loadEventFired", session)
        # Round trip after load: every event the page caused so far has been delivered.
        text = self.call("Runtime.evaluate", {"expression": "document.body.innerText", "returnByValue": True},
                         session)["result"]["value"]
        svgs = self.call("Runtime.evaluate", {"expression": "document.querySelectorAll('svg').length",
                                              "returnByValue": True}, session)["result"]["value"]
        visit = Visit(text=re.sub(r"\s+", " ", text), svg_count=int(svgs))
        if screenshot:
            shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                             session)
            visit.screenshot = base64.b64decode(shot["data"])
        for event in (e for e in self.events if e.get("sessionId") == session):
            params = event.get("params", {})
            method = event.get("method")
            if method == "Network.requestWillBeSent" and params["request"]["url"] != page.as_uri():
                visit.requests.append(params["request"]["url"])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                visit.errors.append(json.dumps(params.get("args")))
            elif method == "Runtime.exceptionThrown":
                visit.errors.append(json.dumps(params.get("exceptionDetails")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                visit.errors.append(params["entry"].get("text", ""))
        self.call("Target.closeTarget", {"targetId": target})
        return visit

    def close(self) -> None:
        self.stack.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    proxy = RefusingProxy()
    driven = Browser(tmp_path / "chromium-profile", proxy.port)
    yield driven
    driven.close()
    proxy.close()


def layer_run(settings: Settings, layer: str, *, scale: float, started: str,
              violations: tuple[Violation, ...] = ()) -> dict[str, Any]:
    """One layer's report as the plugin writes it: LayerReport, real HdrHistogram samples."""
    report = LayerReport(layer, settings)
    for i in range(1, 301):
        report.recorder.record("ws_connect", int((2 + i % 9) * scale * MS))
        report.recorder.record("first_event", int((1 + i % 30) * scale * MS))
        report.recorder.record("tool_result", int((0.2 + i % 5) * scale * MS))
    for _ in range(12):
        report.add_outcome("passed")
    report.add_outcome("failed")
    report.add_failure(f"tests/{layer}/test_isolation.py::test_no_cross_talk", "AssertionError: user b saw a")
    report.add_violations(violations)
    report.started_at = started
    report.finish("failed")
    path, _ = write_reports(report, settings.reports_dir)
    history.archive(path, settings)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_index_renders_offline_with_the_key_numbers(tmp_path: Path, browser: Browser) -> None:
    settings = load_settings(REPO, "local", environ={"GOLDENPATH_REPORTS_DIR": str(tmp_path / "reports")})
    layer_run(settings, "e2e", scale=1.0, started="2026-01-01T10:00:00+00:00")
    violations = (Violation("CROSS_USER", "run-7f3a", "user b received user a's agent_started", 2),
                  Violation("MISSING_EVENT", "run-19c2", "no agent_completed after tool_completed", 5),
                  Violation("STRAY_EVENT", None, "event for run-00aa after agent_completed"))
    current = layer_run(settings, "e2e", scale=1.6, started="2026-01-01T11:00:00+00:00",
                        violations=violations)
    visit = browser.visit(html.write_index(settings), screenshot=True)

    assert visit.requests == []
    assert visit.errors == []
    assert "12 passed, 1 failed" in visit.text
    for metric in current["sla"]["metrics"]:
        assert f" {html.fmt_ms(metric['p95_ms'])} " in f" {visit.text} ", metric["metric"]
    assert f"violations ({len(violations)})" in visit.text
    assert "New violations since the baseline: 3" in visit.text
    assert visit.svg_count == len(current["sla"]["metrics"])

    reports = current_settings().reports_dir
    screenshot = reports / "index-screenshot.png"
    reports.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(visit.screenshot)
    assert visit.screenshot[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_detectors_catch_a_fetch_and_a_console_error(tmp_path: Path, browser: Browser) -> None:
    """Without this, 'no request, no error' above could be a browser that reports nothing."""
    page = tmp_path / "control.html"
    page.write_text("<!DOCTYPE html><html><body><img src=\"http://goldenpath-control.test/x.png\">"
                    "<script>console.error('goldenpath control error')</script></body></html>",
                    encoding="utf-8")
    visit = browser.visit(page)
    assert visit.requests == ["http://goldenpath-control.test/x.png"]
    assert any("goldenpath control error" in error for error in visit.errors)
