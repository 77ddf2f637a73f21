"""Users, threads and messages: SQLite by default, PostgreSQL when DATABASE_URL says so.

Both back ends implement the same small async interface. A database that is down at start
does not stop refstack: the schema is created lazily on the first call that reaches it, and
every failure surfaces as StoreUnavailable so callers can answer 503 or agent_error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, LiteralString, TypeVar

from refstack.clock import iso_from_datetime, iso_ms

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("refstack.store")

T = TypeVar("T")


class StoreUnavailable(Exception):
    """The database cannot be reached or refused the operation."""


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    password_hash: str | None


@dataclass(frozen=True)
class ThreadInfo:
    thread_id: str
    title: str
    created_at: str
    updated_at: str

    def as_json(self) -> dict[str, str]:
        return {
            "thread_id": self.thread_id,
            "title": self.title,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Message:
    role: str  # "user" or "assistant"
    content: str
    message_id: str
    run_id: str
    created_at: float  # epoch seconds

    def as_json(self) -> dict[str, str]:
        return {
            "role": self.role,
            "content": self.content,
            "message_id": self.message_id,
            "run_id": self.run_id,
            "created_at": iso_ms(self.created_at),
        }


class Store(ABC):
    """What the services need from a database, nothing more."""

    kind: str

    @abstractmethod
    async def open(self) -> None:
        """Try to create the schema; a failure is logged, not raised (readiness shows it)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Run SELECT 1 (and create the schema if still missing); raise StoreUnavailable."""

    @abstractmethod
    async def create_user(self, email: str, password_hash: str) -> User | None:
        """Create a user; None when the email is taken."""

    @abstractmethod
    async def user_by_email(self, email: str) -> User | None: ...

    @abstractmethod
    async def ensure_user(self, email: str) -> User:
        """Get or create a password-less user (the E2E bypass)."""

    @abstractmethod
    async def start_turn(
        self, user_id: str, thread_id: str | None, title: str, message: Message
    ) -> str | None:
        """Store a user message, creating the thread when thread_id is None.

        Returns the thread id, or None when thread_id is unknown or someone else's.
        """

    @abstractmethod
    async def add_message(self, thread_id: str, message: Message) -> None: ...

    @abstractmethod
    async def list_threads(self, user_id: str) -> list[ThreadInfo]: ...

    @abstractmethod
    async def thread_messages(self, thread_id: str, owner: str | None) -> list[Message] | None:
        """Messages in order, or None when the thread does not exist or is not owner's.

        owner=None skips the ownership check (only the idor fault does that).
        """


def open_store(database_url: str | None, sqlite_path: str | None) -> Store:
    if database_url is not None:
        return PostgresStore(database_url)
    assert sqlite_path is not None
    return SQLiteStore(sqlite_path)


def _new_id() -> str:
    return str(uuid.uuid4())


# --------------------------------------------------------------------------- SQLite

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS threads (
    thread_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS threads_by_user ON threads (user_id, updated_at);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id TEXT NOT NULL REFERENCES threads (thread_id),
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    message_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_thread ON messages (thread_id, seq);
"""


class SQLiteStore(Store):
    """SQLite behind one worker thread that owns the connection (see _SQLiteWorker)."""

    kind = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._worker = _SQLiteWorker(self._connect)

    async def open(self) -> None:
        try:
            await self.ping()
        except StoreUnavailable as exc:
            log.warning("database unavailable at start (will retry on use): %s", exc)

    async def close(self) -> None:
        await asyncio.to_thread(self._worker.stop)

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: the worker opens and commits its transactions itself.
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(_SQLITE_SCHEMA)
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._worker.submit(fn)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc

    async def ping(self) -> None:
        await self._call(lambda conn: conn.execute("SELECT 1").fetchone())

    async def create_user(self, email: str, password_hash: str) -> User | None:
        user_id = _new_id()

        def work(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT INTO users (user_id, email, password_hash, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (email) DO NOTHING",
                (user_id, email, password_hash, iso_ms()),
            )
            return cur.rowcount == 1

        created = await self._call(work)
        return User(user_id, email, password_hash) if created else None

    async def user_by_email(self, email: str) -> User | None:
        def work(conn: sqlite3.Connection) -> User | None:
            row = conn.execute(
                "SELECT user_id, email, password_hash FROM users WHERE email = ?", (email,)
            ).fetchone()
            return User(row[0], row[1], row[2]) if row else None

        return await self._call(work)

    async def ensure_user(self, email: str) -> User:
        user_id = _new_id()

        def work(conn: sqlite3.Connection) -> User:
            conn.execute(
                "INSERT INTO users (user_id, email, password_hash, created_at) VALUES (?, ?, NULL, ?)"
                " ON CONFLICT (email) DO NOTHING",
                (user_id, email, iso_ms()),
            )
            row = conn.execute(
                "SELECT user_id, email, password_hash FROM users WHERE email = ?", (email,)
            ).fetchone()
            return User(row[0], row[1], row[2])

        return await self._call(work)

    async def start_turn(
        self, user_id: str, thread_id: str | None, title: str, message: Message
    ) -> str | None:
        def work(conn: sqlite3.Connection) -> str | None:
            now = iso_ms(message.created_at)
            if thread_id is None:
                tid = _new_id()
                conn.execute(
                    "INSERT INTO threads (thread_id, user_id, title, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (tid, user_id, title, now, now),
                )
            else:
                row = conn.execute("SELECT user_id FROM threads WHERE thread_id = ?", (thread_id,)).fetchone()
                if row is None or row[0] != user_id:
                    return None
                tid = thread_id
                conn.execute("UPDATE threads SET updated_at = ? WHERE thread_id = ?", (now, tid))
            _insert_message(conn, tid, message)
            return tid

        return await self._call(work)

    async def add_message(self, thread_id: str, message: Message) -> None:
        def work(conn: sqlite3.Connection) -> None:
            _insert_message(conn, thread_id, message)
            conn.execute(
                "UPDATE threads SET updated_at = ? WHERE thread_id = ?",
                (iso_ms(message.created_at), thread_id),
            )

        await self._call(work)

    async def list_threads(self, user_id: str) -> list[ThreadInfo]:
        def work(conn: sqlite3.Connection) -> list[ThreadInfo]:
            rows = conn.execute(
                "SELECT thread_id, title, created_at, updated_at FROM threads WHERE user_id = ?"
                " ORDER BY updated_at DESC, created_at DESC",
                (user_id,),
            ).fetchall()
            return [ThreadInfo(*row) for row in rows]

        return await self._call(work)

    async def thread_messages(self, thread_id: str, owner: str | None) -> list[Message] | None:
        def work(conn: sqlite3.Connection) -> list[Message] | None:
            row = conn.execute("SELECT user_id FROM threads WHERE thread_id = ?", (thread_id,)).fetchone()
            if row is None or (owner is not None and row[0] != owner):
                return None
            rows = conn.execute(
                "SELECT role, content, message_id, run_id, created_at FROM messages"
                " WHERE thread_id = ? ORDER BY seq",
                (thread_id,),
            ).fetchall()
            return [Message(*r) for r in rows]

        return await self._call(work)


_Job = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]
_MAX_BATCH = 256


class _SQLiteWorker:
    """One thread owns the connection and runs queued operations in batches.

    Each batch is one transaction (one commit) with a savepoint per operation, so an
    operation is still atomic and a failing one does not undo its neighbours. Compared
    with asyncio.to_thread per call, this removes the thread-pool and GIL hand-offs that
    dominated the per-run cost under many concurrent users, and wakes the event loop once
    per batch instead of once per operation.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._conn: sqlite3.Connection | None = None
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._serve, name="refstack-sqlite", daemon=True)
                    self._thread.start()
        self._queue.put((fn, future, loop))
        return future

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5.0)
            self._thread = None

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            job = self._queue.get()
            if job is None:
                break
            batch = [job]
            while len(batch) < _MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            outcomes = self._execute(batch)
            try:
                batch[0][2].call_soon_threadsafe(_settle, outcomes)
            except RuntimeError:
                # The event loop is closed: nobody is waiting for these results any more.
                break
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _execute(self, batch: list[_Job]) -> list[_Outcome]:
        try:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
        except (sqlite3.Error, OSError) as exc:
            return [(future, None, exc) for _, future, _ in batch]
        outcomes: list[_Outcome] = []
        try:
            for fn, future, _ in batch:
                conn.execute("SAVEPOINT op")
                try:
                    result = fn(conn)
                except Exception as exc:  # belongs to this operation; its caller gets it
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((future, None, exc))
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((future, result, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # The transaction itself failed (disk full, I/O error): nothing was stored.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            return [(future, None, exc) for _, future, _ in batch]
        return outcomes


def _settle(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.done():  # the caller gave up (a readiness probe timed out)
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


def _insert_message(conn: sqlite3.Connection, thread_id: str, m: Message) -> None:
    conn.execute(
        "INSERT INTO messages (thread_id, role, content, message_id, run_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (thread_id, m.role, m.content, m.message_id, m.run_id, m.created_at),
    )


# --------------------------------------------------------------------------- PostgreSQL

_PG_SCHEMA: tuple[LiteralString, ...] = (
    """CREATE TABLE IF NOT EXISTS refstack_users (
        user_id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        password_hash TEXT,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS refstack_threads (
        thread_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        title TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS refstack_threads_by_user ON refstack_threads (user_id, updated_at)",
    """CREATE TABLE IF NOT EXISTS refstack_messages (
        seq BIGSERIAL PRIMARY KEY,
        thread_id TEXT NOT NULL REFERENCES refstack_threads (thread_id),
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        content TEXT NOT NULL,
        message_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS refstack_messages_by_thread ON refstack_messages (thread_id, seq)",
)

# Serialises schema creation when the auth service and the backend start at once against
# the same database: concurrent CREATE TABLE IF NOT EXISTS can still collide in pg_type.
_PG_SCHEMA_LOCK = 0x7E57A0C1

_PG_POOL_SIZE = 10
_PG_CONNECT_TIMEOUT = 3


class PostgresStore(Store):
    """psycopg 3 async connections in a small pool of our own (psycopg_pool is optional)."""

    kind = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(_PG_POOL_SIZE)
        self._schema_ready = False
        self._schema_lock = asyncio.Lock()

    async def open(self) -> None:
        try:
            await self.ping()
        except StoreUnavailable as exc:
            log.warning("database unavailable at start (will retry on use): %s", exc)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        import psycopg

        return await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, connect_timeout=_PG_CONNECT_TIMEOUT
        )

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], bool]]:
        """Yield (connection, reused); broken connections are dropped, not pooled."""
        import psycopg

        async with self._slots:
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else await self._connect()
            try:
                yield conn, reused
            except BaseException:
                await conn.close()
                raise
            if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await conn.close()
            else:
                self._idle.append(conn)

    async def _run(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        import psycopg

        await self._ensure_schema()
        for attempt in (1, 2):
            try:
                async with self._connection() as (conn, reused):
                    try:
                        return await fn(conn)
                    except psycopg.OperationalError:
                        # A pooled connection may have died with a server restart: retry once
                        # on a fresh one before calling the database down.
                        if reused and attempt == 1:
                            raise _Retry() from None
                        raise
            except _Retry:
                continue
            except psycopg.Error as exc:
                raise StoreUnavailable(f"postgresql: {_one_line(exc)}") from exc
            except OSError as exc:
                raise StoreUnavailable(f"postgresql: {exc}") from exc
        raise StoreUnavailable("postgresql: connection lost twice")

    async def _ensure_schema(self) -> None:
        import psycopg

        # The lock is uncontended once the schema exists; holding it makes sure only one
        # task creates the schema while the others wait for the outcome.
        async with self._schema_lock:
            if self._schema_ready:
                return
            try:
                async with self._connection() as (conn, _), conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_SCHEMA_LOCK,))
                    for statement in _PG_SCHEMA:
                        await conn.execute(statement)
            except psycopg.Error as exc:
                raise StoreUnavailable(f"postgresql: {_one_line(exc)}") from exc
            except OSError as exc:
                raise StoreUnavailable(f"postgresql: {exc}") from exc
            self._schema_ready = True

    async def ping(self) -> None:
        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute("SELECT 1")

        await self._run(work)

    async def create_user(self, email: str, password_hash: str) -> User | None:
        user_id = _new_id()

        async def work(conn: psycopg.AsyncConnection[Any]) -> bool:
            cur = await conn.execute(
                "INSERT INTO refstack_users (user_id, email, password_hash) VALUES (%s, %s, %s)"
                " ON CONFLICT (email) DO NOTHING",
                (user_id, email, password_hash),
            )
            return cur.rowcount == 1

        return User(user_id, email, password_hash) if await self._run(work) else None

    async def user_by_email(self, email: str) -> User | None:
        async def work(conn: psycopg.AsyncConnection[Any]) -> User | None:
            cur = await conn.execute(
                "SELECT user_id, email, password_hash FROM refstack_users WHERE email = %s",
                (email,),
            )
            row = await cur.fetchone()
            return User(row[0], row[1], row[2]) if row else None

        return await self._run(work)

    async def ensure_user(self, email: str) -> User:
        user_id = _new_id()

        async def work(conn: psycopg.AsyncConnection[Any]) -> User:
            await conn.execute(
                "INSERT INTO refstack_users (user_id, email) VALUES (%s, %s) ON CONFLICT (email) DO NOTHING",
                (user_id, email),
            )
            cur = await conn.execute(
                "SELECT user_id, email, password_hash FROM refstack_users WHERE email = %s",
                (email,),
            )
            row = await cur.fetchone()
            assert row is not None
            return User(row[0], row[1], row[2])

        return await self._run(work)

    async def start_turn(
        self, user_id: str, thread_id: str | None, title: str, message: Message
    ) -> str | None:
        now = _dt(message.created_at)
        m = message
        # One statement each (data-modifying CTEs): atomic without BEGIN/COMMIT round trips,
        # which dominate the cost of a run on PostgreSQL.
        if thread_id is None:
            sql: LiteralString = (
                "WITH t AS (INSERT INTO refstack_threads"
                " (thread_id, user_id, title, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING thread_id)"
                " INSERT INTO refstack_messages"
                " (thread_id, role, content, message_id, run_id, created_at)"
                " SELECT t.thread_id, %s, %s, %s, %s, %s FROM t RETURNING thread_id"
            )
            params: tuple[Any, ...] = (_new_id(), user_id, title, now, now)
        else:
            sql = (
                "WITH t AS (UPDATE refstack_threads SET updated_at = %s"
                " WHERE thread_id = %s AND user_id = %s RETURNING thread_id)"
                " INSERT INTO refstack_messages"
                " (thread_id, role, content, message_id, run_id, created_at)"
                " SELECT t.thread_id, %s, %s, %s, %s, %s FROM t RETURNING thread_id"
            )
            params = (now, thread_id, user_id)
        params += (m.role, m.content, m.message_id, m.run_id, now)

        async def work(conn: psycopg.AsyncConnection[Any]) -> str | None:
            cur = await conn.execute(sql, params)
            row = await cur.fetchone()
            return str(row[0]) if row else None

        return await self._run(work)

    async def add_message(self, thread_id: str, message: Message) -> None:
        m = message
        now = _dt(m.created_at)

        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(
                "WITH inserted AS (INSERT INTO refstack_messages"
                " (thread_id, role, content, message_id, run_id, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING thread_id)"
                " UPDATE refstack_threads SET updated_at = %s"
                " WHERE thread_id IN (SELECT thread_id FROM inserted)",
                (thread_id, m.role, m.content, m.message_id, m.run_id, now, now),
            )

        await self._run(work)

    async def list_threads(self, user_id: str) -> list[ThreadInfo]:
        async def work(conn: psycopg.AsyncConnection[Any]) -> list[ThreadInfo]:
            cur = await conn.execute(
                "SELECT thread_id, title, created_at, updated_at FROM refstack_threads"
                " WHERE user_id = %s ORDER BY updated_at DESC, created_at DESC",
                (user_id,),
            )
            return [
                ThreadInfo(r[0], r[1], iso_from_datetime(r[2]), iso_from_datetime(r[3]))
                for r in await cur.fetchall()
            ]

        return await self._run(work)

    async def thread_messages(self, thread_id: str, owner: str | None) -> list[Message] | None:
        async def work(conn: psycopg.AsyncConnection[Any]) -> list[Message] | None:
            cur = await conn.execute(
                "SELECT user_id FROM refstack_threads WHERE thread_id = %s", (thread_id,)
            )
            row = await cur.fetchone()
            if row is None or (owner is not None and row[0] != owner):
                return None
            cur = await conn.execute(
                "SELECT role, content, message_id, run_id, created_at FROM refstack_messages"
                " WHERE thread_id = %s ORDER BY seq",
                (thread_id,),
            )
            return [Message(r[0], r[1], r[2], r[3], r[4].timestamp()) for r in await cur.fetchall()]

        return await self._run(work)


class _Retry(Exception):
    pass


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
