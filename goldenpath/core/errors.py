"""Every exception goldenpath raises, in one place (as httpx keeps its own in one module).

Each message is one line an engineer can act on, and never holds a secret: URLs are shown
through ``mask_url`` (a ``?token=`` is masked) and answer bodies through ``mask_text``.

Two families: configuration and usage errors (``ConfigError``, ``PolicyError``: exit 2 at
the command line), and what the target, a service or the machine did (the rest: exit 1).
"""

from __future__ import annotations

# --------------------------------------------------------------------------- usage and configuration

class ConfigError(Exception):
    """A setting, flag or file is wrong; the message names where it came from and what to do."""


class PolicyError(ConfigError, ValueError):
    """A docker clean policy cannot be applied as given; the message says what to change."""


# --------------------------------------------------------------------------- the target, over the wire

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


# --------------------------------------------------------------------------- probes of services

class ProbeFailure(Exception):
    """The service did not answer as it should; the message says how it answered."""


class ProbeSkipped(Exception):
    """The probe cannot run with what is configured; the message says what is missing."""


# --------------------------------------------------------------------------- processes and engines

class StackError(Exception):
    """The stack could not be started or stopped; the message says why and what to do."""


class ProcessGone(Exception):
    """The process being watched is no longer there."""


class DockerError(Exception):
    """The engine could not do what we asked; the message is one line, ready to print."""


class DockerUnavailable(DockerError):
    """Nothing usable answers at DOCKER_HOST (no socket, refused, timed out)."""
