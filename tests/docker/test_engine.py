"""Usage and clean against the real dockerd, on this test's own labelled objects only.

Everything here is made seconds before it is judged, so the policy's clock is moved instead:
planning "two days from now" with a one-day minimum age makes every object old, and planning
at a moment between two creations (plus the minimum age) splits them into old and young.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from rich.console import Console

from goldenpath.hygiene.clean import (
    Policy,
    clean,
    execute,
    plan_clean,
    prune_build_cache,
    summary_line,
)
from goldenpath.hygiene.usage import read_usage
from goldenpath.output.tables import clean_table, usage_table

if TYPE_CHECKING:
    from conftest import Case

pytestmark = pytest.mark.docker_required

DAY = timedelta(days=1)


def later() -> datetime:
    """A clock two days ahead: with a one-day minimum age, everything made here is old."""
    return datetime.now(UTC) + 2 * DAY


def pause() -> datetime:
    """A moment strictly between what was made before and what is made after (one host clock)."""
    time.sleep(0.3)
    moment = datetime.now(UTC)
    time.sleep(0.3)
    return moment


def text(renderable: Any) -> str:
    console = Console(record=True, width=200)
    console.print(renderable)
    return console.export_text()


def engine_objects(client: Any) -> dict[str, set[str]]:
    """Everything on the engine, not only ours: what a dry run must leave exactly in place."""
    api = client.api
    return {
        "images": {f"{i['Id']} {sorted(i.get('RepoTags') or [])}" for i in api.images(all=True)},
        "containers": {f"{c['Id']} {c['State']}" for c in api.containers(all=True)},
        "volumes": {v["Name"] for v in (api.volumes() or {}).get("Volumes") or []},
    }


def test_usage_reports_images_containers_volumes_and_the_disk(case: Case) -> None:
    small = case.image("small", 20_000)
    large = case.image("large", 30_000)
    user = case.container(small, "user")
    anonymous = case.volume()

    usage = read_usage(case.client, only_label=case.label)

    assert {i.id: i.size for i in usage.images} == {small: 20_000, large: 30_000}
    assert usage.images_bytes == 50_000
    [image] = [i for i in usage.images if i.id == small]
    assert image.tags == (f"{case.name('small')}:v1",)
    assert image.containers == (user,)
    assert [(c.id, c.stopped, c.image_id) for c in usage.containers] == [(user, True, small)]
    assert image.last_used == usage.containers[0].created
    assert [(v.name, v.anonymous) for v in usage.volumes] == [(anonymous, True)]
    kinds = {row.kind: row for row in usage.categories()}
    images = kinds["images"]
    assert (images.count, images.active, images.reclaimable_bytes) == (2, 1, 30_000)
    assert (kinds["containers"].count, kinds["containers"].active) == (1, 0)
    assert usage.build_cache is None  # it has no labels to filter by
    # dockerd runs on this machine, so the disk holding its root directory is visible.
    assert usage.root_dir == case.client.info()["DockerRootDir"]
    assert usage.disk is not None, usage.disk_problem
    assert usage.disk.total_bytes > 0
    assert 0 <= usage.disk.used_percent <= 100
    shown = text(usage_table(usage))
    assert "images" in shown
    assert f"disk {usage.root_dir}:" in shown


def test_whole_engine_usage_includes_build_cache(engine: Any) -> None:
    usage = read_usage(engine)
    assert usage.build_cache is not None
    assert usage.images_bytes >= 0


def test_threshold_run_removes_exactly_the_plan_in_order(case: Case) -> None:
    a = case.image("a", 20_000)
    b = case.image("b", 30_000)
    c = case.image("c", 40_000)
    dangling = case.image("d", 10_000, tag=None)
    user_of_b = case.container(b, "user-of-b")
    case.tag(a, "a", "v2")  # a's LastTagTime is now its newest use
    # 100kB of images, threshold 25kB: free 75kB. Dangling first (10kB), then by last use:
    # c (created), b (its container), and 80kB >= 75kB, so a (tagged last) stays.
    policy = Policy(threshold_bytes=25_000, containers=True, min_age=DAY, only_label=case.label)
    now = later()

    preview = clean(policy, dry_run=True, now=now, client=case.client)
    expected = [("container", user_of_b), ("image", dangling), ("image", c), ("image", b)]
    assert [(v.kind, v.id) for v in preview.plan.victims] == expected
    assert preview.plan.goal_bytes == 75_000

    result = clean(policy, now=now, client=case.client)

    assert result.failed == []
    assert [(v.kind, v.id) for v in result.removed] == expected
    assert case.image_ids() == {a}
    assert case.container_ids() == set()
    assert result.reclaimed_bytes == 10_000 + 40_000 + 30_000
    shown = text(clean_table(result))
    assert "removed" in shown
    assert "reclaimed 80kB" in summary_line(result)


def test_protected_images_survive_a_real_run(case: Case) -> None:
    plain = case.image("plain", 10_000)
    dangling = case.image("dangling", 10_000, tag=None)
    by_regex = case.image("pinned", 10_000)
    by_label = case.image("labelled", 10_000, labels={"goldenpath.keep": "true"})
    referenced = case.image("referenced", 10_000)
    holder = case.container(referenced, "holder")
    split = pause()
    young = case.image("young", 10_000)
    # At split + 1h with a 1h minimum age, only what was made after split is young.
    policy = Policy(threshold_bytes=0, min_age=timedelta(hours=1), keep=(r"-pinned:",), only_label=case.label)

    result = clean(policy, now=split + timedelta(hours=1), client=case.client)

    assert [v.id for v in result.removed] == [dangling, plain]
    assert case.image_ids() == {by_regex, by_label, referenced, young}
    assert case.container_ids() == {holder}
    reasons = {k.id: k.reason for k in result.plan.kept}
    assert reasons[by_regex].endswith("matches keep /-pinned:/")
    assert reasons[by_label] == "keep label goldenpath.keep=true"
    assert reasons[referenced] == "used by 1 container"
    assert "younger than the minimum age 1h" in reasons[young]


def test_dry_run_removes_nothing(case: Case, engine: Any) -> None:
    image = case.image("plain", 10_000)
    case.image("dangling", 10_000, tag=None)
    used = case.image("used", 10_000)
    case.container(used, "stopped")
    case.volume()
    case.volume(case.name("named"))
    before_all, before = engine_objects(engine), case.snapshot()
    policy = Policy(threshold_bytes=0, containers=True, volumes=True, build_cache_keep_bytes=0,
                    min_age=DAY, only_label=case.label)

    result = clean(policy, dry_run=True, now=later(), client=engine)

    assert result.dry_run
    assert result.removed == []
    assert [v.kind for v in result.plan.victims] == ["container", "volume", "image", "image", "image"]
    assert image in {v.id for v in result.plan.victims}
    assert case.snapshot() == before
    after_all = engine_objects(engine)
    # Other sessions may add objects meanwhile; none of what existed may be gone or changed.
    for kind, objects in before_all.items():
        assert objects <= after_all[kind], kind
    shown = text(clean_table(result))
    assert "would remove" in shown
    assert "nothing was removed" in shown


def test_stopped_containers_only_with_the_flag_and_past_the_minimum_age(case: Case) -> None:
    base = case.image("base", 10_000)
    old = case.container(base, "old")
    split = pause()
    young = case.container(base, "young")
    policy = Policy(threshold_bytes=10**12, min_age=timedelta(hours=1), only_label=case.label)
    now = split + timedelta(hours=1)

    without = clean(policy, now=now, client=case.client)
    assert without.removed == []
    assert case.container_ids() == {old, young}

    with_flag = clean(replace(policy, containers=True), now=now, client=case.client)
    assert [(v.kind, v.id) for v in with_flag.removed] == [("container", old)]
    assert case.container_ids() == {young}
    assert case.image_ids() == {base}


def test_volumes_only_with_the_flag_and_only_unused_anonymous_ones(case: Case) -> None:
    base = case.image("base", 10_000)
    unused = case.volume()
    named = case.volume(case.name("named"))
    mounted = case.volume()
    case.container(base, "mounts", volumes={mounted: {"bind": "/data", "mode": "rw"}})
    policy = Policy(threshold_bytes=10**12, min_age=DAY, only_label=case.label)

    without = clean(policy, now=later(), client=case.client)
    assert without.removed == []
    assert case.volume_names() == {unused, named, mounted}

    with_flag = clean(replace(policy, volumes=True), now=later(), client=case.client)
    assert [(v.kind, v.id) for v in with_flag.removed] == [("volume", unused)]
    assert case.volume_names() == {named, mounted}


def test_shared_layers_count_once_and_the_plan_uses_unique_bytes(case: Case) -> None:
    layer = case.layer("shared", 30_000)
    first = case.image("first", layer=layer)
    second = case.image("second", layer=layer)
    alone = case.image("alone", 20_000)

    usage = read_usage(case.client, only_label=case.label)
    sizes = {i.id: (i.size, i.shared_size, i.unique_size) for i in usage.images}
    assert sizes == {first: (30_000, 30_000, 0), second: (30_000, 30_000, 0), alone: (20_000, 0, 20_000)}

    result = clean(Policy(threshold_bytes=0, min_age=DAY, only_label=case.label), now=later(),
                   client=case.client)
    assert {v.id: v.bytes for v in result.removed} == {first: 0, second: 0, alone: 20_000}
    assert "SharedSize" in result.plan.accounting
    assert case.image_ids() == set()


def test_build_cache_prune_accepts_a_keep_storage_bound(engine: Any) -> None:
    # A terabyte bound frees nothing on this engine, yet proves API 1.41 takes keep-storage.
    assert prune_build_cache(engine, keep_bytes=10**12) == 0


def test_what_changed_since_the_plan_is_left_alone(case: Case) -> None:
    gone = case.image("gone", 10_000)
    now_used = case.image("now-used", 10_000)
    victim = case.image("victim", 10_000)
    policy = Policy(threshold_bytes=0, min_age=DAY, only_label=case.label)
    plan = plan_clean(read_usage(case.client, only_label=case.label), policy, later())
    assert {v.id for v in plan.victims} == {gone, now_used, victim}
    case.client.api.remove_image(gone)
    late_user = case.container(now_used, "late-user")

    result = execute(case.client, plan)

    assert [v.id for v in result.removed] == [victim]
    assert {f.victim.id: f.error for f in result.skipped} == {
        gone: f"image {case.name('gone')}:v1 was already gone",
        now_used: f"image {case.name('now-used')}:v1 is now used by 1 container; left alone",
    }
    assert result.failed == []
    assert case.image_ids() == {now_used}
    assert case.container_ids() == {late_user}
