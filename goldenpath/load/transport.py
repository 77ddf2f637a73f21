"""A lean HTTP/1.1 transport for httpx: the load runner's logins, privacy reads and /health polls.

Why not httpx's own transport: at load (hundreds of logins in flight) its stack was the largest
single client cost, more than every WebSocket frame together. httpcore's pool compares each
waiting request with each connection on every state change (quadratic), and every socket read
and write goes through anyio's wrappers (``extra_attributes`` alone was a tenth of the CPU).
This transport keeps httpx's client API (AuthClient and BackendApi take an ``AsyncClient`` as
before: same requests, same answers, same errors) and replaces only the layer below it: h11
(the HTTP/1.1 state machine httpcore itself uses) over asyncio streams, with a LIFO stack of
idle keep-alive connections per origin, at most ``max_connections`` busy at once.

A pooled connection the server closed while it sat idle fails on reuse before anything was
handled: the request is then sent once more on a fresh connection (only then: a request that
reached the server is never repeated). Plain ``http`` only: ``https`` and proxies stay with
httpx's default transport (``new_client`` mounts it for them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import h11
import httpx

READ_CHUNK = 65536
# A request that waits longer than this for a free connection fails like httpx's PoolTimeout.
DEFAULT_TIMEOUT_S = 30.0

Origin = tuple[str, int]
_Answer = tuple[int, list[tuple[bytes, bytes]], bytes, bool]  # status, headers, body, reusable


class _Connection:
    """One keep-alive connection: its streams and its h11 state."""

    __slots__ = ("fresh", "h11", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.fresh = True  # never used yet: a failure on it is not a stale keep-alive

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _StaleConnection(Exception):
    """A reused keep-alive connection was closed by the server before it answered."""


class LeanTransport(httpx.AsyncBaseTransport):
    """h11 over asyncio streams, keep-alive, at most ``max_connections`` requests in flight."""

    def __init__(self, *, max_connections: int = 16) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"the lean transport speaks plain http, not {url.scheme}")
        origin = (url.host, url.port or 80)
        timeouts = request.extensions.get("timeout", {})
        pool_s = timeouts.get("pool") or DEFAULT_TIMEOUT_S
        body = await request.aread()
        try:
            async with asyncio.timeout(pool_s):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(f"no free connection within {pool_s:g}s", request=request) from None
        try:
            for _ in (1, 2):
                conn = await self._checkout(origin, request, timeouts.get("connect"))
                try:
                    status, headers, content, reusable = await self._exchange(conn, request, body, timeouts)
                except _StaleConnection:
                    conn.close()
                    continue  # only a reused connection the server had closed: nothing was handled
                except BaseException:
                    conn.close()
                    raise
                if reusable and not self._closed:
                    self._idle.setdefault(origin, deque()).append(conn)
                else:
                    conn.close()
                return httpx.Response(status, headers=headers, stream=httpx.ByteStream(content),
                                      request=request, extensions={"http_version": b"HTTP/1.1"})  # fmt: skip
            raise httpx.RemoteProtocolError("the server closed two connections in a row unanswered",
                                            request=request)  # fmt: skip
        finally:
            self._slots.release()

    async def _checkout(self, origin: Origin, request: httpx.Request, connect_s: float | None) -> _Connection:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to have timed out
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            conn.close()
        try:
            async with asyncio.timeout(connect_s):
                reader, writer = await asyncio.open_connection(origin[0], origin[1], limit=READ_CHUNK)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {origin[0]}:{origin[1]} within {connect_s}s",
                                       request=request) from None  # fmt: skip
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from None
        return _Connection(reader, writer)

    async def _exchange(self, conn: _Connection, request: httpx.Request, body: bytes,
                        timeouts: dict[str, float | None]) -> _Answer:  # fmt: skip
        fresh, conn.fresh = conn.fresh, False
        machine = conn.h11
        headers = [(k, v) for k, v in request.headers.raw]
        wire = machine.send(h11.Request(method=request.method, target=request.url.raw_path, headers=headers))
        wire = wire or b""
        if body:
            wire += machine.send(h11.Data(data=body)) or b""
        wire += machine.send(h11.EndOfMessage()) or b""
        try:
            conn.writer.write(wire)
            async with asyncio.timeout(timeouts.get("write")):
                await conn.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("the request was not sent in time", request=request) from None
        except OSError as exc:
            if not fresh:
                raise _StaleConnection from exc
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from None
        status, answer_headers, chunks = 0, [], []
        try:
            async with asyncio.timeout(timeouts.get("read")):
                while True:
                    event = machine.next_event()
                    if event is h11.NEED_DATA:
                        data = await conn.reader.read(READ_CHUNK)
                        if not data and not fresh and status == 0:
                            raise _StaleConnection
                        machine.receive_data(data)
                    elif isinstance(event, h11.Response):
                        status, answer_headers = event.status_code, list(event.headers)
                    elif isinstance(event, h11.Data):
                        chunks.append(bytes(event.data))
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        raise httpx.RemoteProtocolError("the server closed the connection mid-answer",
                                                        request=request)  # fmt: skip
        except TimeoutError:
            raise httpx.ReadTimeout("the answer did not come in time", request=request) from None
        except ConnectionError as exc:
            if not fresh and status == 0:
                raise _StaleConnection from exc
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from None
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(f"a malformed answer: {exc}", request=request) from None
        reusable = machine.our_state is h11.DONE and machine.their_state is h11.DONE
        if reusable:
            machine.start_next_cycle()
        return status, answer_headers, b"".join(chunks), reusable

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()


class _LazyHttps(httpx.AsyncBaseTransport):
    """httpx's own transport for https, built on first use: its TLS context (the CA bundle read
    and parsed) costs a tenth of a second that a loopback run never needs."""

    def __init__(self, max_connections: int) -> None:
        self._max = max_connections
        self._inner: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._inner is None:
            limits = httpx.Limits(max_connections=self._max, max_keepalive_connections=self._max)
            self._inner = httpx.AsyncHTTPTransport(limits=limits)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


def new_client(*, max_connections: int = 16) -> httpx.AsyncClient:
    """An AsyncClient on the lean transport for plain http; httpx's own transport for https."""
    lean = LeanTransport(max_connections=max_connections)
    return httpx.AsyncClient(transport=lean, mounts={"https://": _LazyHttps(max_connections)})
