"""What Docker holds on disk: images, containers, volumes and build cache, read from the engine.

Everything comes from the engine's own accounting (``docker system df``, i.e. the SDK's
``df()``) plus ``statvfs`` of the filesystem holding Docker's root directory, when this
process can see it. Reading never changes anything; ``clean`` decides and removes. The data it returns
is defined in ``model``.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
from requests.exceptions import RequestException, Timeout

from goldenpath.core.errors import DockerError, DockerUnavailable
from goldenpath.core.http import is_loopback
from goldenpath.hygiene.model import (
    BuildCacheInfo,
    ContainerInfo,
    DiskInfo,
    ImageInfo,
    Usage,
    VolumeInfo,
    check_label_spec,
    label_matches,
)

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_HOST = "unix:///var/run/docker.sock"
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
