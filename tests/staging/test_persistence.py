"""What a chat leaves behind: its history over the API, its analytics rows, and its test user."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from goldenpath.core.errors import AuthRefused
from goldenpath.core.masking import mask_url
from goldenpath.core.settings import Settings
from goldenpath.output.reports import LayerReport
from goldenpath.protocol.contract import Violation
from goldenpath.protocol.events import Run
from goldenpath.testkit.plugin import TEST_USER_PREFIX
from goldenpath.testkit.support import service_missing

from .support import (
    BACKEND_READINESS,
    LAYER,
    StagingSession,
    clickhouse_rows_of_run,
    clickhouse_table,
    read_readiness,
    run,
    thread_of,
)

POLL_INTERVAL_S = 0.25
TABLE_SETTING = "GOLDENPATH_CLICKHOUSE_EVENTS_TABLE"
ANALYTICS_DEADLINE_SETTING = "GOLDENPATH_ANALYTICS_DEADLINE_S"


class Conversation:
    """One new test user's messages in one new thread, and what the API then says about them."""

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.history: list[dict[str, Any]] = []
        self.history_status = 0
        self.thread_ids: list[object] = []
        self.violations: list[Violation] = []

    @property
    def thread_id(self) -> str:
        return thread_of(self.runs[0])

    async def hold(self, settings: Settings, report: LayerReport, texts: list[str]) -> Conversation:
        async with StagingSession(settings) as session:
            tokens = await session.new_user()
            connection = await session.connect(tokens)
            clock = await connection.sync_clock()
            for text in texts:
                sent = await connection.ask(text, thread_id=self.thread_id if self.runs else None)
                self.runs.append(sent)
                report.add_run(sent, clock)
            # A deployment may store asynchronously: read until every message and answer is there.
            path = f"/api/threads/{self.thread_id}/messages"
            deadline = time.monotonic() + settings.timeout_s
            while True:
                self.history_status, body = await session.get(path, tokens)
                messages = body.get("messages") if isinstance(body, dict) else None
                entries = messages if isinstance(messages, list) else []
                self.history = [m for m in entries if isinstance(m, dict)]
                if len(self.history) >= 2 * len(texts) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(POLL_INTERVAL_S)
            _, listing = await session.get("/api/threads", tokens)
            # Checked only now, drained: frames a run sends after its end (while the history
            # was read) count against it.
            self.violations = await session.drained(connection)
            report.add_violations(self.violations)
        threads = listing.get("threads") if isinstance(listing, dict) else None
        self.thread_ids = [t.get("thread_id") for t in threads or [] if isinstance(t, dict)]
        return self


@pytest.mark.websocket
@pytest.mark.golden_path
def test_messages_are_persisted_and_retrievable_in_order(
    gp_settings: Settings, gp_report: LayerReport
) -> None:
    """Two messages in one thread: the history holds each user message and its answer, in order,
    under the run that produced them, and the thread is in the user's thread list."""
    texts = ["goldenpath staging: first message", "goldenpath staging: second message"]
    chat = run(Conversation().hold(gp_settings, gp_report, texts), gp_settings, runs=len(texts))
    assert not chat.violations, "contract violations: " + "; ".join(map(str, chat.violations))
    for sent in chat.runs:
        assert sent.outcome == "agent_completed", (
            f"the run of {sent.text!r} ended with {sent.outcome}: {[e.frame for e in sent.events[-1:]]}"
        )
    expected = []
    for sent in chat.runs:
        expected += [("user", sent.text, sent.run_id), ("assistant", sent.answer, sent.run_id)]
    stored = [(m.get("role"), m.get("content"), m.get("run_id")) for m in chat.history]
    assert chat.history_status == 200, (
        f"the history of thread {chat.thread_id} answered HTTP {chat.history_status}"
    )
    assert stored == expected, (
        f"history of thread {chat.thread_id} is not the conversation, in order, within "
        f"{gp_settings.timeout_s:g}s:\n  stored   {stored}\n  expected {expected}"
    )
    assert chat.thread_id in chat.thread_ids, (
        f"thread {chat.thread_id} is not in the user's GET /api/threads: {chat.thread_ids[:10]}"
    )


@pytest.mark.real_services
@pytest.mark.websocket
def test_analytics_rows_reach_clickhouse(gp_settings: Settings, gp_report: LayerReport) -> None:
    """Each event of a run becomes one row of the analytics table (part of the platform's data
    contract, so read from ClickHouse directly), within a deadline."""
    url = gp_settings.clickhouse_url
    if not url:
        service_missing("ClickHouse", "the profile does not configure CLICKHOUSE_URL")
    # The profile may name a ClickHouse this platform does not write to; its readiness says so.
    analytics = read_readiness(BACKEND_READINESS, gp_settings).checks.get("clickhouse")
    if isinstance(analytics, dict) and analytics.get("status") == "not_configured":
        service_missing("ClickHouse analytics", "the backend's readiness reports clickhouse not_configured: "
                        "it records no analytics, although the profile sets CLICKHOUSE_URL")  # fmt: skip
    table = clickhouse_table(url, gp_settings.values[TABLE_SETTING])
    deadline_s = float(gp_settings.values[ANALYTICS_DEADLINE_SETTING])
    chat = run(Conversation().hold(gp_settings, gp_report, ["goldenpath staging: analytics"]), gp_settings,
               runs=1)  # fmt: skip
    assert not chat.violations, "contract violations: " + "; ".join(map(str, chat.violations))
    [sent] = chat.runs
    assert sent.run_id, f"the run of message {sent.message_id} never named its run_id"
    expected = len(sent.events)
    deadline = time.monotonic() + deadline_s
    while (rows := clickhouse_rows_of_run(url, table, sent.run_id, gp_settings.timeout_s)) < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_INTERVAL_S)
    assert rows == expected, (
        f"{table} at {mask_url(url)} holds {rows} row(s) for run {sent.run_id} after {deadline_s:g}s; "
        f"expected {expected}, one per event received ({', '.join(e.type or '?' for e in sent.events)})"
    )


def test_test_users_are_recognisable_and_logged_out(gp_settings: Settings) -> None:
    """Staging is shared, so what this layer leaves behind must be recognisable and inert.

    The protocol has no user deletion: test users stay in the auth service's store. Each
    carries user_email's prefix (goldenpath-test-staging-...), so an operator can find and purge
    them, and every session the layer opens is logged out when its scenario ends
    (StagingSession); here it is checked that a logout really revokes the session.
    """

    async def scenario() -> tuple[dict[str, Any], AuthRefused | None]:
        async with StagingSession(gp_settings) as session:
            tokens = await session.new_user()
            claims = await session.client.auth.validate(tokens.access_token)
            await session.logout(tokens)
            assert tokens.refresh_token, "the login answered without a refresh token"
            try:
                await session.client.auth.refresh(tokens.refresh_token)
            except AuthRefused as refused:
                return claims, refused
            return claims, None

    claims, refused = run(scenario(), gp_settings)
    prefix = f"{TEST_USER_PREFIX}-{LAYER}-"
    assert str(claims.get("email", "")).startswith(prefix), (
        f"the test user's email {claims.get('email')!r} does not carry the prefix {prefix!r}"
    )
    assert refused is not None, "after logout the refresh token still gets new tokens: not revoked"
    assert refused.status == 401, f"a revoked refresh token should get 401, got: {refused}"
