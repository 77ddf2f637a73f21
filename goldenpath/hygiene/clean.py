"""Docker disk hygiene: decide what to remove (a pure planner), then remove exactly that.

Images are evicted kubelet-style (start above ``high`` % of the disk used, stop at ``low`` %)
or docuum-style (start when images total more than a threshold, stop at or below it):
dangling images first, then least recently used. Stopped containers, anonymous volumes
and build cache go only when asked. docs/docker.md has the whole policy.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import docker.errors

from goldenpath.core.errors import DockerError, DockerUnavailable, PolicyError
from goldenpath.hygiene.model import (
    ACCOUNTING,
    DiskInfo,
    ImageInfo,
    Usage,
    check_label_spec,
    format_age,
    format_size,
    label_matches,
    parse_age,
    parse_size,
    volume_in_use,
)
from goldenpath.hygiene.usage import DEFAULT_TIMEOUT_S, connect, engine_errors, read_usage

DEFAULT_HIGH_PERCENT = 85.0  # the kubelet's image GC defaults
DEFAULT_LOW_PERCENT = 80.0
DEFAULT_MIN_AGE = timedelta(hours=1)
DEFAULT_KEEP_LABEL = "goldenpath.keep=true"



@dataclass(frozen=True)
class Policy:
    high_percent: float = DEFAULT_HIGH_PERCENT
    low_percent: float = DEFAULT_LOW_PERCENT
    threshold_bytes: int | None = None  # set: docuum mode, and the watermarks are not used
    min_age: timedelta = DEFAULT_MIN_AGE
    keep: tuple[str, ...] = ()  # regexes searched in each repo:tag
    keep_label: str = DEFAULT_KEEP_LABEL  # 'key' or 'key=value'; "" protects nothing by label
    containers: bool = False
    volumes: bool = False
    build_cache_keep_bytes: int | None = None  # None: build cache is not touched
    only_label: str = ""  # consider only objects with this label ('key' or 'key=value')

    def __post_init__(self) -> None:
        if self.threshold_bytes is None:
            if not 0 <= self.low_percent < self.high_percent <= 100:
                raise PolicyError(f"watermarks need 0 <= low < high <= 100, got low {self.low_percent:g}% "
                                  f"and high {self.high_percent:g}%")
        elif self.threshold_bytes < 0:
            raise PolicyError("the threshold cannot be negative")
        if self.min_age < timedelta(0):
            raise PolicyError("the minimum age cannot be negative")
        if self.build_cache_keep_bytes is not None and self.build_cache_keep_bytes < 0:
            raise PolicyError("the build cache bound cannot be negative")
        for pattern in self.keep:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise PolicyError(f"bad keep regex {pattern!r}: {exc}") from None
        try:
            check_label_spec(self.keep_label, "keep label")
            check_label_spec(self.only_label, "label filter")
        except ValueError as exc:
            raise PolicyError(str(exc)) from None

    @property
    def mode(self) -> str:
        return "watermarks" if self.threshold_bytes is None else "threshold"

    def describe(self) -> str:
        if self.threshold_bytes is None:
            goal = f"start above {self.high_percent:g}% of the disk used, stop at {self.low_percent:g}%"
        else:
            goal = f"keep images at or below {format_size(self.threshold_bytes)}"
        extras = [f"min age {format_age(self.min_age)}"]
        extras += [f"keep /{p}/" for p in self.keep]
        extras += [f"keep label {self.keep_label}"] if self.keep_label else []
        extras += ["stopped containers"] if self.containers else []
        extras += ["anonymous volumes"] if self.volumes else []
        if self.build_cache_keep_bytes is not None:
            extras.append(f"build cache down to {format_size(self.build_cache_keep_bytes)}")
        return f"{goal}; {', '.join(extras)}"


def policy_from_options(
    *,
    high: float | None = None,
    low: float | None = None,
    threshold: str = "",
    min_age: str = "",
    keep: str | Sequence[str] = (),
    keep_label: str = DEFAULT_KEEP_LABEL,
    containers: bool = False,
    volumes: bool = False,
    build_cache_keep: str = "",
    only_label: str = "",
) -> Policy:
    """A Policy from command-line strings ('10GB', '2d'); PolicyError says what is wrong."""
    if threshold and (high is not None or low is not None):
        raise PolicyError("give either watermarks (high/low) or a threshold, not both")
    try:
        threshold_bytes = parse_size(threshold) if threshold else None
        cache_keep = parse_size(build_cache_keep) if build_cache_keep else None
        age = parse_age(min_age) if min_age else DEFAULT_MIN_AGE
    except ValueError as exc:
        raise PolicyError(str(exc)) from None
    return Policy(
        high_percent=DEFAULT_HIGH_PERCENT if high is None else float(high),
        low_percent=DEFAULT_LOW_PERCENT if low is None else float(low),
        threshold_bytes=threshold_bytes, min_age=age,
        keep=tuple(p for p in ((keep,) if isinstance(keep, str) else keep) if p),
        keep_label=keep_label, containers=containers, volumes=volumes,
        build_cache_keep_bytes=cache_keep, only_label=only_label)


# --------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Victim:
    kind: str  # container, volume, build cache, image
    id: str
    name: str
    reason: str
    bytes: int  # the engine's estimate of what removing it frees (see CleanPlan.accounting)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Kept:
    kind: str
    id: str
    name: str
    reason: str


@dataclass(frozen=True)
class CleanPlan:
    policy: Policy
    now: datetime
    trigger: str  # why images are (or are not) evicted
    goal_bytes: int  # bytes to free for the image goal; 0 when no eviction is due
    victims: list[Victim]  # in the order they are removed
    kept: list[Kept]  # candidates a protection saved, and why
    notes: list[str] = field(default_factory=list)
    accounting: str = ACCOUNTING

    @property
    def total_bytes(self) -> int:
        return sum(v.bytes for v in self.victims)

    @property
    def goal_reached(self) -> bool:
        return self.total_bytes >= self.goal_bytes


def plan_clean(usage: Usage, policy: Policy, now: datetime) -> CleanPlan:
    """What to remove, in order, and why: pure, so the clock and the numbers can be anything."""
    if now.tzinfo is None:
        raise PolicyError("now must be timezone-aware (e.g. datetime.now(UTC))")
    victims: list[Victim] = []
    kept: list[Kept] = []
    notes = list(usage.notes)

    leaving_containers = _plan_containers(usage, policy, now, victims, kept, notes)
    _plan_volumes(usage, policy, now, leaving_containers, victims, kept, notes)
    _plan_build_cache(usage, policy, victims, notes)

    trigger, goal = _image_goal(usage, policy, freed_before=sum(v.bytes for v in victims))
    if goal > 0:
        _plan_images(usage, policy, now, goal, leaving_containers, victims, kept)
        short = goal - sum(v.bytes for v in victims)
        if short > 0:
            notes.append(f"goal not reached: {format_size(short)} short once every unprotected image "
                         "is gone (the engine may free more: shared layers go with their last image)")
    return CleanPlan(policy, now, trigger, max(0, goal), victims, kept, notes)


def _young(last_used: datetime, policy: Policy, now: datetime) -> str:
    """Why the minimum age protects it, or '' when it is old enough."""
    age = now - last_used
    if age < policy.min_age:
        return f"last used {format_age(age)} ago, younger than the minimum age {format_age(policy.min_age)}"
    return ""


def _plan_containers(usage: Usage, policy: Policy, now: datetime, victims: list[Victim],
                     kept: list[Kept], notes: list[str]) -> frozenset[str]:
    stopped = [c for c in usage.containers if c.stopped]
    if not policy.containers:
        if stopped:
            notes.append(f"{len(stopped)} stopped container(s) left alone (containers=False); "
                         "their images are protected")
        return frozenset()
    leaving = []
    for container in sorted(stopped, key=lambda c: (c.last_used, c.id)):
        # Containers inherit their image's labels, so the containers of a kept image are kept too.
        pinned = bool(policy.keep_label) and label_matches(container.labels, policy.keep_label)
        why = f"keep label {policy.keep_label}" if pinned else _young(container.last_used, policy, now)
        if why:
            kept.append(Kept("container", container.id, container.name, why))
            continue
        victims.append(Victim("container", container.id, container.name,
                              f"{container.state}, last used {format_age(now - container.last_used)} ago",
                              container.size_rw))
        leaving.append(container.id)
    return frozenset(leaving)


def _plan_volumes(usage: Usage, policy: Policy, now: datetime, leaving: frozenset[str],
                  victims: list[Victim], kept: list[Kept], notes: list[str]) -> None:
    if not policy.volumes:
        return
    candidates = [v for v in usage.volumes if v.anonymous and not volume_in_use(v, leaving)]
    named = sum(1 for v in usage.volumes if not v.anonymous and not volume_in_use(v, leaving))
    if named:
        notes.append(f"{named} unused named volume(s) left alone: only anonymous volumes are removed")
    epoch = datetime.min.replace(tzinfo=UTC)
    for volume in sorted(candidates, key=lambda v: (v.created or epoch, v.name)):
        why = ""
        if policy.keep_label and label_matches(volume.labels, policy.keep_label):
            why = "keep label " + policy.keep_label
        elif volume.created is not None:
            # An anonymous volume exists a moment before the container that asked for it.
            why = _young(volume.created, policy, now)
        if why:
            kept.append(Kept("volume", volume.name, volume.name, why))
            continue
        freed_by = " with its last container" if volume.containers else ""
        victims.append(Victim("volume", volume.name, volume.name, f"anonymous, unused{freed_by}",
                              max(0, volume.size)))


def _plan_build_cache(usage: Usage, policy: Policy, victims: list[Victim], notes: list[str]) -> None:
    keep = policy.build_cache_keep_bytes
    if keep is None:
        return
    if usage.build_cache is None:
        notes.append("build cache not pruned: it has no labels, so a label filter cannot scope it")
        return
    cache = usage.build_cache
    estimate = max(0, min(cache.reclaimable_bytes, cache.total_bytes - keep))
    if estimate == 0:
        notes.append(f"build cache {format_size(cache.total_bytes)} is within its bound {format_size(keep)}")
        return
    victims.append(Victim("build cache", "", f"unused build cache above {format_size(keep)}",
                          f"{format_size(cache.total_bytes)} cached, bound {format_size(keep)}", estimate))


def _image_goal(usage: Usage, policy: Policy, freed_before: int) -> tuple[str, int]:
    """(why, bytes of images to free); the bytes are <= 0 when no eviction is due."""
    if policy.threshold_bytes is not None:
        total, limit = usage.images_bytes, policy.threshold_bytes
        if total <= limit:
            return f"images total {format_size(total)}, within the threshold {format_size(limit)}", 0
        return (f"images total {format_size(total)} > threshold {format_size(limit)}: "
                f"free {format_size(total - limit)}", total - limit)
    disk: DiskInfo | None = usage.disk
    if disk is None:
        raise PolicyError(f"watermarks need the disk holding Docker's root directory, but "
                          f"{usage.disk_problem}; use a threshold (e.g. 10GB) instead")
    if disk.used_percent <= policy.high_percent:
        return (f"disk {disk.used_percent:.1f}% used, not above the high watermark "
                f"{policy.high_percent:g}%", 0)
    target = int(disk.total_bytes * policy.low_percent / 100)
    need = disk.used_bytes - target
    # Containers, volumes and build cache removed first count towards the same disk.
    goal = need - freed_before
    return (f"disk {disk.used_percent:.1f}% used > high {policy.high_percent:g}%: free "
            f"{format_size(need)} to reach {policy.low_percent:g}%"
            + (f", {format_size(freed_before)} of it by the steps before images" if freed_before else ""),
            goal)


def _image_protection(image: ImageInfo, policy: Policy, now: datetime, leaving: frozenset[str],
                      parents: set[str], keep: list[re.Pattern[str]]) -> str:
    users = [c for c in image.containers if c not in leaving]
    if users:
        return f"used by {_containers(len(users))}"
    if policy.keep_label and label_matches(image.labels, policy.keep_label):
        return "keep label " + policy.keep_label
    for pattern in keep:
        tag = next((t for t in image.tags if pattern.search(t)), None)
        if tag:
            return f"{tag} matches keep /{pattern.pattern}/"
    if image.id in parents:
        return "parent of another image"
    return _young(image.last_used, policy, now)


def _plan_images(usage: Usage, policy: Policy, now: datetime, goal: int, leaving: frozenset[str],
                 victims: list[Victim], kept: list[Kept]) -> None:
    keep = [re.compile(p) for p in policy.keep]
    parents = {i.parent_id for i in usage.images if i.parent_id}
    eligible = []
    for image in usage.images:
        why = _image_protection(image, policy, now, leaving, parents, keep)
        if why:
            kept.append(Kept("image", image.id, image.name, why))
        else:
            eligible.append(image)
    # Dangling first, then least recently used; the id only makes ties deterministic.
    eligible.sort(key=lambda i: (not i.dangling, i.last_used, i.id))
    freed = 0
    for image in eligible:
        if freed >= goal:
            break
        what = "dangling" if image.dangling else "least recently used"
        victims.append(Victim("image", image.id, image.name,
                              f"{what}, last used {format_age(now - image.last_used)} ago "
                              f"({image.last_used_by})", image.unique_size, image.tags))
        freed += image.unique_size


# --------------------------------------------------------------------------- doing it

@dataclass(frozen=True)
class Failure:
    victim: Victim
    error: str  # one line: what the engine said, or what changed since the plan


@dataclass
class CleanResult:
    plan: CleanPlan
    dry_run: bool
    removed: list[Victim] = field(default_factory=list)  # in the order they went
    skipped: list[Failure] = field(default_factory=list)  # changed since the plan; left alone
    failed: list[Failure] = field(default_factory=list)  # the engine refused
    reclaimed_bytes: int = 0  # the engine's accounting of what was removed
    disk_freed_bytes: int | None = None  # measured with statvfs, when the disk is visible

    @property
    def ok(self) -> bool:
        return not self.failed


def execute(client: Any, plan: CleanPlan, *, disk: DiskInfo | None = None) -> CleanResult:
    """Remove the plan's victims in order. A victim the engine refuses is reported, not forced."""
    result = CleanResult(plan, dry_run=False)
    before = _available(disk)
    for victim in plan.victims:
        try:
            freed = _remove(client, victim, plan.policy)
        except DockerUnavailable as exc:
            # Nothing further can be removed; say how far we got, as the partial result is lost.
            raise DockerUnavailable(f"{exc} (after removing {len(result.removed)} of "
                                    f"{len(plan.victims)} object(s))") from exc
        except _Skipped as exc:
            result.skipped.append(Failure(victim, str(exc)))
            continue
        except DockerError as exc:
            result.failed.append(Failure(victim, str(exc)))
            continue
        removed = victim if freed is None else Victim(victim.kind, victim.id, victim.name, victim.reason,
                                                      freed, victim.tags)
        result.removed.append(removed)
        result.reclaimed_bytes += removed.bytes
    after = _available(disk)
    if before is not None and after is not None:
        result.disk_freed_bytes = after - before
    return result


def clean(policy: Policy, *, dry_run: bool = False, now: datetime | None = None,
          timeout_s: float = DEFAULT_TIMEOUT_S, client: Any = None) -> CleanResult:
    """What `invoke docker.clean` does: read usage, plan, and (unless dry_run) remove."""
    own = client is None
    client = connect(timeout_s) if own else client
    try:
        usage = read_usage(client, only_label=policy.only_label)
        plan = plan_clean(usage, policy, now or datetime.now(UTC))
        if dry_run:
            return CleanResult(plan, dry_run=True)
        return execute(client, plan, disk=usage.disk)
    finally:
        if own:
            client.close()


def prune_build_cache(client: Any, keep_bytes: int) -> int:
    """Unused build cache, oldest first, until at most keep_bytes remain; the bytes freed."""
    with engine_errors("prune the build cache"):
        # keep-storage needs API 1.39 (Docker 18.09); all=True lets it reach the bound with
        # any unused record, not only dangling ones, as `docker builder prune -a --keep-storage`.
        answer = client.api.prune_builds(keep_storage=keep_bytes, all=True)
    return int((answer or {}).get("SpaceReclaimed") or 0)


class _Skipped(Exception):
    """The victim changed since the plan; leaving it is the safe choice."""


def _available(disk: DiskInfo | None) -> int | None:
    if disk is None:
        return None
    try:
        stats = os.statvfs(disk.path)
    except OSError:
        return None  # the disk went away under us; the engine's accounting still stands
    return stats.f_bavail * stats.f_frsize


def _remove(client: Any, victim: Victim, policy: Policy) -> int | None:
    """Remove one victim; the bytes actually freed when the engine says, else None."""
    if victim.kind == "build cache":
        return prune_build_cache(client, policy.build_cache_keep_bytes or 0)
    with engine_errors(f"remove {victim.kind} {victim.name}"):
        try:
            if victim.kind == "container":
                # Never force: a container that started since the plan stays.
                client.api.remove_container(victim.id, v=False, force=False)
            elif victim.kind == "volume":
                client.api.remove_volume(victim.id, force=False)
            else:
                _remove_image(client, victim)
        except docker.errors.NotFound:
            raise _Skipped(f"{victim.kind} {victim.name} was already gone") from None
    return None


def _remove_image(client: Any, victim: Victim) -> None:
    client.api.inspect_image(victim.id)  # NotFound: already gone, which is not ours to claim
    users = client.api.containers(all=True, filters={"ancestor": victim.id}, quiet=True)
    if users:
        raise _Skipped(f"image {victim.name} is now used by {_containers(len(users))}; left alone")
    if not victim.tags:
        client.api.remove_image(victim.id, force=False)
        return
    # Untag one tag at a time: removing by id would need force, and force deletes an image
    # a stopped container still uses. The last untag deletes the image, and the engine
    # refuses it if a container appeared meanwhile.
    for tag in victim.tags:
        try:
            current = client.api.inspect_image(tag)["Id"]
        except docker.errors.NotFound:
            continue
        if current != victim.id:
            continue  # the tag moved to another image since the plan; that image is not ours to remove
        client.api.remove_image(tag, force=False)
    try:
        client.api.inspect_image(victim.id)
    except docker.errors.NotFound:
        return
    raise _Skipped(f"image {victim.name} was untagged but is still there (a tag or a child appeared)")


# --------------------------------------------------------------------------- rendering

def summary_line(result: CleanResult) -> str:
    if result.dry_run:
        return (f"dry run: {len(result.plan.victims)} object(s), {format_size(result.plan.total_bytes)} "
                "would be reclaimed; nothing was removed")
    line = (f"removed {len(result.removed)} object(s), reclaimed {format_size(result.reclaimed_bytes)} "
            "(engine accounting)")
    if result.disk_freed_bytes is not None:
        line += f", disk available {'+' if result.disk_freed_bytes >= 0 else ''}" \
                f"{format_size(result.disk_freed_bytes)}"
    if result.skipped:
        line += f"; {len(result.skipped)} skipped (changed since the plan)"
    if result.failed:
        line += f"; {len(result.failed)} failed"
    return line


def _containers(count: int) -> str:
    return f"{count} container{'' if count == 1 else 's'}"
