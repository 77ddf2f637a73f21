"""What only real services can show: rows in ClickHouse, keys in Redis, data that outlives a process."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .services import clickhouse, redis_keys
from .stacks import launched, require
from .wire import Event, Target, auth_post, bypass_user, history, run, user_run

pytestmark = pytest.mark.real_services


@pytest.fixture
def target(services_target: Target) -> Target:
    """Only the real-services stack: SQLite has no rows, keys or second process to show."""
    return services_target


ANALYTICS_BOUND_S = 5.0


def analytics_rows(url: str, run_id: str) -> list[dict[str, object]]:
    """Rows of any table in the session's ClickHouse database that mention run_id.

    The protocol names the columns' meaning, not their names, so rows are matched by value.
    """
    database = urlsplit(url).path.strip("/")
    # The database name is the one this session generated (services.fresh_name), not input.
    tables = clickhouse(url, f"SELECT name FROM system.tables WHERE database = '{database}'").split()  # noqa: S608
    rows: list[dict[str, object]] = []
    for table in tables:
        dump = clickhouse(url, f"SELECT * FROM {database}.{table} FORMAT JSONEachRow")  # noqa: S608
        for line in dump.splitlines():
            row = json.loads(line)
            if run_id in row.values():
                rows.append(row)
    return rows


def test_clickhouse_gets_a_row_per_event(target: Target) -> None:
    url = require(target, "CLICKHOUSE_URL", "ClickHouse")
    user = bypass_user(target)
    events = run(user_run(target, user, "count me"))
    run_id = events[0]["run_id"]
    deadline = time.monotonic() + ANALYTICS_BOUND_S
    while len(rows := analytics_rows(url, run_id)) < len(events) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(rows) == len(events), f"{len(rows)} rows for {len(events)} events within {ANALYTICS_BOUND_S}s"
    kinds = Counter(kind for row in rows for kind in row.values() if kind in {e["type"] for e in events})
    assert kinds == Counter(e["type"] for e in events)
    assert all(user.user_id in row.values() for row in rows)


def test_redis_holds_sessions_and_revocations(target: Target) -> None:
    url = require(target, "REDIS_URL", "Redis")
    before = redis_keys(url)
    user = bypass_user(target)
    after_login = redis_keys(url)
    assert after_login - before, "logging in left no trace in Redis"
    assert auth_post(target, "/auth/logout", {"refresh_token": user.refresh_token}).status_code == 204
    assert redis_keys(url) - after_login, "logging out left no trace in Redis"


def restarted(target: Target, *names: str) -> dict[str, str]:
    """The environment a second refstack needs to share the first one's named services."""
    return {name: target.env[name] for name in names}


def test_revocation_outlives_the_process(target: Target, state_dir: Path) -> None:
    require(target, "REDIS_URL", "Redis")
    revoked, kept = bypass_user(target), bypass_user(target)
    assert auth_post(target, "/auth/logout", {"refresh_token": revoked.refresh_token}).status_code == 204
    with launched(state_dir, env=restarted(target, "REDIS_URL", "DATABASE_URL")) as second:
        assert auth_post(second, "/auth/refresh", {"refresh_token": kept.refresh_token}).status_code == 200
        answer = auth_post(second, "/auth/refresh", {"refresh_token": revoked.refresh_token})
    assert answer.status_code == 401, "a new process forgot the revocation: it did not live in Redis"


def test_history_outlives_the_process(target: Target, state_dir: Path) -> None:
    require(target, "DATABASE_URL", "PostgreSQL")
    user = bypass_user(target)
    events: list[Event] = run(user_run(target, user, "remember me"))
    with launched(state_dir, env=restarted(target, "DATABASE_URL")) as second:
        answer = history(second, user, events[0]["thread_id"])
    assert answer.status_code == 200, answer.text
    assert [m["content"] for m in answer.json()["messages"]] == ["remember me", events[-1]["data"]["result"]]
