"""python -m refstack [--only auth|backend]: both services in one process by default.

Two uvicorn servers share one asyncio loop and one set of settings and resources. SIGTERM
and SIGINT stop both promptly (open WebSockets are closed with 1012). Any startup problem
is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Generator

import uvicorn
from starlette.applications import Starlette

from refstack import __version__
from refstack.auth_app import build_auth_app
from refstack.backend_app import build_backend_app
from refstack.services import Services, build_services
from refstack.settings import ListenAddress, Settings, SettingsError, load_settings

log = logging.getLogger("refstack")

EXIT_STARTUP = 1
EXIT_SETTINGS = 2
GRACEFUL_SHUTDOWN_SECONDS = 1


class StartupError(Exception):
    """The process cannot start; the message is one line fit for stderr."""


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to us: two servers share one loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m refstack",
        description="refstack: the golden-path reference stack (auth service and backend).",
    )
    parser.add_argument(
        "--only",
        choices=("auth", "backend"),
        help="run only one of the two services (default: both, in one process)",
    )
    parser.add_argument("--version", action="version", version=f"refstack {__version__}")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"refstack: error: {exc}", file=sys.stderr)
        return EXIT_SETTINGS

    _configure_logging(settings)
    roles = ("auth", "backend") if args.only is None else (args.only,)
    try:
        return asyncio.run(_serve(settings, roles))
    except StartupError as exc:
        print(f"refstack: error: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    except KeyboardInterrupt:
        return 0


async def _serve(settings: Settings, roles: tuple[str, ...]) -> int:
    addresses = {"auth": settings.auth, "backend": settings.backend}
    if len(roles) == 2 and (settings.auth.host, settings.auth.port) == (
        settings.backend.host,
        settings.backend.port,
    ):
        raise StartupError(
            f"AUTH_SERVICE_URL and BACKEND_URL both point at {settings.auth.host}:{settings.auth.port}"
        )
    sockets: dict[str, socket.socket] = {}
    try:
        for role in roles:
            sockets[role] = _bind(role, addresses[role])
    except StartupError:
        for sock in sockets.values():
            sock.close()
        raise

    services = build_services(settings, analytics="backend" in roles)
    servers: list[_Server] = []
    try:
        await services.start()
        for role in roles:
            app = build_auth_app(services) if role == "auth" else build_backend_app(services)
            servers.append(_Server(_uvicorn_config(settings, app)))
        _install_signal_handlers(servers)
        _announce(settings, roles, services)
        tasks = [
            asyncio.create_task(server.serve(sockets=[sockets[role]]), name=f"refstack-{role}")
            for role, server in zip(roles, servers, strict=True)
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # One server ending (normally: a signal) ends the other too.
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                raise StartupError(f"server stopped: {task.exception()}")
    finally:
        await services.stop()
        for sock in sockets.values():
            sock.close()
    log.info("refstack stopped")
    return 0


def _uvicorn_config(settings: Settings, app: Starlette) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="off",  # resources are shared by both servers and started once, above
        log_config=None,  # our logging setup stands
        access_log=settings.access_log,
        http="h11",
        ws="websockets-sansio",  # the lightest per-frame path of uvicorn's implementations
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=False,  # compression costs more CPU per event than it saves
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def _bind(role: str, address: ListenAddress) -> socket.socket:
    name = "auth service (AUTH_SERVICE_URL)" if role == "auth" else "backend (BACKEND_URL)"
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(2048)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StartupError(
            f"cannot listen on {address.host}:{address.port} for the {name}: {reason}"
        ) from None
    return sock


def _install_signal_handlers(servers: list[_Server]) -> None:
    loop = asyncio.get_running_loop()

    def stop(sig: signal.Signals) -> None:
        for server in servers:
            if server.should_exit:
                # A second signal: stop waiting for connections to close.
                server.force_exit = True
            server.should_exit = True
        log.info("received %s, shutting down", sig.name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)


def _announce(settings: Settings, roles: tuple[str, ...], services: Services) -> None:
    parts = []
    if "auth" in roles:
        parts.append(f"auth-service on {settings.auth.url}")
    if "backend" in roles:
        ws_url = settings.backend.url.replace("http", "ws", 1) + "/ws"
        parts.append(f"backend on {settings.backend.url} (WebSocket {ws_url})")
    redis = "redis" if settings.redis_url else "in-process"
    clickhouse = settings.clickhouse.display if settings.clickhouse else "not configured"
    log.info(
        "refstack %s: %s; mode %s, database %s, sessions %s, clickhouse %s",
        __version__,
        ", ".join(parts),
        settings.mode,
        settings.database_display,
        redis,
        clickhouse,
    )
    if settings.jwt_secret_is_dev_default:
        log.warning("JWT_SECRET_KEY is not set: signing with the documented local development key")
    elif len(settings.jwt_secret.encode()) < 32:
        log.warning("JWT_SECRET_KEY is shorter than 32 bytes, below the HS256 recommendation")
    if settings.faults.active:
        log.warning("FAULT INJECTION ACTIVE: REFSTACK_FAULTS=%s", settings.faults.spec)
    if settings.variants.active:
        log.info("healthy variants: REFSTACK_VARIANTS=%s", settings.variants.spec)


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # uvicorn.error logs every WebSocket accept at INFO: too chatty for 500 users.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if settings.access_log else logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
