"""Small network probes with hard timeouts: does a service answer, and who is it?

The one place that knows where a service's liveness lives (``health_url``) and what
"healthy" means at the HTTP level (``answers_ok``): the stack, the target, the port
alignment and the probes all ask here.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

# The protocol's auth service names itself in its /health; the backend's answer need not.
AUTH_IDENTITY = "auth-service"


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def http_get(url: str, timeout_s: float) -> HttpAnswer | None:
    """GET url; None when nothing answers in time. Any HTTP status is an answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - http(s) only, checked by config
            return HttpAnswer(response.status, response.read(65536))
    except urllib.error.HTTPError as exc:
        return HttpAnswer(exc.code, exc.read(65536) if exc.fp else b"")
    except (OSError, ValueError):
        # URLError, timeouts, resets and bad status lines all mean "no usable answer".
        return None


def health_url(base_url: str) -> str:
    """The liveness URL of a service of the protocol: ``{base}/health``."""
    return f"{base_url.rstrip('/')}/health"


def answers_ok(url: str, timeout_s: float) -> bool:
    """True when ``url`` answers HTTP 200 within the timeout."""
    answer = http_get(url, timeout_s)
    return answer is not None and answer.status == 200


def service_name(answer: HttpAnswer | None) -> str | None:
    """The ``service`` field a /health answer identifies itself with, if any."""
    body = answer.json() if answer else None
    name = body.get("service") if isinstance(body, dict) else None
    return name if isinstance(name, str) else None


def port_is_open(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
