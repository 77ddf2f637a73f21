"""Settings, read once from the environment. The variable names are the public interface."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from refstack.faults import FaultError, Faults, parse_faults
from refstack.variants import VariantError, Variants, parse_variants

# Documented, deliberately public: it only ever signs tokens in local mode, where anyone
# running the stack is its only user. Production mode refuses to start without a real key.
DEV_JWT_SECRET = "refstack-local-development-secret-do-not-use-in-production"  # noqa: S105

DEFAULT_AUTH_URL = "http://127.0.0.1:8081"
DEFAULT_BACKEND_URL = "http://127.0.0.1:8000"
DEFAULT_DATA_DIR = ".goldenpath/refstack"

Getter = Callable[[str], "str | None"]

_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message is one line fit for stderr."""


@dataclass(frozen=True)
class ListenAddress:
    url: str
    host: str
    port: int


@dataclass(frozen=True)
class ClickHouseTarget:
    base_url: str  # scheme://host:port, no credentials
    user: str | None
    password: str | None
    database: str

    @property
    def display(self) -> str:
        return f"{self.base_url}/{self.database}"


@dataclass(frozen=True)
class Settings:
    mode: str
    auth: ListenAddress
    backend: ListenAddress
    jwt_secret: str
    jwt_secret_is_dev_default: bool
    jwt_issuer: str
    jwt_audience: str
    access_ttl: int
    refresh_ttl: int
    e2e_key: str | None
    database_url: str | None  # postgresql://... or None for SQLite
    sqlite_path: str | None  # a file path or ":memory:" when database_url is None
    redis_url: str | None
    clickhouse: ClickHouseTarget | None
    faults: Faults
    step_delay_ms: float
    agent_tools: int
    max_text: int
    max_frame_bytes: int
    max_body_bytes: int
    access_log: bool
    variants: Variants = field(default_factory=Variants)

    @property
    def production(self) -> bool:
        return self.mode == "production"

    @property
    def database_display(self) -> str:
        if self.database_url is not None:
            return "postgresql://" + _hide_credentials(self.database_url)
        return f"sqlite:{self.sqlite_path}"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting; raise SettingsError with one clear line."""
    if env is None:
        env = os.environ

    def get(name: str) -> str | None:
        value = env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    mode = (get("REFSTACK_MODE") or "local").lower()
    if mode not in ("local", "production"):
        raise SettingsError(f"REFSTACK_MODE must be 'local' or 'production' (got {mode!r})")

    secret = get("JWT_SECRET_KEY")
    if secret is None and mode == "production":
        raise SettingsError("JWT_SECRET_KEY is required when REFSTACK_MODE=production")

    try:
        faults = parse_faults(env.get("REFSTACK_FAULTS"))
    except FaultError as exc:
        raise SettingsError(str(exc)) from None
    if faults.active and mode == "production":
        raise SettingsError("REFSTACK_FAULTS is refused when REFSTACK_MODE=production")
    try:
        # Healthy behaviour, so allowed in every mode.
        variants = parse_variants(env.get("REFSTACK_VARIANTS"))
    except VariantError as exc:
        raise SettingsError(str(exc)) from None

    auth = _listen_address("AUTH_SERVICE_URL", get("AUTH_SERVICE_URL") or DEFAULT_AUTH_URL)
    backend = _listen_address("BACKEND_URL", get("BACKEND_URL") or DEFAULT_BACKEND_URL)

    database_url, sqlite_path = _database(get("DATABASE_URL"), get("REFSTACK_DATA_DIR"))

    redis_url = get("REDIS_URL")
    if redis_url is not None:
        _check_redis_url(redis_url)

    clickhouse_url = get("CLICKHOUSE_URL")
    clickhouse = _clickhouse(clickhouse_url) if clickhouse_url is not None else None

    access_ttl = _int(get, "ACCESS_TOKEN_TTL_SECONDS", 900, minimum=1)
    refresh_ttl = _int(get, "REFRESH_TOKEN_TTL_SECONDS", 86400, minimum=1)

    return Settings(
        mode=mode,
        auth=auth,
        backend=backend,
        jwt_secret=secret or DEV_JWT_SECRET,
        jwt_secret_is_dev_default=secret is None,
        jwt_issuer=get("JWT_ISSUER") or "refstack",
        jwt_audience=get("JWT_AUDIENCE") or "goldenpath",
        access_ttl=access_ttl,
        refresh_ttl=refresh_ttl,
        e2e_key=env.get("E2E_OAUTH_SIMULATION_KEY") or None,
        database_url=database_url,
        sqlite_path=sqlite_path,
        redis_url=redis_url,
        clickhouse=clickhouse,
        faults=faults,
        step_delay_ms=_float(get, "REFSTACK_STEP_DELAY_MS", 0.0),
        agent_tools=_int(get, "REFSTACK_AGENT_TOOLS", 1, minimum=1, maximum=50),
        max_text=_int(get, "REFSTACK_MAX_TEXT", 10000, minimum=1),
        max_frame_bytes=_int(get, "REFSTACK_MAX_FRAME_BYTES", 65536, minimum=1024),
        max_body_bytes=_int(get, "REFSTACK_MAX_BODY_BYTES", 65536, minimum=1024),
        access_log=(get("REFSTACK_ACCESS_LOG") or "0").lower() in ("1", "true", "yes", "on"),
        variants=variants,
    )


def _listen_address(name: str, url: str) -> ListenAddress:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SettingsError(f"{name} is not a valid URL ({exc}): {url!r}") from None
    if parts.scheme != "http":
        raise SettingsError(f"{name} must be an http:// URL (refstack does not terminate TLS): {url!r}")
    if not parts.hostname:
        raise SettingsError(f"{name} has no host: {url!r}")
    if parts.path not in ("", "/") or parts.query:
        raise SettingsError(f"{name} must be scheme://host:port with no path: {url!r}")
    return ListenAddress(url=url.rstrip("/"), host=parts.hostname, port=port or 80)


def _database(url: str | None, data_dir: str | None) -> tuple[str | None, str | None]:
    if url is None:
        directory = Path(data_dir or DEFAULT_DATA_DIR)
        return None, str(directory / "refstack.sqlite3")
    if url.startswith(("postgresql://", "postgres://")):
        try:
            # Imported here so that a SQLite-only run never pays for psycopg's import.
            from psycopg.conninfo import conninfo_to_dict

            conninfo_to_dict(url)
        except Exception as exc:  # psycopg raises ProgrammingError for bad conninfo
            raise SettingsError(f"DATABASE_URL is not a valid PostgreSQL URL: {exc}") from None
        return url, None
    if url.startswith("sqlite://"):
        # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute/path.db.
        rest = url[len("sqlite://") :]
        if not rest.startswith("/") or len(rest) < 2:
            raise SettingsError(f"DATABASE_URL sqlite URLs look like sqlite:///path: {url!r}")
        return None, rest[1:]
    raise SettingsError(f"DATABASE_URL must start with postgresql:// or sqlite:/// (got {_scheme(url)!r})")


def _check_redis_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise SettingsError(f"REDIS_URL is not a valid URL ({exc})") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(
            f"REDIS_URL must start with redis://, rediss:// or unix:// (got {_scheme(url)!r})"
        )


def _clickhouse(url: str) -> ClickHouseTarget:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SettingsError(f"CLICKHOUSE_URL is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError("CLICKHOUSE_URL must look like http://[user:pass@]host:8123[/database]")
    database = parts.path.strip("/") or "default"
    if not _DB_NAME.match(database):
        raise SettingsError(f"CLICKHOUSE_URL database name is not a plain identifier: {database!r}")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return ClickHouseTarget(
        base_url=f"{parts.scheme}://{host}:{port or 8123}",
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        database=database,
    )


def _int(get: Getter, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number (got {raw!r})") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise SettingsError(f"{name} must be {bound} (got {value})")
    return value


def _float(get: Getter, name: str, default: float) -> float:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number (got {raw!r})") from None
    if value < 0 or value != value:
        raise SettingsError(f"{name} must be >= 0 (got {raw!r})")
    return value


def _scheme(url: str) -> str:
    return url.split(":", 1)[0] if ":" in url else url


def _hide_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path}"
