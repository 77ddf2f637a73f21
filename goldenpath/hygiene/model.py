"""What Docker holds on disk, as data: images, containers, volumes, build cache and the disk.

The reader (``usage``) fills these from the engine; the planner (``clean``) decides on
them; the tables (``goldenpath.output.tables``) show them. Nothing here talks to an engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# Docker names an anonymous volume with 64 hex digits. Engines from 23.0 also label it
# com.docker.volume.anonymous; 20.10 does not, so the name is what we go by.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_HEX64 = re.compile(r"[0-9a-f]{64}")
STOPPED_STATES = frozenset({"created", "exited", "dead"})
ACCOUNTING = ("bytes are the engine's df() numbers; an image counts its unique bytes, Size - SharedSize "
              "(a layer shared with other images is freed with the last of them)")




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


# --------------------------------------------------------------------------- one line of text

def disk_line(usage: Usage) -> str:
    if usage.disk is None:
        return f"disk: {usage.disk_problem}"
    disk = usage.disk
    return (f"disk {disk.path}: {format_size(disk.used_bytes)} of {format_size(disk.total_bytes)} used "
            f"({disk.used_percent:.1f}%), {format_size(disk.available_bytes)} available")
