"""Environment profiles: every setting a layer needs, layered and validated.

Layering, lowest to highest: built-in defaults < ``envs/<profile>.env`` < ``.env``
< process environment < explicit overrides. The profile comes from ``GOLDENPATH_ENV``
(or a caller's explicit choice, e.g. ``invoke --env``).

Every setting goldenpath reads is a row of ``SPECS`` and is read through ``Settings``.
A layer run resolves its settings once (in the nox process) and hands them on to its
children through the environment (``Settings.as_env``), so the target check and pytest
do not parse the env files again.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from dotenv.parser import parse_stream

from goldenpath.core.errors import ConfigError
from goldenpath.core.masking import MASK, mask_value

PROFILE_VAR = "GOLDENPATH_ENV"
DEFAULT_PROFILE = "local"
# Set by the process that resolved the settings, for its children: profile, root, origins.
RESOLVED_VAR = "GOLDENPATH_RESOLVED"
# The reference stack's own settings: a profile may carry them, refstack validates them.
REFSTACK_PREFIX = "REFSTACK_"
# A deployment's event names and auth spelling, validated by the contract's own table
# (goldenpath.protocol.contract.SETTING_KEYS), which refuses unknown keys with a hint.
CONTRACT_PREFIXES = ("GOLDENPATH_EVENT_", "GOLDENPATH_CONTRACT_")



@dataclass(frozen=True)
class Origin:
    """Where a value came from: a file and line, the environment, or a default."""

    source: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


Validator = Callable[[str], str | None]


@dataclass(frozen=True)
class SettingSpec:
    name: str
    default: str | None
    check: Validator
    help: str
    secret: bool = False


def _url(*schemes: str) -> Validator:
    def check(raw: str) -> str | None:
        wanted = f"not a {' or '.join(s + '://' for s in schemes)} URL"
        try:
            parts = urlsplit(raw)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            return wanted
        # sqlite:///path has no host; every other scheme names one.
        has_place = parts.hostname or (parts.scheme == "sqlite" and raw.startswith("sqlite:///"))
        if parts.scheme not in schemes or not has_place:
            return wanted
        return _port_problem(parts)

    return check


def _port_problem(parts: SplitResult) -> str | None:
    try:
        parts.port  # noqa: B018 - urllib validates the port lazily, on access
    except ValueError:
        return "the port is not a number from 1 to 65535"
    if parts.port == 0:
        return "the port is not a number from 1 to 65535"
    return None


def _port(raw: str) -> str | None:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        return "not a port (a whole number from 1 to 65535)"
    return None


def _positive(raw: str) -> str | None:
    try:
        value = float(raw)
    except ValueError:
        return "not a number"
    if not math.isfinite(value) or value <= 0:
        return "must be a positive number"
    return None


def _positive_int(raw: str) -> str | None:
    if not raw.isdigit() or int(raw) <= 0:
        return "must be a positive whole number"
    return None


def _percentile(raw: str) -> str | None:
    problem = _positive(raw)
    if problem or float(raw) > 100:
        return "must be a percentile above 0 and at most 100"
    return None


def _boolean(raw: str) -> str | None:
    if raw.lower() not in {"0", "1", "true", "false", "yes", "no", "on", "off"}:
        return "not a boolean (use 1 or 0)"
    return None


def _text(raw: str) -> str | None:
    return None


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec("BACKEND_URL", "http://127.0.0.1:8000", _url("http", "https"),
                "Backend base URL (REST API and the WebSocket's host)."),
    SettingSpec("AUTH_SERVICE_URL", "http://127.0.0.1:8081", _url("http", "https"),
                "Auth service base URL."),
    SettingSpec("AUTH_SERVICE_PORT", None, _port,
                "Port the auth service is told to listen on; must agree with AUTH_SERVICE_URL."),
    SettingSpec("WEBSOCKET_URL", None, _url("ws", "wss"),
                "WebSocket endpoint; derived from BACKEND_URL (+ /ws) when unset."),
    SettingSpec("DATABASE_URL", None, _url("postgresql", "postgres", "sqlite"),
                "PostgreSQL (or sqlite:///) DSN; unset means not configured.", secret=True),
    SettingSpec("REDIS_URL", None, _url("redis", "rediss"),
                "Redis URL; unset means not configured.", secret=True),
    SettingSpec("CLICKHOUSE_URL", None, _url("http", "https"),
                "ClickHouse HTTP interface URL; unset means not configured.", secret=True),
    SettingSpec("E2E_OAUTH_SIMULATION_KEY", None, _text,
                "E2E bypass key for POST /auth/e2e/test-auth.", secret=True),
    SettingSpec("JWT_SECRET_KEY", None, _text,
                "JWT signing secret; only for a target we run ourselves.", secret=True),
    SettingSpec("SLA_WS_CONNECT_MS", "2000", _positive,
                "Bound: WebSocket upgrade to connection_established, ms."),
    SettingSpec("SLA_FIRST_EVENT_MS", "5000", _positive,
                "Bound: user_message sent to agent_started, ms."),
    SettingSpec("SLA_TOOL_RESULT_MS", "30000", _positive,
                "Bound: tool_executing to its tool_completed, ms."),
    SettingSpec("SLA_EVENT_DELIVERY_MS", "500", _positive,
                "Bound: server timestamp to client receipt, ms."),
    SettingSpec("SLA_CONCURRENT_USERS", "10", _positive_int,
                "Concurrent users that must run without interference."),
    SettingSpec("SLA_PERCENTILE", "95", _percentile,
                "Percentile the bounds are checked on (the maximum is checked too)."),
    SettingSpec("GOLDENPATH_SLA_SAMPLES", "10", _positive_int,
                "Golden-path runs the staging layer measures for its SLA gate."),
    SettingSpec("GOLDENPATH_CLICKHOUSE_EVENTS_TABLE", "refstack_events", _text,
                "ClickHouse table of per-event analytics rows the staging layer looks for."),
    SettingSpec("GOLDENPATH_ANALYTICS_DEADLINE_S", "15", _positive,
                "Seconds an analytics row may take to appear in ClickHouse."),
    SettingSpec("GOLDENPATH_TIMEOUT_S", "10", _positive,
                "Timeout of every single network call made by goldenpath, seconds."),
    SettingSpec("GOLDENPATH_AUTOSTART", "0", _boolean,
                "Start the reference stack when a loopback target does not answer; only for URLs "
                "declared in the same place (profile file, .env or environment)."),
    SettingSpec("GOLDENPATH_REQUIRE_SERVICES", "0", _boolean,
                "Fail, instead of skip, tests whose service (PostgreSQL, docker, ...) is absent."),
    SettingSpec("GOLDENPATH_REPORTS_DIR", "reports", _text,
                "Where layers write their reports and JUnit XML (relative to the repository)."),
    SettingSpec("GOLDENPATH_STACK_DIR", ".goldenpath/stack", _text,
                "Pid file, log and data of the background stack started by `invoke stack.up`."),
    SettingSpec("GOLDENPATH_LAYER", None, _text,
                "The layer a test run belongs to (set by its nox session; names its report)."),
    SettingSpec("GOLDENPATH_TARGET_STARTED", None, _boolean,
                "Whether goldenpath started the layer's target (set by its nox session; reports say so)."),
    SettingSpec("GOLDENPATH_APP_ROOT", None, _text,
                "The application's repository: the collection audit and auth.ports work there."),
    SettingSpec("GOLDENPATH_APP_PYTHON", None, _text,
                "The application's interpreter (or venv) the collection audit runs pytest with."),
    SettingSpec("MULTI_USER_USERS", None, _positive_int,
                "Simulated users of the multi-user layer; default twice SLA_CONCURRENT_USERS."),
    SettingSpec("MULTI_USER_MESSAGES", "12", _positive_int,
                "Messages each simulated user of the multi-user layer sends."),
    SettingSpec("LOAD_ALLOWED", "0", _boolean,
                "Allow load beyond SLA_CONCURRENT_USERS users, or any load on a non-loopback target."),
    SettingSpec("GOLDENPATH_LOAD_MAX_USERS", "5000", _positive_int,
                "Hard cap on simulated users of one load run, whatever else is set."),
    SettingSpec("GOLDENPATH_LOAD_MAX_DURATION_S", "900", _positive,
                "Hard cap on one load run's duration, seconds."),
    SettingSpec("GOLDENPATH_TREND_MAX_RATIO", "2.0", _positive,
                "Bound: p95 of the last fifth of runs over the p95 of the first fifth."),
    SettingSpec("GOLDENPATH_MEMORY_SLOPE_KB", "4", _positive,
                "Bound: the target's resident memory growth per run, KiB (fitted slope)."),
    SettingSpec("GOLDENPATH_METRICS_URL", None, _url("http", "https"),
                "A remote target's metrics URL (Prometheus text) to read its memory from."),
    SettingSpec("GOLDENPATH_BASELINE", None, _text,
                "The run reports compare against: a report JSON file, or 'previous'."),
    SettingSpec("GOLDENPATH_HISTORY_KEEP", "20", _positive_int,
                "How many runs' reports are kept under <reports>/history/."),
    SettingSpec("SLA_REGRESSION_PCT", None, _positive,
                "Bound: a p95 more than this % above the baseline's fails the layer (off when unset)."),
    SettingSpec("JWT_ISSUER", None, _text,
                "The `iss` claim the deployment issues; tokens with another are refused."),
    SettingSpec("JWT_AUDIENCE", None, _text,
                "The `aud` claim the deployment issues; tokens with another are refused."),
)
SPECS_BY_NAME: dict[str, SettingSpec] = {spec.name: spec for spec in SPECS}


@dataclass(frozen=True)
class Sla:
    ws_connect_ms: float
    first_event_ms: float
    tool_result_ms: float
    event_delivery_ms: float
    concurrent_users: int
    percentile: float


@dataclass(frozen=True)
class Settings:
    """The resolved, validated settings of one profile."""

    profile: str
    values: Mapping[str, str]
    origins: Mapping[str, Origin] = field(repr=False)
    root: Path = Path(".")

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    @property
    def backend_url(self) -> str:
        return self.values["BACKEND_URL"].rstrip("/")

    @property
    def auth_service_url(self) -> str:
        return self.values["AUTH_SERVICE_URL"].rstrip("/")

    @property
    def websocket_url(self) -> str:
        return self.values["WEBSOCKET_URL"]

    @property
    def database_url(self) -> str | None:
        return self.values.get("DATABASE_URL")

    @property
    def redis_url(self) -> str | None:
        return self.values.get("REDIS_URL")

    @property
    def clickhouse_url(self) -> str | None:
        return self.values.get("CLICKHOUSE_URL")

    @property
    def timeout_s(self) -> float:
        return float(self.values["GOLDENPATH_TIMEOUT_S"])

    @property
    def autostart(self) -> bool:
        return is_true(self.values["GOLDENPATH_AUTOSTART"])

    @property
    def require_services(self) -> bool:
        return is_true(self.values["GOLDENPATH_REQUIRE_SERVICES"])

    @property
    def reports_dir(self) -> Path:
        return self.root / self.values["GOLDENPATH_REPORTS_DIR"]

    @property
    def stack_dir(self) -> Path:
        return self.root / self.values["GOLDENPATH_STACK_DIR"]

    @property
    def layer(self) -> str | None:
        return self.values.get("GOLDENPATH_LAYER")

    @property
    def app_root(self) -> Path | None:
        raw = self.values.get("GOLDENPATH_APP_ROOT")
        return (self.root / raw).resolve() if raw else None

    @property
    def load_allowed(self) -> bool:
        return is_true(self.values["LOAD_ALLOWED"])

    @property
    def multi_user_users(self) -> int:
        raw = self.values.get("MULTI_USER_USERS")
        return int(raw) if raw else 2 * self.sla.concurrent_users

    @property
    def multi_user_messages(self) -> int:
        return int(self.values["MULTI_USER_MESSAGES"])

    @property
    def sla(self) -> Sla:
        v = self.values
        return Sla(
            ws_connect_ms=float(v["SLA_WS_CONNECT_MS"]),
            first_event_ms=float(v["SLA_FIRST_EVENT_MS"]),
            tool_result_ms=float(v["SLA_TOOL_RESULT_MS"]),
            event_delivery_ms=float(v["SLA_EVENT_DELIVERY_MS"]),
            concurrent_users=int(v["SLA_CONCURRENT_USERS"]),
            percentile=float(v["SLA_PERCENTILE"]),
        )

    def with_values(self, values: Mapping[str, str], source: str) -> Settings:
        """A copy with some values replaced (not validated again: the caller made them)."""
        return Settings(
            profile=self.profile,
            values={**self.values, **values},
            origins={**self.origins, **{key: Origin(source) for key in values}},
            root=self.root,
        )

    def as_env(self) -> dict[str, str]:
        """The values as environment variables, for a child process (not for display).

        ``RESOLVED_VAR`` tells the child that these are already resolved: it reads them
        back with ``load_settings`` without parsing the env files again.
        """
        handoff = {"profile": self.profile, "root": str(self.root),
                   "digest": _digest(self.profile, self.values),
                   "origins": {k: [o.source, o.line] for k, o in self.origins.items()}}
        return {PROFILE_VAR: self.profile, **self.values, RESOLVED_VAR: json.dumps(handoff)}

    def masked(self) -> list[tuple[str, str, str]]:
        """(name, masked value, origin) rows, safe to print or write into a report."""
        return [
            (name, mask_value(name, value), str(self.origins[name]))
            for name, value in sorted(self.values.items())
        ]


def is_true(raw: str) -> bool:
    return raw.lower() in {"1", "true", "yes", "on"}


def available_profiles(root: Path) -> list[str]:
    return sorted(path.stem for path in (root / "envs").glob("*.env"))


def read_env_file(path: Path, label: str) -> dict[str, tuple[str, Origin]]:
    """Parse one env file with python-dotenv's parser; a malformed line is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read ({exc.strerror})") from None
    entries: dict[str, tuple[str, Origin]] = {}
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            # The line itself is never echoed: a half-written line may hold a secret.
            raise ConfigError(f"{label}:{line}: cannot parse this line; expected KEY=value")
        if binding.key is None:
            continue  # a comment or a blank line
        if binding.value is None:
            raise ConfigError(f"{label}:{line}: {binding.key} has no value; write {binding.key}=value")
        entries[binding.key] = (binding.value, Origin(label, line))
    return entries


def is_ours(key: str) -> bool:
    """A key goldenpath reads (or refuses): anything else in .env belongs to other services."""
    return key in SPECS_BY_NAME or key.startswith(("GOLDENPATH_", REFSTACK_PREFIX))


def _known(key: str) -> bool:
    return (key in SPECS_BY_NAME or key == PROFILE_VAR
            or key.startswith((REFSTACK_PREFIX, *CONTRACT_PREFIXES)))


def _check_known(entries: Mapping[str, tuple[str, Origin]], *, only_ours: bool) -> None:
    """Refuse a misspelled key; in .env, only keys that look like goldenpath's are checked."""
    for key, (_, origin) in entries.items():
        if _known(key) or (only_ours and not is_ours(key)):
            continue
        guess = difflib.get_close_matches(key, list(SPECS_BY_NAME), n=1)
        hint = f"; did you mean {guess[0]}?" if guess else "; see .env.example for the known keys"
        raise ConfigError(f"{origin}: unknown setting {key}{hint}")


def resolve_profile(root: Path, explicit: str | None, environ: Mapping[str, str],
                    layer_default: str = DEFAULT_PROFILE) -> str:
    profile = explicit or environ.get(PROFILE_VAR) or layer_default
    profiles = available_profiles(root)
    if profile not in profiles:
        source = "--env" if explicit else PROFILE_VAR if environ.get(PROFILE_VAR) else "layer default"
        raise ConfigError(
            f"unknown profile {profile!r} ({source}); profiles: {', '.join(profiles) or 'none'}"
            f" (files in {root / 'envs'})"
        )
    return profile


def load_settings(
    root: Path | str = ".",
    profile: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    layer_default: str = DEFAULT_PROFILE,
) -> Settings:
    """Resolve one profile's settings; raise ConfigError naming the file, line and key.

    In a child of a process that already resolved them (``RESOLVED_VAR`` is set, and the
    caller asks for nothing different), the handed-on values are taken as they are.
    """
    root = Path(root)
    environ = os.environ if environ is None else environ
    if RESOLVED_VAR in environ and profile is None and not overrides:
        handed_on = _handed_on(environ)
        if handed_on is not None:
            return handed_on
    name = resolve_profile(root, profile, environ, layer_default)

    layers: list[dict[str, tuple[str, Origin]]] = []
    layers.append({s.name: (s.default, Origin("default")) for s in SPECS if s.default is not None})
    profile_entries = read_env_file(root / "envs" / f"{name}.env", f"envs/{name}.env")
    _check_known(profile_entries, only_ours=False)
    layers.append(profile_entries)
    dotenv_path = root / ".env"
    if dotenv_path.is_file():
        # .env is shared with the platform's own services, so keys we do not know are
        # theirs; but a GOLDENPATH_* key we do not know is a typo of ours.
        dotenv_entries = read_env_file(dotenv_path, ".env")
        _check_known(dotenv_entries, only_ours=True)
        layers.append(_known_only(dotenv_entries))
    layers.append(_known_only({k: (v, Origin("environment")) for k, v in environ.items()}))
    layers.append({k: (v, Origin("override")) for k, v in (overrides or {}).items()})

    merged: dict[str, tuple[str, Origin]] = {}
    for layer in layers:
        merged.update(layer)
    # An empty value means "not configured", the way docker compose and dotenv users expect.
    merged = {k: v for k, v in merged.items() if v[0] != ""}
    _validate(merged)
    _derive_websocket_url(merged)
    return Settings(
        profile=name,
        values={k: v for k, (v, _) in merged.items()},
        origins={k: o for k, (_, o) in merged.items()},
        root=root,
    )


def _known_only(entries: Mapping[str, tuple[str, Origin]]) -> dict[str, tuple[str, Origin]]:
    return {k: v for k, v in entries.items() if _known(k) and k not in (PROFILE_VAR, RESOLVED_VAR)}


def _digest(profile: str, values: Mapping[str, str]) -> str:
    """A fingerprint of exactly these settings, to tell a handoff from a changed environment."""
    text = json.dumps([profile, sorted(values.items())])
    return hashlib.sha256(text.encode()).hexdigest()


def _handed_on(environ: Mapping[str, str]) -> Settings | None:
    """The settings a parent process resolved, read back from the environment it gave us.

    None when the environment no longer holds exactly what was handed on (a test or a user
    changed a setting for a grandchild): then the settings are resolved again.
    """
    try:
        handoff = json.loads(environ[RESOLVED_VAR])
        origins = {k: Origin(src, line) for k, (src, line) in handoff["origins"].items()}
        profile, digest, root = handoff["profile"], handoff["digest"], Path(handoff["root"])
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{RESOLVED_VAR} is not what goldenpath hands on; unset it and run again") from None
    values = {k: environ[k] for k in origins if k in environ}
    ours = {k for k in environ if _known(k) and k not in (PROFILE_VAR, RESOLVED_VAR)}
    if (environ.get(PROFILE_VAR) != profile or ours != set(values)
            or _digest(profile, values) != digest):
        return None
    return Settings(profile=profile, values=values, origins=origins, root=root)


def _derive_websocket_url(merged: dict[str, tuple[str, Origin]]) -> None:
    if "WEBSOCKET_URL" in merged:
        return
    backend, origin = merged["BACKEND_URL"]
    parts = urlsplit(backend)
    scheme = "wss" if parts.scheme == "https" else "ws"
    merged["WEBSOCKET_URL"] = (
        f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/ws",
        Origin(f"derived from BACKEND_URL ({origin})"),
    )


def _validate(merged: Mapping[str, tuple[str, Origin]]) -> None:
    for key, (value, origin) in merged.items():
        spec = SPECS_BY_NAME.get(key)
        problem = spec.check(value) if spec else None
        if problem:
            # The value is masked: a malformed DSN may still hold a real password.
            shown = MASK if spec and spec.secret and problem else mask_value(key, value)
            raise ConfigError(f"{origin}: {key}={shown!r}: {problem}")
