"""Small network probes with hard timeouts, used to decide whether a target answers."""

from __future__ import annotations

import ipaddress
import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit


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
