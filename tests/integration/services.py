"""Real PostgreSQL, Redis and ClickHouse for one test session, each in a space of its own.

The URLs come from the process environment (DATABASE_URL, REDIS_URL, CLICKHOUSE_URL). A
session gets a fresh PostgreSQL database, an empty Redis database index and a fresh
ClickHouse database, all removed at the end, so two sessions on one server never meet.
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import redis
from psycopg import sql

from goldenpath.checks.probes import ProbePolicy, probe_redis, run_probe
from goldenpath.core.http import free_port

CONNECT_TIMEOUT_S = 3
REDIS_CLAIM_KEY = "goldenpath:integration:claim"


class Unavailable(Exception):
    """The service is not configured or does not answer; the message says which."""


def fresh_name() -> str:
    return f"goldenpath_it_{secrets.token_hex(6)}"


def with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{path}", parts.query, parts.fragment))


@dataclass(frozen=True)
class RealServices:
    """The provisioned services; None for one that is missing, with the reason in `missing`."""

    database_url: str | None = None
    redis_url: str | None = None
    clickhouse_url: str | None = None
    missing: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        values = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "CLICKHOUSE_URL": self.clickhouse_url,
        }
        return {name: value for name, value in values.items() if value is not None}


def configured(variable: str) -> str:
    value = os.environ.get(variable, "").strip()
    if not value:
        raise Unavailable(f"{variable} is not set")
    return value


# ---------------------------------------------------------------------------- PostgreSQL


def _admin(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        raise Unavailable(f"cannot connect with DATABASE_URL: {str(exc).strip().splitlines()[0]}") from None


@contextmanager
def fresh_postgres() -> Iterator[str]:
    dsn = configured("DATABASE_URL")
    name = fresh_name()
    with _admin(dsn) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_path(dsn, name)
    finally:
        with _admin(dsn) as admin:
            # FORCE: a refstack that did not stop cleanly must not keep the database alive.
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# ---------------------------------------------------------------------------------- Redis


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=CONNECT_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S
    )


def redis_keys(url: str) -> set[str]:
    """Every key of the session's database index but our claim marker."""
    with redis_client(url) as client:
        return {key.decode() for key in client.scan_iter(count=1000)} - {REDIS_CLAIM_KEY}


@contextmanager
def fresh_redis() -> Iterator[str]:
    url = configured("REDIS_URL")
    token = secrets.token_hex(8)
    # goldenpath's own probe first: it has a hard deadline, so a peer that is not Redis (or
    # one that drips bytes) is an unavailable service, not a test run that hangs.
    checked = run_probe("redis", url, probe_redis, ProbePolicy(timeout_s=5.0, deadline_s=10.0))
    if not checked.ok:
        raise Unavailable(f"REDIS_URL does not answer PING: {checked.detail}")
    # Indexes 1-15, randomly: index 0 is where everything else lands by default.
    for index in random.sample(range(1, 16), 15):
        candidate = with_path(url, str(index))
        with redis_client(candidate) as client:
            # The claim makes two sessions that pick the same empty index at once see each other.
            if client.set(REDIS_CLAIM_KEY, token, nx=True) and client.dbsize() == 1:
                break
            if client.get(REDIS_CLAIM_KEY) == token.encode():
                client.delete(REDIS_CLAIM_KEY)
    else:
        raise Unavailable("no empty Redis database index among 1-15 to use")
    try:
        yield candidate
    finally:
        with redis_client(candidate) as client:
            client.flushdb()


# ----------------------------------------------------------------------------- ClickHouse


def clickhouse(url: str, query: str) -> str:
    """One statement over the HTTP interface; credentials in the URL become basic auth."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, "/", "", ""))
    answer = httpx.post(base, content=query.encode(), timeout=CONNECT_TIMEOUT_S)
    if answer.status_code != 200:
        raise Unavailable(f"ClickHouse answered {answer.status_code}: {answer.text.strip()[:200]}")
    return answer.text


@contextmanager
def fresh_clickhouse() -> Iterator[str]:
    url = configured("CLICKHOUSE_URL")
    try:
        clickhouse(url, "SELECT 1")
    except httpx.HTTPError as exc:
        raise Unavailable(f"CLICKHOUSE_URL does not answer: {exc}") from None
    name = fresh_name()
    clickhouse(url, f"CREATE DATABASE {name}")
    try:
        # refstack takes the database from CLICKHOUSE_URL's path.
        yield with_path(url, name)
    finally:
        clickhouse(url, f"DROP DATABASE IF EXISTS {name}")


@contextmanager
def provisioned() -> Iterator[RealServices]:
    """Whatever of the three answers; the rest is listed in `missing`."""
    found: dict[str, str] = {}
    missing: dict[str, str] = {}
    with ExitStack() as cleanup:
        for service, fresh in (
            ("PostgreSQL", fresh_postgres),
            ("Redis", fresh_redis),
            ("ClickHouse", fresh_clickhouse),
        ):
            try:
                found[service] = cleanup.enter_context(fresh())
            except Unavailable as exc:
                missing[service] = str(exc)
        yield RealServices(found.get("PostgreSQL"), found.get("Redis"), found.get("ClickHouse"), missing)


# ---------------------------------------------------------------------------- own Redis


class OwnRedis:
    """A redis-server of this test's own, so stopping it disturbs nobody else."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        quick = ProbePolicy(timeout_s=1.0, retries=0)
        while run_probe("redis", self.url, probe_redis, quick).status != "ok":
            assert time.monotonic() < deadline, "redis-server did not start within 10s"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=10)
