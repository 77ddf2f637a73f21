"""Fixtures of the e2e layer: a scenario runner bound to the profile and the layer's report,
and one shared test user for the tests that are not about users themselves."""

from __future__ import annotations

import asyncio

import pytest

from goldenpath.client.auth import Tokens
from goldenpath.client.websocket import GoldenPathClient
from goldenpath.core.settings import Settings
from goldenpath.output.reports import LayerReport

from .helpers import RunPace, Scenario, SentLog, new_account, run_timeout_s


@pytest.fixture(scope="session")
def run_pace(gp_settings: Settings) -> RunPace:
    return RunPace(run_timeout_s(gp_settings))


@pytest.fixture(scope="session")
def sent_log() -> SentLog:
    return SentLog()


@pytest.fixture
def scenario(gp_settings: Settings, gp_report: LayerReport, run_pace: RunPace, sent_log: SentLog) -> Scenario:
    return Scenario(gp_settings, gp_report, run_pace, sent_log)


@pytest.fixture(scope="session")
def account(gp_settings: Settings) -> Tokens:
    """One password user for the whole layer: a shared staging then gains one user per run, not dozens."""

    async def register() -> Tokens:
        async with GoldenPathClient(gp_settings) as gp:
            return await new_account(gp.auth)

    return asyncio.run(register())
