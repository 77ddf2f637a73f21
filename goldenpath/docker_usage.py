"""What Docker holds on disk: images, containers, volumes and build cache, read from the engine.

Everything comes from the engine's own accounting (``docker system df``, i.e. the SDK's
``df()``) plus ``statvfs`` of the filesystem holding Docker's root directory, when this
process can see it. Reading never changes anything; ``docker_clean`` decides and removes.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import docker.errors
from requests.exceptions import RequestException, Timeout
from rich.table import Table

from goldenpath.probes import is_loopback

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_HOST = "unix:///var/run/docker.sock"
# Docker names an anonymous volume with 64 hex digits. Engines from 23.0 also label it
# com.docker.volume.anonymous; 20.10 does not, so the name is what we go by.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_HEX64 = re.compile(r"[0-9a-f]{64}")
STOPPED_STATES = frozenset({"created", "exited", "dead"})
ACCOUNTING = ("bytes are the engine's df() numbers; an image counts its unique bytes, Size - SharedSize "
              "(a layer shared with other images is freed with the last of them)")


class DockerError(Exception):
    """The engine could not do what we asked; the message is one line, ready to print."""


class DockerUnavailable(DockerError):
    """Nothing usable answers at DOCKER_HOST (no socket, refused, timed out)."""


# --------------------------------------------------------------------------- sizes and ages

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2,
          "gib": 1024**3, "tib": 1024**4}
_SIZE = re.compile(r"\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[a-z]*)\s*", re.IGNORECASE)
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_size(text: str) -> int:
    """Bytes in '10GB', '500MB', '1.5GiB', '2048' (decimal units as docker uses them; KiB... binary)."""
    match = _SIZE.fullmatch(text)
    unit = match.group("unit").lower() if match else ""
    if not match or unit not in _UNITS:
        raise ValueError(f"bad size {text!r}: expected a number and a unit, such as 500MB, 10GB or "
                         "1.5GiB (B, kB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB of 1024)")
    return int(float(match.group("number")) * _UNITS[unit])


def parse_age(text: str) -> timedelta:
    """A duration like '90s', '30m', '1h30m', '2d', '1w'; '0' means no minimum."""
    compact = text.strip().lower().replace(" ", "")
    if compact == "0":
        return timedelta(0)
    if not compact or _AGE.sub("", compact):
        raise ValueError(f"bad age {text!r}: expected a duration such as 90s, 30m, 1h30m, 2d or 1w")
    seconds = sum(float(n) * _AGE_UNITS[unit] for n, unit in _AGE.findall(compact))
    return timedelta(seconds=seconds)


def format_size(size: int) -> str:
    """Like docker's own output: decimal units, four significant digits."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.4g}{unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns


def format_age(age: timedelta) -> str:
    """The two largest units: '3d4h', '2h', '12m30s', '40s'."""
    seconds = max(0, int(age.total_seconds()))
    parts: list[str] = []
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        whole, seconds = divmod(seconds, length)
        if whole or (parts and len(parts) < 2):
            parts.append(f"{whole}{unit}" if whole else "")
        if len(parts) == 2:
            break
    return "".join(parts) or "0s"


# --------------------------------------------------------------------------- what the engine holds

@dataclass(frozen=True)
class ImageInfo:
    id: str
    tags: tuple[str, ...]
    labels: dict[str, str]
    created: datetime
    last_tag_time: datetime | None
    size: int  # df Size: every layer of the image
    shared_size: int  # df SharedSize: the part other images use too
    parent_id: str = ""
    containers: tuple[str, ...] = ()  # every container referencing it, running or stopped
    container_last_used: datetime | None = None  # newest Created/StartedAt/FinishedAt of those

    @property
    def dangling(self) -> bool:
        return not self.tags

    @property
    def unique_size(self) -> int:
        return max(0, self.size - max(0, self.shared_size))

    @property
    def last_used(self) -> datetime:
        return max(t for t in (self.created, self.last_tag_time, self.container_last_used) if t)

    @property
    def last_used_by(self) -> str:
        """Which timestamp is the last use: 'a container', 'tagged' or 'created'."""
        if self.container_last_used and self.container_last_used == self.last_used:
            return "a container"
        if self.last_tag_time and self.last_tag_time == self.last_used:
            return "tagged"
        return "created"

    @property
    def name(self) -> str:
        return self.tags[0] if self.tags else f"<none> {short_id(self.id)}"


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    image_id: str
    labels: dict[str, str]
    state: str  # created, running, paused, restarting, removing, exited, dead
    created: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    size_rw: int = 0
    volumes: tuple[str, ...] = ()

    @property
    def stopped(self) -> bool:
        return self.state in STOPPED_STATES

    @property
    def last_used(self) -> datetime:
        return max(t for t in (self.created, self.started_at, self.finished_at) if t)


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    labels: dict[str, str]
    created: datetime | None
    size: int  # -1 when the driver does not say
    ref_count: int  # the engine's count of containers using it (-1 unknown)
    containers: tuple[str, ...] = ()  # the containers we saw mounting it

    @property
    def anonymous(self) -> bool:
        return bool(_HEX64.fullmatch(self.name)) or ANONYMOUS_LABEL in self.labels


@dataclass(frozen=True)
class BuildCacheInfo:
    records: int
    total_bytes: int
    reclaimable_bytes: int  # neither in use nor shared, as `docker system df` counts it


@dataclass(frozen=True)
class DiskInfo:
    path: str
    total_bytes: int
    available_bytes: int

    @property
    def used_bytes(self) -> int:
        # Like the kubelet: what is not available to us is used, root's reserve included.
        return self.total_bytes - self.available_bytes

    @property
    def used_percent(self) -> float:
        return 100.0 * self.used_bytes / self.total_bytes if self.total_bytes else 0.0


@dataclass(frozen=True)
class Category:
    kind: str
    count: int
    active: int
    bytes: int
    reclaimable_bytes: int


@dataclass(frozen=True)
class Usage:
    host: str
    root_dir: str
    taken_at: datetime
    images: list[ImageInfo]
    containers: list[ContainerInfo]
    volumes: list[VolumeInfo]
    build_cache: BuildCacheInfo | None  # None under a label filter: build cache has no labels
    images_bytes: int  # df LayersSize; under a label filter, those images' unique bytes
    disk: DiskInfo | None = None
    disk_problem: str = ""
    only_label: str = ""
    notes: list[str] = field(default_factory=list)

    def categories(self) -> list[Category]:
        used_images = [i for i in self.images if i.containers]
        unused_volumes = [v for v in self.volumes if not volume_in_use(v)]
        rows = [
            Category("images", len(self.images), len(used_images), self.images_bytes,
                     sum(i.unique_size for i in self.images if not i.containers)),
            Category("containers", len(self.containers),
                     sum(not c.stopped for c in self.containers),
                     sum(c.size_rw for c in self.containers),
                     sum(c.size_rw for c in self.containers if c.stopped)),
            Category("volumes", len(self.volumes), len(self.volumes) - len(unused_volumes),
                     sum(max(0, v.size) for v in self.volumes),
                     sum(max(0, v.size) for v in unused_volumes)),
        ]
        if self.build_cache is not None:
            cache = self.build_cache
            rows.append(Category("build cache", cache.records, 0, cache.total_bytes,
                                 cache.reclaimable_bytes))
        return rows


def volume_in_use(volume: VolumeInfo, leaving: frozenset[str] = frozenset()) -> bool:
    """Mounted by a container that stays, or counted by the engine for something we did not see."""
    staying = [c for c in volume.containers if c not in leaving]
    return bool(staying) or volume.ref_count > len(volume.containers)


def short_id(object_id: str) -> str:
    return object_id.removeprefix("sha256:")[:12]


def label_matches(labels: Mapping[str, str] | None, spec: str) -> bool:
    """spec is 'key' (any value) or 'key=value', as in docker's label filters."""
    key, sep, value = spec.partition("=")
    if not labels or key not in labels:
        return False
    return not sep or labels[key] == value


def check_label_spec(spec: str, what: str) -> None:
    key, _, _ = spec.partition("=")
    if spec and not key.strip():
        raise ValueError(f"bad {what} {spec!r}: expected key or key=value")


# --------------------------------------------------------------------------- talking to the engine

def engine_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def _reason(exc: BaseException) -> str:
    """The innermost OS-level reason ('Connection refused'), else the exception's first line."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError | Timeout | socket.timeout):
            return "no answer in time"
        if isinstance(current, OSError) and not isinstance(current, RequestException) \
                and current.strerror:
            return current.strerror
        current = current.__cause__ or current.__context__
    text = str(exc).removeprefix("Error while fetching server API version: ")
    return " ".join(text.split())[:300] or type(exc).__name__


def unavailable(exc: BaseException, host: str | None = None) -> DockerUnavailable:
    host = host or engine_host()
    return DockerUnavailable(f"cannot reach the docker engine at {host}: {_reason(exc)}; "
                             "start dockerd or set DOCKER_HOST")


def refused(exc: docker.errors.APIError, doing: str) -> DockerError:
    explanation = exc.explanation or str(exc)
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return DockerError(f"the docker engine refused to {doing}: {' '.join(str(explanation).split())}")


@contextmanager
def engine_errors(doing: str) -> Iterator[None]:
    """Every SDK failure becomes a one-line DockerError, never a traceback for the operator."""
    try:
        yield
    except docker.errors.APIError as exc:  # the engine answered, with an error
        raise refused(exc, doing) from exc
    except (RequestException, OSError) as exc:  # nothing (usable) answered
        raise unavailable(exc) from exc
    except docker.errors.DockerException as exc:  # the SDK itself refused, e.g. an API too old
        raise DockerError(f"cannot {doing}: {' '.join(str(exc).split())}") from exc


def connect(timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """A docker.DockerClient whose every call times out after timeout_s; DockerUnavailable if none."""
    try:
        # from_env asks the engine for its API version straight away: that is our reachability check.
        return docker.from_env(timeout=timeout_s)
    except (RequestException, docker.errors.DockerException, OSError) as exc:
        raise unavailable(exc) from exc


def parse_time(value: object) -> datetime | None:
    """The engine's RFC 3339 (nanoseconds) or Unix seconds; None for its 'never' (year 1)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC) if value > 0 else None
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def disk_at(root_dir: str, host: str, engine_name: str) -> tuple[DiskInfo | None, str]:
    """statvfs of root_dir when it is this machine's; otherwise why we cannot tell."""
    if not host.startswith(("unix://", "npipe://")) and not is_loopback(host):
        return None, f"{root_dir} is on the engine's machine ({host}), not visible from this process"
    here = socket.gethostname()
    if engine_name and engine_name != here:
        # Same socket, other machine: a VM (Docker Desktop) or a container with the socket
        # mounted. A local path of the same name would be a different filesystem.
        return None, (f"{root_dir} is not visible from this process: the engine runs on "
                      f"{engine_name!r}, this process on {here!r}")
    try:
        stats = os.statvfs(root_dir)
    except OSError as exc:
        return None, f"{root_dir} is not visible from this process ({exc.strerror or exc})"
    total = stats.f_blocks * stats.f_frsize
    return DiskInfo(root_dir, total, stats.f_bavail * stats.f_frsize), ""


def read_usage(client: Any, *, only_label: str = "") -> Usage:
    """Images, containers, volumes, build cache and disk, restricted to only_label if given."""
    check_label_spec(only_label, "label filter")
    with engine_errors("report its disk usage"):
        info = client.info()
        df = client.df()
    host = engine_host()
    root_dir = str(info.get("DockerRootDir") or "")
    disk, disk_problem = disk_at(root_dir, host, str(info.get("Name") or "")) \
        if root_dir else (None, "the engine did not report its DockerRootDir")

    def wanted(labels: Mapping[str, str] | None) -> bool:
        return not only_label or label_matches(labels, only_label)

    raw_images = [i for i in df.get("Images") or [] if wanted(i.get("Labels"))]
    image_ids = {i["Id"] for i in raw_images}
    raw_containers = df.get("Containers") or []
    details = _inspect_containers(client, [
        c for c in raw_containers if c.get("ImageID") in image_ids or wanted(c.get("Labels"))])
    every_container = [_container(c, details.get(c["Id"])) for c in raw_containers]
    containers = [c for c in every_container if c.id in details and wanted(c.labels)]
    inspected = [(i, _inspect_image(client, i["Id"])) for i in raw_images]
    images = [_image(i, detail, every_container) for i, detail in inspected if detail is not None]
    volumes = [_volume(v, every_container) for v in df.get("Volumes") or [] if wanted(v.get("Labels"))]
    notes = []
    if only_label:
        notes.append(f"only objects labelled {only_label} (build cache has no labels: left out)")
        images_bytes = sum(i.unique_size for i in images)
    else:
        images_bytes = int(df.get("LayersSize") or 0)
    # Oldest first, so tables and plans read the same from one run to the next.
    images.sort(key=lambda i: (i.created, i.id))
    containers.sort(key=lambda c: (c.created, c.id))
    volumes.sort(key=lambda v: v.name)
    return Usage(
        host=host, root_dir=root_dir, taken_at=datetime.now(UTC), images=images,
        containers=containers, volumes=volumes,
        build_cache=None if only_label else _build_cache(df), images_bytes=images_bytes,
        disk=disk, disk_problem=disk_problem, only_label=only_label, notes=notes)


def usage(*, only_label: str = "", timeout_s: float = DEFAULT_TIMEOUT_S) -> Usage:
    """Connect, read, disconnect: what `invoke docker.usage` shows."""
    client = connect(timeout_s)
    try:
        return read_usage(client, only_label=only_label)
    finally:
        client.close()


def _inspect_containers(client: Any, summaries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {}
    with engine_errors("inspect a container"):
        for summary in summaries:
            try:
                found[summary["Id"]] = client.api.inspect_container(summary["Id"])
            except docker.errors.NotFound:
                continue  # removed since df() listed it; it references nothing any more
    return found


def _inspect_image(client: Any, image_id: str) -> dict[str, Any] | None:
    with engine_errors("inspect an image"):
        try:
            result: dict[str, Any] = client.api.inspect_image(image_id)
        except docker.errors.NotFound:
            return None  # removed since df() listed it
    return result


def _container(summary: dict[str, Any], detail: dict[str, Any] | None) -> ContainerInfo:
    state = (detail or {}).get("State") or {}
    names = summary.get("Names") or [summary["Id"][:12]]
    created = parse_time((detail or {}).get("Created")) or parse_time(summary.get("Created"))
    return ContainerInfo(
        id=summary["Id"], name=str(names[0]).lstrip("/"), image_id=str(summary.get("ImageID") or ""),
        labels=dict(summary.get("Labels") or {}), state=str(summary.get("State") or ""),
        created=created or datetime.now(UTC), started_at=parse_time(state.get("StartedAt")),
        finished_at=parse_time(state.get("FinishedAt")), size_rw=int(summary.get("SizeRw") or 0),
        volumes=tuple(m["Name"] for m in summary.get("Mounts") or []
                      if m.get("Type") == "volume" and m.get("Name")))


def _image(summary: dict[str, Any], detail: dict[str, Any],
           containers: list[ContainerInfo]) -> ImageInfo:
    users = [c for c in containers if c.image_id == summary["Id"]]
    created = parse_time(detail.get("Created")) or parse_time(summary.get("Created"))
    tags = tuple(t for t in summary.get("RepoTags") or [] if t != "<none>:<none>")
    return ImageInfo(
        id=summary["Id"], tags=tags, labels=dict(summary.get("Labels") or {}),
        created=created or datetime.now(UTC),
        last_tag_time=parse_time((detail.get("Metadata") or {}).get("LastTagTime")),
        size=int(summary.get("Size") or 0), shared_size=int(summary.get("SharedSize") or 0),
        parent_id=str(summary.get("ParentId") or ""), containers=tuple(c.id for c in users),
        container_last_used=max((c.last_used for c in users), default=None))


def _volume(summary: dict[str, Any], containers: list[ContainerInfo]) -> VolumeInfo:
    usage_data = summary.get("UsageData") or {}
    return VolumeInfo(
        name=summary["Name"], labels=dict(summary.get("Labels") or {}),
        created=parse_time(summary.get("CreatedAt")), size=int(usage_data.get("Size", -1)),
        ref_count=int(usage_data.get("RefCount", -1)),
        containers=tuple(c.id for c in containers if summary["Name"] in c.volumes))


def _build_cache(df: Mapping[str, Any]) -> BuildCacheInfo:
    records = df.get("BuildCache") or []
    total = int(df.get("BuilderSize") or 0) or sum(int(r.get("Size") or 0) for r in records)
    reclaimable = sum(int(r.get("Size") or 0) for r in records if not r.get("InUse") and not r.get("Shared"))
    return BuildCacheInfo(len(records), total, reclaimable)


# --------------------------------------------------------------------------- rendering

def disk_line(usage: Usage) -> str:
    if usage.disk is None:
        return f"disk: {usage.disk_problem}"
    disk = usage.disk
    return (f"disk {disk.path}: {format_size(disk.used_bytes)} of {format_size(disk.total_bytes)} used "
            f"({disk.used_percent:.1f}%), {format_size(disk.available_bytes)} available")


def render_usage(usage: Usage) -> Table:
    """`docker system df`, plus the disk: one row per kind, the disk and notes in the caption."""
    scope = f" (only {usage.only_label})" if usage.only_label else ""
    table = Table(title=f"docker disk usage at {usage.host}{scope}", title_justify="left", min_width=90,
                  caption="\n".join([disk_line(usage), *usage.notes, ACCOUNTING]), caption_justify="left")
    for column in ("kind", "total", "active", "size", "reclaimable"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for row in usage.categories():
        share = f" ({100 * row.reclaimable_bytes / row.bytes:.0f}%)" if row.bytes else ""
        table.add_row(row.kind, str(row.count), str(row.active), format_size(row.bytes),
                      format_size(row.reclaimable_bytes) + share)
    return table

