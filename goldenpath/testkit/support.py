"""Helpers the layers' tests share: how a missing service is reported."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from functools import cache
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

from goldenpath.core.errors import ConfigError, GoldenPathTimeout
from goldenpath.core.settings import RESOLVED_VAR, SPECS_BY_NAME, Settings, load_settings

REQUIRE_VAR = "GOLDENPATH_REQUIRE_SERVICES"
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@cache
def current_settings() -> Settings:
    """The settings of this test run: handed on by the nox session, or resolved here once."""
    try:
        return load_settings(ROOT)
    except ConfigError as exc:
        pytest.exit(f"goldenpath: {exc}", returncode=2)


def services_required() -> bool:
    return current_settings().require_services


def service_missing(service: str, why: str) -> NoReturn:
    """Skip on a laptop; fail where the services must be there (CI sets GOLDENPATH_REQUIRE_SERVICES=1)."""
    message = f"{service} is not available: {why}"
    if services_required():
        pytest.fail(f"{message} ({REQUIRE_VAR}=1, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


def run_scenario(scenario: Coroutine[Any, Any, T], settings: Settings, *, calls: int) -> T:
    """Run an async scenario from a sync test (pytest-asyncio is not needed), bounded by the
    number of sequential network calls it makes times the profile's per-call timeout."""
    return asyncio.run(_bounded(scenario, calls * settings.timeout_s))


async def _bounded(scenario: Coroutine[Any, Any, T], bound_s: float) -> T:
    guard = asyncio.timeout(bound_s)
    try:
        async with guard:
            return await scenario
    except TimeoutError:
        if guard.expired():
            raise GoldenPathTimeout(f"scenario not finished within {bound_s:g}s") from None
        raise  # a call's own timeout, with its own message


def environ_without_settings() -> dict[str, str]:
    """This process's environment minus every goldenpath and refstack setting, for a child
    (a nox session, an invoke task) that must see only the settings a test gives it."""
    return {key: value for key, value in os.environ.items()
            if key not in SPECS_BY_NAME and key != RESOLVED_VAR
            and not key.startswith(("GOLDENPATH_", "REFSTACK_"))}
