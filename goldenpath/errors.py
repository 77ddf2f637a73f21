"""The client's exceptions: each message is one line an engineer can act on.

Messages never hold a secret: URLs are shown through ``mask_url`` (a ``?token=`` is
masked) and answer bodies through ``mask_text`` with the call's secrets.
"""

from __future__ import annotations


class GoldenPathError(Exception):
    """Base of everything the client raises about the target."""


class GoldenPathTimeout(GoldenPathError, TimeoutError):
    """A call did not finish within its timeout."""


class Unreachable(GoldenPathError):
    """Nothing accepts connections at the address (refused, unresolvable, unroutable)."""


class ProtocolError(GoldenPathError):
    """The peer answered, but not in the protocol: not WebSocket, non-JSON, wrong first frame."""


class ConnectionLost(GoldenPathError):
    """The WebSocket closed while something was still expected on it."""


class AuthRefused(GoldenPathError):
    """Credentials were refused: HTTP 401/403, or close code 1008 right after the upgrade."""

    def __init__(self, message: str, *, status: int | None = None, close_code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.close_code = close_code


class HttpStatusError(GoldenPathError):
    """An HTTP call got a status the protocol does not give for a good request."""

    def __init__(self, message: str, *, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
