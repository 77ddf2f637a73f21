"""Auth port alignment: where the auth and backend addresses are declared, what answers there.

The strategy's P0 blocker "port mismatch between the test environment (8000) and the auth
service" is found by reading every declaration (profiles, .env, the process environment,
compose files), probing candidate ports for the auth service's /health identity, and
reporting every disagreement. ``apply_fix`` writes the resolved value into .env with
python-dotenv, atomically, after a backup.

With the application's root (``GOLDENPATH_APP_ROOT`` or ``--app-root``) the application's own
declarations are read too (``goldenpath.checks.app_ports``): every env file and compose file
its globs find, under every alias of the two addresses, disagreements named by file and line.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dotenv
import yaml

from goldenpath.checks.app import AppConfig, load_app
from goldenpath.checks.app_ports import AppScan, Conflict, app_conflicts, env_declarations_in, scan_app
from goldenpath.core.errors import ConfigError
from goldenpath.core.http import AUTH_IDENTITY, health_url, http_get, service_name
from goldenpath.core.masking import mask_value
from goldenpath.core.settings import Settings, read_env_file

KEYS = ("AUTH_SERVICE_URL", "AUTH_SERVICE_PORT", "BACKEND_URL")
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
# Ports an auth service is commonly found on, beside every port declared anywhere.
COMMON_AUTH_PORTS = (8081, 8001, 8080, 8000)


@dataclass(frozen=True)
class Declaration:
    source: str
    key: str
    value: str

    @property
    def port(self) -> int | None:
        if self.key.endswith("_PORT"):
            return int(self.value) if self.value.isdigit() else None
        try:
            parts = urlsplit(self.value)
            return parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:
            return None


@dataclass(frozen=True)
class Listener:
    port: int
    identity: str | None


@dataclass(frozen=True)
class Fix:
    values: Mapping[str, str]
    reason: str


@dataclass
class PortReport:
    profile: str
    declarations: list[Declaration]
    listeners: list[Listener]
    conflicts: list[Conflict] = field(default_factory=list)
    fix: Fix | None = None
    app: AppScan | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def auth_port_found(self) -> int | None:
        """The one port where the auth service answers, if exactly one does."""
        real = sorted({item.port for item in self.listeners if item.identity == AUTH_IDENTITY})
        return real[0] if len(real) == 1 else None

    def as_dict(self) -> dict[str, Any]:
        """For --json: what the tables show, URLs without their passwords, sorted for CI to diff."""
        data = asdict(self)
        declared = [*data["declarations"], *(data["app"]["declarations"] if data["app"] else [])]
        for item in declared:
            item["value"] = mask_value(item["key"], item["value"])
        data["conflicts"] = sorted(data["conflicts"], key=lambda c: (c["code"], c["message"]))
        data["listeners"] = sorted(data["listeners"], key=lambda item: item["port"])
        ordered: dict[str, Any] = _sorted_keys(data)
        return ordered


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted_keys(item) for item in value]
    return value


def declarations(root: Path, profile_files: Iterable[Path], environ: Mapping[str, str]) -> list[Declaration]:
    """Every place the auth and backend addresses are set, in precedence order."""
    found: list[Declaration] = []
    for path in [*profile_files, root / ".env"]:
        if path.is_file():
            label = str(path.relative_to(root))
            found += [Declaration(str(origin), key, value)
                      for key, (value, origin) in read_env_file(path, label).items() if key in KEYS]
    found += [Declaration("environment", key, environ[key]) for key in KEYS if environ.get(key)]
    for name in COMPOSE_FILES:
        if (root / name).is_file():
            found += compose_declarations(root / name, name)
    return found


def compose_declarations(path: Path, label: str) -> list[Declaration]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{label}: cannot read ({exc})") from None
    found: list[Declaration] = []
    services: dict[str, Any] = data.get("services") or {} if isinstance(data, dict) else {}
    for name, service in services.items():
        if not isinstance(service, dict):
            continue
        for key, value in _compose_environment(service.get("environment")):
            if key in KEYS:
                found.append(Declaration(f"{label}: services.{name}.environment", key, value))
        if "auth" in name:
            for published in _published_ports(service.get("ports") or []):
                found.append(Declaration(f"{label}: services.{name}.ports", "AUTH_SERVICE_PORT",
                                         str(published)))
    return found


def _compose_environment(env: object) -> list[tuple[str, str]]:
    if isinstance(env, dict):
        return [(str(k), str(v)) for k, v in env.items() if v is not None]
    if isinstance(env, list):
        return [tuple(str(item).split("=", 1)) for item in env if "=" in str(item)]  # type: ignore[misc]
    return []


def _published_ports(ports: Sequence[object]) -> list[int]:
    published = []
    for entry in ports:
        if isinstance(entry, dict) and str(entry.get("published", "")).isdigit():
            published.append(int(entry["published"]))
        elif isinstance(entry, str | int):
            # "8081:8081", "127.0.0.1:8081:8081" or "8081": the host side is the one we reach.
            parts = str(entry).split("/")[0].split(":")
            host_port = parts[-2] if len(parts) >= 2 else parts[0]
            if host_port.isdigit():
                published.append(int(host_port))
    return published


def find_listeners(host: str, ports: Iterable[int], timeout_s: float) -> list[Listener]:
    """Probe each candidate port's /health, concurrently; keep the ones that answer."""
    candidates = sorted(set(ports))

    def probe(port: int) -> Listener | None:
        answer = http_get(health_url(f"http://{host}:{port}"), timeout_s)
        return Listener(port, service_name(answer)) if answer is not None else None

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(candidates)))) as pool:
        return [found for found in pool.map(probe, candidates) if found is not None]


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo + '@' if userinfo else ''}{parts.hostname}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def analyse(settings: Settings, found: list[Declaration], listeners: list[Listener],
            probed_port: int | None = None) -> list[Conflict]:
    """``probed_port``: where the auth URL was really probed (a container's published port)."""
    conflicts = _same_port_per_source(found)
    auth_url, backend_url = settings.auth_service_url, settings.backend_url
    auth = urlsplit(auth_url)
    auth_port = probed_port or auth.port
    if urlsplit(backend_url).netloc == auth.netloc:
        conflicts.append(Conflict("SAME_PORT", f"profile {settings.profile}: AUTH_SERVICE_URL and "
                                  f"BACKEND_URL are both {auth.netloc} "
                                  f"(from {settings.origins['AUTH_SERVICE_URL']})"))
    declared_port = settings.get("AUTH_SERVICE_PORT")
    if declared_port and int(declared_port) != auth.port:
        conflicts.append(Conflict("PORT_DISAGREES", f"AUTH_SERVICE_PORT={declared_port} "
                                  f"({settings.origins['AUTH_SERVICE_PORT']}) disagrees with "
                                  f"AUTH_SERVICE_URL={auth_url} ({settings.origins['AUTH_SERVICE_URL']})"))
    conflicts += [
        Conflict("COMPOSE_DISAGREES", f"{item.source} publishes the auth service on {item.value}, "
                                      f"but AUTH_SERVICE_URL={auth_url}")
        for item in found
        if ".ports" in item.source and item.port != auth.port
    ]
    at_url = next((item for item in listeners if item.port == auth_port), None)
    elsewhere = [item.port for item in listeners
                 if item.identity == AUTH_IDENTITY and item.port != auth_port]
    where = f"; the auth service answers on port {elsewhere[0]}" if elsewhere else ""
    if at_url is None:
        conflicts.append(Conflict("NOTHING_ANSWERS",
                                  f"nothing answers at AUTH_SERVICE_URL={auth_url}{where}"))
    elif at_url.identity != AUTH_IDENTITY:
        who = at_url.identity or "an unidentified service"
        conflicts.append(Conflict("WRONG_SERVICE", f"AUTH_SERVICE_URL={auth_url} answers as {who}, "
                                  f"not {AUTH_IDENTITY}{where}"))
    return conflicts


def _same_port_per_source(found: list[Declaration]) -> list[Conflict]:
    by_source: dict[str, dict[str, int | None]] = {}
    for item in found:
        file = item.source.split(":", 1)[0]
        by_source.setdefault(file, {})[item.key] = item.port
    return [
        Conflict("SAME_PORT",
                 f"{file}: AUTH_SERVICE_URL and BACKEND_URL both use port {ports['BACKEND_URL']}")
        for file, ports in by_source.items()
        if ports.get("BACKEND_URL") and ports.get("AUTH_SERVICE_URL") == ports.get("BACKEND_URL")
    ]


def plan_fix(settings: Settings, listeners: list[Listener]) -> Fix | None:
    """The one change that aligns the profile with where the auth service really answers."""
    auth_url = settings.auth_service_url
    auth_port = urlsplit(auth_url).port
    real = sorted({item.port for item in listeners if item.identity == AUTH_IDENTITY})
    values: dict[str, str] = {}
    if auth_port not in real and len(real) == 1:
        values["AUTH_SERVICE_URL"] = with_port(auth_url, real[0])
        auth_port = real[0]
    declared = settings.get("AUTH_SERVICE_PORT")
    if declared and auth_port is not None and declared != str(auth_port):
        values["AUTH_SERVICE_PORT"] = str(auth_port)
    if not values:
        return None
    where = f"the auth service answers on port {auth_port}"
    return Fix(values, where if auth_port in real else "AUTH_SERVICE_PORT follows AUTH_SERVICE_URL")


def check(settings: Settings, root: Path, profile_files: Iterable[Path],
          environ: Mapping[str, str], app: AppConfig | None = None) -> PortReport:
    """goldenpath's own declarations, and the application's when its root is set."""
    found = declarations(root, profile_files, environ)
    if app is None and settings.app_root is not None:
        app = load_app(root / "pyproject.toml", settings.app_root)
    scan = scan_app(app) if app is not None else None
    auth = urlsplit(settings.auth_service_url)
    host, probed_port, notes = auth.hostname or "127.0.0.1", None, []
    if scan is not None and host in scan.services:
        # A compose service's name resolves only inside its network; from here, the port
        # it publishes is what can answer.
        published = scan.published_port(host)
        notes.append(f"AUTH_SERVICE_URL={settings.auth_service_url}: {host} is a container name, "
                     "resolvable only inside the compose network; "
                     + (f"probing its published port 127.0.0.1:{published} instead" if published
                        else "it publishes no port, so nothing on this machine can reach it"))
        host, probed_port = "127.0.0.1", published
    candidates = {port for item in found if (port := item.port)} | set(COMMON_AUTH_PORTS)
    candidates |= {auth.port or 80, urlsplit(settings.backend_url).port or 80}
    if scan is not None:
        candidates |= scan.probe_ports()
    if probed_port:
        candidates.add(probed_port)
    listeners = find_listeners(host, candidates, min(settings.timeout_s, 2.0))
    conflicts = analyse(settings, found, listeners, probed_port)
    if scan is not None:
        conflicts += app_conflicts(scan)
    report = PortReport(settings.profile, found, listeners, conflicts, app=scan, notes=notes)
    report.fix = plan_fix(settings, listeners)
    return report


def apply_fix(fix: Fix, root: Path, profile: str, *, write_profile: bool,
              environ: Mapping[str, str]) -> list[str]:
    """Write the fix into .env (and the profile, if asked); return what was done, line by line."""
    shadowed = [key for key in fix.values if environ.get(key)]
    if shadowed:
        raise ConfigError(f"{', '.join(shadowed)} is set in the process environment, which wins over "
                          ".env; unset it in your shell, then run the fix again")
    targets = [root / ".env"] + ([root / "envs" / f"{profile}.env"] if write_profile else [])
    done = []
    for path in targets:
        if path.exists():
            backup = path.with_name(path.name + ".bak")
            shutil.copy2(path, backup)
            done.append(f"backed up {path.relative_to(root)} to {backup.relative_to(root)}")
        for key, value in fix.values.items():
            # set_key rewrites through a temporary file and keeps every other line as it was.
            dotenv.set_key(path, key, value, quote_mode="never")
            done.append(f"{path.relative_to(root)}: {key}={value}")
    return done


def apply_app_fix(report: PortReport, app: AppConfig, target: str) -> list[str]:
    """--write-app FILE: align the application's auth declarations in one of its env files
    with the port where the auth service answers; atomically (python-dotenv rewrites through
    a temporary file), after a backup beside it."""
    if report.app is None:
        raise ConfigError("--write-app needs the application's root (--app-root or GOLDENPATH_APP_ROOT)")
    given = Path(target)
    path = (given if given.is_absolute() else app.root / given).resolve()
    label = app.relative(path)
    if label not in report.app.env_files:
        found = ", ".join(report.app.env_files) or "none"
        raise ConfigError(f"--write-app {target}: not one of the application's env files "
                          f"([tool.goldenpath.app] env_files found: {found})")
    port = report.auth_port_found
    if port is None:
        return [f"{label}: not written: the auth service does not answer on exactly one port, "
                "so there is no port to align it with"]
    values = {}
    for item in env_declarations_in(report.app, label):
        if item.container_host or item.port == port:
            continue  # a container's address is about the compose network, not this machine
        values[item.key] = str(port) if item.key.endswith("_PORT") else with_port(item.value, port)
    if not values:
        return [f"{label}: already agrees with the auth service on port {port}; nothing written"]
    backup = path.with_name(path.name + ".bak")
    shutil.copy2(path, backup)
    done = [f"backed up {label} to {app.relative(backup)}"]
    for key, value in values.items():
        dotenv.set_key(path, key, value, quote_mode="never")
        done.append(f"{label}: {key}={mask_value(key, value)}")
    return done
