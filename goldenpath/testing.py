"""Helpers the layers' tests share: how a missing service is reported."""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest

from goldenpath.config import SPECS_BY_NAME, is_true

REQUIRE_VAR = "GOLDENPATH_REQUIRE_SERVICES"


def services_required() -> bool:
    return is_true(os.environ.get(REQUIRE_VAR, "0"))


def service_missing(service: str, why: str) -> NoReturn:
    """Skip on a laptop; fail where the services must be there (CI sets GOLDENPATH_REQUIRE_SERVICES=1)."""
    message = f"{service} is not available: {why}"
    if services_required():
        pytest.fail(f"{message} ({REQUIRE_VAR}=1, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


def environ_without_settings() -> dict[str, str]:
    """This process's environment minus every goldenpath and refstack setting, for a child
    (a nox session, an invoke task) that must see only the settings a test gives it."""
    return {key: value for key, value in os.environ.items()
            if key not in SPECS_BY_NAME and not key.startswith(("GOLDENPATH_", "REFSTACK_"))}


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
