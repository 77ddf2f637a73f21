"""A stand-in for the reference stack: answers /health on BACKEND_URL's and AUTH_SERVICE_URL's ports.

STANDIN_CRASH=1 makes it fail at start the way a real service does; STANDIN_IGNORE_TERM=1
makes it ignore SIGTERM, so the caller must escalate to SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"status": "ok", "service": "standin"}).encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass  # the tests read the log for the crash line only


def main() -> None:
    if os.environ.get("STANDIN_CRASH") == "1":
        print("standin: cannot open the database: disk full", flush=True)
        sys.exit(3)
    if os.environ.get("STANDIN_IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    servers = [
        ThreadingHTTPServer(("127.0.0.1", urlsplit(os.environ[name]).port or 80), Health)
        for name in ("BACKEND_URL", "AUTH_SERVICE_URL")
    ]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("standin: up", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
