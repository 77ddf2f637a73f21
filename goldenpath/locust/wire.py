"""Blocking, gevent-friendly wire calls for a Locust user: log in, open the WebSocket.

Locust runs every user as a greenlet on a monkey-patched standard library, so the clients
here are blocking ones that yield to other greenlets on every socket wait:

- the auth service through Locust's own ``HttpSession`` (requests), not goldenpath's usual
  httpx: httpx's synchronous transport (httpcore) imports trio when it is installed, and trio
  does not import under gevent's patched ``select``; requests is what Locust is built and
  tested on, and each login call then shows in Locust's stats with no extra code;
- the WebSocket through websocket-client: the asyncio ``websockets`` library cannot run under
  gevent (locust issues 2383 and 1251).

Every call is bounded by the profile's GOLDENPATH_TIMEOUT_S and fails with one of
goldenpath.core.errors' exceptions, whose one-line message never holds a token or key.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import websocket
from locust.clients import HttpSession

from goldenpath.core.errors import (
    AuthRefused,
    ConnectionLost,
    GoldenPathError,
    GoldenPathTimeout,
    HttpStatusError,
    ProtocolError,
    Unreachable,
)
from goldenpath.core.masking import mask_text, mask_url
from goldenpath.core.settings import Settings
from goldenpath.protocol.contract import E2E_KEY_HEADER, E2E_KEY_SETTING, TRANSPORTS, Contract

EMAIL_DOMAIN = "locust.goldenpath.test"
_SHOWN = 160
_TOKEN_CHARS = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True)
class Login:
    access_token: str = field(repr=False)
    user_id: str
    email: str


def login(session: HttpSession, settings: Settings, email: str | None = None) -> Login:
    """A fresh test user: by the E2E bypass when the profile has its key, else registered with
    a password made up here and logged in (a staging without the key still has registration).

    ``session`` is Locust's HttpSession on the auth service: each call is a row in Locust's
    stats, and a refused one a failure there, with a message free of secrets.
    """
    email = email or f"gp-{uuid.uuid4().hex[:16]}@{EMAIL_DOMAIN}"
    key = settings.get(E2E_KEY_SETTING)
    timeout_s = settings.timeout_s
    if key:
        body = _call(session, "/auth/e2e/test-auth", {"email": email}, (200,), timeout_s,
                     headers={E2E_KEY_HEADER: key}, secret=key)  # fmt: skip
    else:
        password = secrets.token_urlsafe(24)
        creds = {"email": email, "password": password}
        _call(session, "/auth/register", creds, (201, 200), timeout_s, secret=password)
        body = _call(session, "/auth/login", creds, (200,), timeout_s, secret=password)
    token, user_id = body.get("access_token"), body.get("user_id")
    if not isinstance(token, str) or not token or not isinstance(user_id, str) or not user_id:
        raise ProtocolError(f"POST {mask_url(settings.auth_service_url)}/auth answered without access_token "
                            f"and user_id (keys: {', '.join(sorted(body)) or 'none'})")  # fmt: skip
    return Login(token, user_id, email)


def _call(session: HttpSession, path: str, body: Mapping[str, Any], expect: Collection[int],
          timeout_s: float, *, secret: str, headers: Mapping[str, str] | None = None,
          ) -> dict[str, Any]:  # fmt: skip
    what = f"POST {mask_url(session.base_url + path)}"
    with session.post(path, json=dict(body), headers=dict(headers or {}), timeout=timeout_s,
                      catch_response=True) as response:  # fmt: skip
        error = _refusal(response, what, expect, secret)
        if error is None:
            try:
                decoded = response.json() if response.content else {}
            except ValueError:
                error = ProtocolError(f"{what} answered {response.status_code} with non-JSON")
            else:
                if isinstance(decoded, dict):
                    response.success()
                    return decoded
                error = ProtocolError(f"{what} answered JSON that is not an object")
        response.failure(str(error))
        raise error


def _refusal(response: Any, what: str, expect: Collection[int], secret: str) -> GoldenPathError | None:
    status = int(response.status_code or 0)
    if status == 0:  # requests raised: no answer at all (Locust keeps the exception on .error)
        reason = mask_text(str(getattr(response, "error", "")), [secret])[:_SHOWN] or "no answer"
        if "timed out" in reason.lower():
            return GoldenPathTimeout(f"{what} not answered in time ({reason})")
        return Unreachable(f"{what} failed ({reason}): is the auth service running?")
    if status in expect:
        return None
    shown = mask_text(response.text[:_SHOWN], [secret]).replace("\n", " ")
    if status in (401, 403):
        return AuthRefused(f"{what} answered {status}: {shown}", status=status)
    return HttpStatusError(f"{what} answered {status}: {shown}", status=status, body=shown)


def credentials(url: str, token: str, transport: str, contract: Contract) -> tuple[str, list[str], list[str]]:
    """(url, header lines, subprotocols) carrying the token by the chosen transport
    (the same three as goldenpath.client.websocket.credentials, in websocket-client's terms)."""
    if transport not in TRANSPORTS:
        raise GoldenPathError(f"unknown auth transport {transport!r}; use one of {', '.join(TRANSPORTS)}")
    if transport == "subprotocol":
        if not _TOKEN_CHARS.fullmatch(token):
            raise GoldenPathError("the token has characters a Sec-WebSocket-Protocol value cannot carry; "
                                  "use the header or query transport")  # fmt: skip
        return url, [], [contract.subprotocol_prefix + token]
    if transport == "header":
        return url, [f"{contract.auth_header}: {contract.auth_scheme} {token}"], []
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), (contract.token_query_param, token)]
    return urlunsplit(parts._replace(query=urlencode(query))), [], []


@dataclass
class Opened:
    ws: websocket.WebSocket
    established: dict[str, Any]
    connect_ns: int  # start of the upgrade to connection_established received
    raw: str


def open_socket(url: str, token: str, *, transport: str, contract: Contract, timeout_s: float) -> Opened:
    """Upgrade and wait for connection_established, within ``timeout_s`` for each step."""
    target, headers, subprotocols = credentials(url, token, transport, contract)
    where = mask_url(url)
    ws = websocket.WebSocket(enable_multithread=True)  # one greenlet reads while another sends
    started = time.perf_counter_ns()
    try:
        ws.connect(target, header=headers, subprotocols=subprotocols or None, timeout=timeout_s,
                   suppress_origin=True)  # fmt: skip
        opcode, data = ws.recv_data()
    except websocket.WebSocketBadStatusException as exc:
        drop(ws)
        if exc.status_code in (401, 403):
            raise AuthRefused(f"{where} refused the {transport} transport with HTTP {exc.status_code}",
                              status=exc.status_code) from None  # fmt: skip
        raise ProtocolError(f"{where} answered the upgrade with HTTP {exc.status_code}") from None
    except (websocket.WebSocketTimeoutException, TimeoutError):
        drop(ws)
        established = contract.connection_established
        raise GoldenPathTimeout(f"no {established} within {timeout_s:g}s from {where}") from None
    except websocket.WebSocketConnectionClosedException:
        drop(ws)
        raise ConnectionLost(f"{where} closed the socket before {contract.connection_established}") from None
    except (websocket.WebSocketException, OSError) as exc:
        drop(ws)
        reason = mask_text(str(exc), [token]) or type(exc).__name__
        raise Unreachable(f"cannot open {where} ({reason})") from None
    connect_ns = time.perf_counter_ns() - started
    raw = text_of(data)
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        drop(ws)
        raise ConnectionLost(f"{where} closed the socket before {contract.connection_established}")
    frame = decode(raw)
    if frame.get("type") != contract.connection_established:
        drop(ws)
        raise ProtocolError(f"{where}: first frame is not {contract.connection_established}: {raw[:80]!r}")
    return Opened(ws, frame, connect_ns, raw)


def drop(ws: websocket.WebSocket) -> None:
    """Close the TCP connection at once, without waiting for a closing handshake."""
    ws.shutdown()


def text_of(data: bytes | str) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def decode(raw: str) -> dict[str, Any]:
    """The frame as an object; {} for anything else (the ledger then reports the frame, with
    its first characters, as one that belongs to no run)."""
    try:
        frame = json.loads(raw)
    except ValueError:
        return {}
    return frame if isinstance(frame, dict) else {}
