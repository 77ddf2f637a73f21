"""The application's own declarations of the auth and backend addresses, file by file.

Read as the application's tools read them, never through goldenpath's settings loader
(the application's keys are its own business, never an error):
- env files with python-dotenv's parser; a line it cannot parse is reported by file:line,
  never echoed (a half-written line may hold a secret);
- compose files with PyYAML's node API (``yaml.compose``), which keeps every value's line;
  ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` are resolved from the same env files
  the way compose does (the ``.env`` beside the compose file first);
- ``ports:`` in short ("8081", "127.0.0.1:8081:8081/tcp") and long (target/published)
  syntax, ``environment:`` as a list or a map.

Disagreements are conflicts naming every file and line involved.
"""

from __future__ import annotations

import fnmatch
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from dotenv.parser import parse_stream

from goldenpath.checks.app import AppConfig
from goldenpath.core.masking import mask_value

# Compose service names that play each role, when no variable says so.
SERVICE_ROLES = (("auth", "auth"), ("backend", "backend"))


@dataclass(frozen=True)
class Conflict:
    code: str
    message: str
    places: tuple[str, ...] = ()  # file:line of every declaration involved, when known


@dataclass(frozen=True)
class AppDeclaration:
    file: str
    line: int
    key: str  # the variable, or "ports" for a compose port mapping
    value: str  # as resolved; the raw text is in `note` when it was interpolated
    role: str  # "auth" or "backend"
    port: int | None
    where: str = ""  # inside a compose file: services.<name>.environment / .ports
    note: str = ""
    container_host: str = ""  # the URL's host is this compose service

    @property
    def place(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class PortMapping:
    service: str
    published: int | None
    target: int | None
    file: str
    line: int


@dataclass
class AppScan:
    root: str
    env_files: list[str] = field(default_factory=list)
    compose_files: list[str] = field(default_factory=list)
    declarations: list[AppDeclaration] = field(default_factory=list)
    services: dict[str, list[PortMapping]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def published_port(self, service: str) -> int | None:
        return next((m.published for m in self.services.get(service, []) if m.published), None)

    def probe_ports(self) -> set[int]:
        """Ports worth probing from this machine: declared on the host, or published."""
        ports = {d.port for d in self.declarations if d.port and not d.container_host}
        ports |= {m.published for maps in self.services.values() for m in maps if m.published}
        return {p for p in ports if p}


@dataclass(frozen=True)
class EnvEntry:
    value: str
    file: str
    line: int


def role_of(key: str, aliases: Mapping[str, str]) -> str:
    if key in aliases:
        return aliases[key]
    return next((role for pattern, role in sorted(aliases.items())
                 if fnmatch.fnmatchcase(key, pattern)), "")


def port_of(key: str, value: str) -> int | None:
    if key.endswith("_PORT") or key == "ports":
        return int(value) if value.isdigit() else None
    try:
        parts = urlsplit(value)
        return parts.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme)
    except ValueError:
        return None


def host_of(value: str) -> str:
    try:
        return urlsplit(value).hostname or ""
    except ValueError:
        return ""


# --------------------------------------------------------------------------- env files


def read_env(path: Path, label: str, problems: list[str]) -> dict[str, EnvEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problems.append(f"{label}: not UTF-8 text; skipped")
        return {}
    except OSError as exc:
        problems.append(f"{label}: cannot read ({exc.strerror}); skipped")
        return {}
    entries: dict[str, EnvEntry] = {}
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            problems.append(f"{label}:{line}: cannot parse this line; skipped")
        elif binding.key is not None and binding.value is not None:
            entries[binding.key] = EnvEntry(binding.value, label, line)
    return entries


# --------------------------------------------------------------------------- interpolation

_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
                       r"|(?P<plain>[A-Za-z_]\w*))")


@dataclass(frozen=True)
class Interpolated:
    value: str
    used: tuple[str, ...]  # "VAR=value from file:line", "VAR unset: default used", ...
    unresolved: tuple[str, ...]


def interpolate(raw: str, lookup: Mapping[str, EnvEntry]) -> Interpolated:
    """Compose's interpolation: $$ escapes, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR:+a}."""
    used: list[str] = []
    unresolved: list[str] = []

    def one(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op") or "", match.group("arg") or ""
        entry = lookup.get(name)
        is_set = entry is not None
        non_empty = bool(entry and entry.value)
        if entry is not None:
            used.append(f"{name}={entry.value} from {entry.file}:{entry.line}")
        if op in (":-", "-"):
            if (non_empty if op == ":-" else is_set) and entry is not None:
                return entry.value
            used.append(f"{name} {'unset or empty' if op == ':-' else 'unset'}: default {arg!r}")
            return arg
        if op in (":+", "+"):
            return arg if (non_empty if op == ":+" else is_set) else ""
        if entry is None:
            unresolved.append(name)
            return ""
        return entry.value

    value = _VARIABLE.sub(one, raw)
    return Interpolated(value, tuple(used), tuple(unresolved))


# --------------------------------------------------------------------------- compose files


def _mapping(node: yaml.Node | None) -> list[tuple[str, yaml.Node]]:
    """A mapping node's (key, value) pairs; `<<` merge keys folded in first, as YAML does."""
    if not isinstance(node, yaml.MappingNode):
        return []
    merged: list[tuple[str, yaml.Node]] = []
    own: list[tuple[str, yaml.Node]] = []
    for key, value in node.value:
        name = str(key.value)
        if name == "<<":
            sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for source in sources:
                merged += _mapping(source)
        else:
            own.append((name, value))
    ours = {name for name, _ in own}
    return [item for item in merged if item[0] not in ours] + own


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def read_compose(path: Path, label: str, problems: list[str]) -> list[tuple[str, yaml.Node]]:
    """The services of one compose file, as nodes (their marks hold the line numbers)."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{label}: cannot read ({exc}); skipped")
        return []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problems.append(f"{label}{where}: not valid YAML; skipped")
        return []
    services = dict(_mapping(root)).get("services")
    return _mapping(services)


def _environment(node: yaml.Node) -> list[tuple[str, str, int]]:
    """(key, raw value, line) from `environment:` as a list ("K=V") or a map."""
    if isinstance(node, yaml.SequenceNode):
        found = []
        for item in node.value:
            text = str(getattr(item, "value", ""))
            if "=" in text:
                key, _, value = text.partition("=")
                found.append((key.strip(), value, _line(item)))
        return found
    return [(key, str(value.value), _line(value)) for key, value in _mapping(node)
            if isinstance(value, yaml.ScalarNode) and value.tag != "tag:yaml.org,2002:null"]


def _ports(node: yaml.Node | None) -> list[tuple[str, str, int]]:
    """(raw published, raw target, line) from `ports:` in short or long syntax."""
    found: list[tuple[str, str, int]] = []
    if not isinstance(node, yaml.SequenceNode):
        return found
    for item in node.value:
        if isinstance(item, yaml.ScalarNode):
            # "8081", "8081:8081", "127.0.0.1:8081:8081", "${P:-8081}:8081/tcp". A `:` inside
            # ${...} is interpolation, not a separator: split outside braces only.
            spec = str(item.value).rsplit("/", 1)[0] if "/" in str(item.value) else str(item.value)
            parts = _split_outside_braces(spec)
            published = parts[-2] if len(parts) >= 2 else ""
            found.append((published, parts[-1], _line(item)))
        elif isinstance(item, yaml.MappingNode):
            fields = dict(_mapping(item))
            published_node, target_node = fields.get("published"), fields.get("target")
            found.append((str(getattr(published_node, "value", "")), str(getattr(target_node, "value", "")),
                          _line(published_node or item)))
    return found


def _split_outside_braces(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "{"
        depth -= char == "}"
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


# --------------------------------------------------------------------------- the scan


def scan_app(app: AppConfig) -> AppScan:
    scan = AppScan(root=str(app.root))
    envs: dict[str, dict[str, EnvEntry]] = {}
    for path in app.env_files():
        label = app.relative(path)
        scan.env_files.append(label)
        envs[label] = read_env(path, label, scan.problems)
    composes = [(app.relative(path), read_compose(path, app.relative(path), scan.problems))
                for path in app.compose_files()]
    scan.compose_files = [label for label, _ in composes]
    # First every service's ports (a URL in any file may name any service), then the
    # declarations, which say what a container host publishes.
    for label, services in composes:
        lookup = _lookup_for(label, envs)
        for name, service in services:
            scan.services.setdefault(name, [])
            for alias in _container_names(service):
                scan.services.setdefault(alias, [])
            _scan_ports(scan, label, name, service, lookup)
    for label, entries in envs.items():
        for key, entry in sorted(entries.items(), key=lambda item: item[1].line):
            role = role_of(key, app.aliases)
            if role:
                scan.declarations.append(_declaration(scan, label, entry.line, key, entry.value, role))
    for label, services in composes:
        lookup = _lookup_for(label, envs)
        for name, service in services:
            _scan_environment(scan, app, label, name, service, lookup)
    scan.declarations.sort(key=lambda d: (d.file, d.line, d.key))
    return scan


def _container_names(service: yaml.Node) -> list[str]:
    fields = dict(_mapping(service))
    return [str(fields[k].value) for k in ("container_name", "hostname")
            if isinstance(fields.get(k), yaml.ScalarNode)]


def _lookup_for(compose_label: str, envs: Mapping[str, Mapping[str, EnvEntry]]) -> dict[str, EnvEntry]:
    """Compose reads the .env of its project directory (the compose file's directory); the
    other env files the globs found come after, so a variable set only there still resolves."""
    folder = str(Path(compose_label).parent)
    beside = ".env" if folder == "." else f"{folder}/.env"
    order = [beside, ".env", *sorted(envs)]
    lookup: dict[str, EnvEntry] = {}
    for label in reversed(list(dict.fromkeys(order))):
        lookup.update(envs.get(label, {}))
    return lookup


def _service_role(name: str) -> str:
    return next((role for fragment, role in SERVICE_ROLES if fragment in name.lower()), "")


def _scan_environment(scan: AppScan, app: AppConfig, label: str, name: str, service: yaml.Node,
                      lookup: Mapping[str, EnvEntry]) -> None:
    fields = dict(_mapping(service))
    if "environment" not in fields:
        return
    for key, raw, line in _environment(fields["environment"]):
        role = role_of(key, app.aliases)
        if role:
            value = interpolate(raw, lookup)
            scan.declarations.append(_declaration(
                scan, label, line, key, value.value, role, where=f"services.{name}.environment",
                note=_note(raw, value)))


def _scan_ports(scan: AppScan, label: str, name: str, service: yaml.Node,
                lookup: Mapping[str, EnvEntry]) -> None:
    role = _service_role(name)
    for raw_published, raw_target, line in _ports(dict(_mapping(service)).get("ports")):
        published, target = interpolate(raw_published, lookup), interpolate(raw_target, lookup)
        mapping = PortMapping(name, _number(published.value), _number(target.value), label, line)
        scan.services[name].append(mapping)
        for alias in _container_names(service):
            scan.services[alias].append(mapping)
        if role:
            note = _note(raw_published, published)
            if mapping.target is not None:
                note = f"container port {mapping.target}" + (f"; {note}" if note else "")
            scan.declarations.append(AppDeclaration(
                label, line, "ports", published.value or raw_published, role, mapping.published,
                where=f"services.{name}.ports", note=note))


def _note(raw: str, value: Interpolated) -> str:
    if raw == value.value:
        return ""
    parts = [f"written {raw}", *value.used]
    parts += [f"{name} is set in no env file" for name in value.unresolved]
    return "; ".join(parts)


def _declaration(scan: AppScan, file: str, line: int, key: str, value: str, role: str,
                 where: str = "", note: str = "") -> AppDeclaration:
    host = host_of(value) if not key.endswith("_PORT") else ""
    container = host if host in scan.services else ""
    if container:
        published = [f"{m.published} ({m.file}:{m.line})" for m in scan.services[container] if m.published]
        extra = (f"{container} is a container name, resolvable only inside the compose network"
                 + (f"; it publishes {', '.join(published)}" if published else "; it publishes no port"))
        note = f"{note}; {extra}" if note else extra
    return AppDeclaration(file, line, key, value, role, port_of(key, value), where, note, container)


# --------------------------------------------------------------------------- conflicts


def app_conflicts(scan: AppScan) -> list[Conflict]:
    conflicts = [*_disagreements(scan), *_container_ports(scan), *_same_port(scan)]
    return sorted(conflicts, key=lambda c: (c.code, c.message))


def _host_view(scan: AppScan, role: str) -> list[AppDeclaration]:
    """What a process on this machine would use: env-file values and published ports.
    A URL to a container name (and a compose `environment:` value, which a container reads)
    is about the network inside compose and is checked against the service's own ports."""
    return [d for d in scan.declarations
            if d.role == role and d.port is not None and not d.container_host
            and (d.key == "ports" or not d.where)]


def _disagreements(scan: AppScan) -> list[Conflict]:
    conflicts = []
    for role in ("auth", "backend"):
        by_port: dict[int, list[AppDeclaration]] = {}
        for item in _host_view(scan, role):
            by_port.setdefault(item.port or 0, []).append(item)
        if len(by_port) < 2:
            continue
        listed = "; ".join(
            f"{port} at " + ", ".join(f"{d.place} ({_label(d)})" for d in items)
            for port, items in sorted(by_port.items()))
        places = tuple(sorted({d.place for items in by_port.values() for d in items}))
        conflicts.append(Conflict(f"APP_{role.upper()}_PORTS_DISAGREE",
                                  f"the application's files declare {len(by_port)} different {role} "
                                  f"ports: {listed}", places))
    return conflicts


def _label(item: AppDeclaration) -> str:
    if item.key == "ports":
        return f"{item.where} publishes {item.value}"
    return f"{item.key}={mask_value(item.key, item.value)}"


def _container_ports(scan: AppScan) -> list[Conflict]:
    conflicts = []
    for item in scan.declarations:
        mappings = scan.services.get(item.container_host) if item.container_host else None
        if not mappings or item.port is None:
            continue
        targets = sorted({m.target for m in mappings if m.target is not None})
        if targets and item.port not in targets:
            ports_at = sorted({f"{m.file}:{m.line}" for m in mappings})
            conflicts.append(Conflict(
                "APP_CONTAINER_PORT_DISAGREES",
                f"{item.place} {_label(item)}: {item.container_host} listens on "
                f"{', '.join(map(str, targets))} inside the compose network ({', '.join(ports_at)})",
                (item.place, *ports_at)))
    return conflicts


def _same_port(scan: AppScan) -> list[Conflict]:
    conflicts = []
    files = sorted({d.file for d in scan.declarations})
    for file in files:
        mine = [d for d in scan.declarations if d.file == file and not d.container_host and not d.where]
        auth = {d.port: d for d in mine if d.role == "auth" and d.port and d.key.endswith("_URL")}
        backend = {d.port: d for d in mine if d.role == "backend" and d.port and d.key.endswith("_URL")}
        for port in sorted(set(auth) & set(backend)):
            conflicts.append(Conflict(
                "APP_SAME_PORT",
                f"{file}: {auth[port].key} ({auth[port].place}) and {backend[port].key} "
                f"({backend[port].place}) both use port {port}",
                (auth[port].place, backend[port].place)))
    return conflicts


def env_declarations_in(scan: AppScan, file: str, role: str = "auth") -> Sequence[AppDeclaration]:
    return [d for d in scan.declarations if d.file == file and d.role == role and not d.where]
