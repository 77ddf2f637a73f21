"""The clean planner on given numbers: it is pure, so the disk and the clock can be anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from goldenpath.core.errors import PolicyError
from goldenpath.hygiene.clean import CleanPlan, Policy, plan_clean, policy_from_options
from goldenpath.hygiene.model import BuildCacheInfo, ContainerInfo, DiskInfo, ImageInfo, Usage, VolumeInfo

NOW = datetime(2030, 1, 1, tzinfo=UTC)
HEX = "ab" * 32


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def image(name: str, size: int = 100, *, dangling: bool = False, created: datetime | None = None,
          tagged: datetime | None = None, containers: tuple[str, ...] = (),
          container_used: datetime | None = None, labels: dict[str, str] | None = None,
          shared: int = 0, parent: str = "") -> ImageInfo:
    return ImageInfo(id=f"sha256:{name}", tags=() if dangling else (f"{name}:v1",), labels=labels or {},
                     created=created or ago(days=30), last_tag_time=tagged, size=size, shared_size=shared,
                     parent_id=parent, containers=containers, container_last_used=container_used)


def container(name: str, image_id: str = "sha256:none", *, state: str = "exited",
              created: datetime | None = None, finished: datetime | None = None, size: int = 0,
              volumes: tuple[str, ...] = (), labels: dict[str, str] | None = None) -> ContainerInfo:
    return ContainerInfo(id=name, name=name, image_id=image_id, labels=labels or {}, state=state,
                         created=created or ago(days=20), finished_at=finished, size_rw=size, volumes=volumes)


def volume(name: str, *, size: int = 10, containers: tuple[str, ...] = (), ref_count: int | None = None,
           labels: dict[str, str] | None = None, created: datetime | None = None) -> VolumeInfo:
    return VolumeInfo(name=name, labels=labels or {}, created=created or ago(days=20), size=size,
                      ref_count=len(containers) if ref_count is None else ref_count, containers=containers)


def usage(images: list[ImageInfo] | None = None, *, containers: list[ContainerInfo] | None = None,
          volumes: list[VolumeInfo] | None = None, disk: tuple[int, int] | None = (1000, 500),
          images_bytes: int | None = None, build_cache: BuildCacheInfo | None = None) -> Usage:
    images = images or []
    return Usage(
        host="unix:///test.sock", root_dir="/var/lib/docker", taken_at=NOW, images=images,
        containers=containers or [], volumes=volumes or [], build_cache=build_cache,
        images_bytes=sum(i.unique_size for i in images) if images_bytes is None else images_bytes,
        disk=DiskInfo("/var/lib/docker", disk[0], disk[0] - disk[1]) if disk else None,
        disk_problem="" if disk else "/var/lib/docker is not visible from this process (No such file)")


def names(plan: CleanPlan, kind: str | None = None) -> list[str]:
    return [v.name for v in plan.victims if kind is None or v.kind == kind]


def kept(plan: CleanPlan) -> dict[str, str]:
    return {k.name: k.reason for k in plan.kept}


FOUR = [
    image("newest", 60, created=ago(days=2)),
    image("middle", 40, created=ago(days=5)),
    image("oldest", 50, created=ago(days=9)),
    image("none", 30, dangling=True, created=ago(days=1)),
]


# --------------------------------------------------------------------------- watermarks

def test_no_eviction_at_or_below_the_high_watermark() -> None:
    plan = plan_clean(usage(FOUR, disk=(1000, 850)), Policy(high_percent=85, low_percent=80), NOW)
    assert plan.victims == []
    assert plan.goal_bytes == 0
    assert "not above the high watermark 85%" in plan.trigger


def test_above_high_evicts_dangling_then_lru_until_at_or_below_low() -> None:
    # 90% used of 1000 bytes; low 80% means free 100: 30 (dangling) + 50 + 40 = 120 >= 100.
    plan = plan_clean(usage(FOUR, disk=(1000, 900)), Policy(high_percent=85, low_percent=80), NOW)
    assert plan.goal_bytes == 100
    assert names(plan) == ["<none> none", "oldest:v1", "middle:v1"]
    assert plan.total_bytes == 120
    assert plan.goal_reached
    assert "90.0% used > high 85%" in plan.trigger


def test_eviction_stops_as_soon_as_the_goal_is_met() -> None:
    # Free exactly 80 (= 30 + 50): the third image must stay.
    plan = plan_clean(usage(FOUR, disk=(1000, 880)), Policy(high_percent=85, low_percent=80), NOW)
    assert names(plan) == ["<none> none", "oldest:v1"]


def test_bytes_freed_before_images_count_towards_the_watermark() -> None:
    stopped = container("old-exited", size=60)
    plan = plan_clean(usage(FOUR, containers=[stopped], disk=(1000, 900)),
                      Policy(high_percent=85, low_percent=80, containers=True), NOW)
    # 100 to free: the container's 60, then 30 + 50 of images.
    assert names(plan) == ["old-exited", "<none> none", "oldest:v1"]
    assert plan.goal_bytes == 40


def test_watermarks_need_a_visible_disk() -> None:
    with pytest.raises(PolicyError, match=r"not visible from this process.*use a threshold"):
        plan_clean(usage(FOUR, disk=None), Policy(), NOW)


def test_a_threshold_needs_no_disk() -> None:
    plan = plan_clean(usage(FOUR, disk=None), Policy(threshold_bytes=100), NOW)
    assert plan.goal_bytes == 80
    assert names(plan) == ["<none> none", "oldest:v1"]


# --------------------------------------------------------------------------- threshold

def test_threshold_evicts_until_images_total_at_or_below_it() -> None:
    plan = plan_clean(usage(FOUR), Policy(threshold_bytes=60), NOW)  # 180 total: free 120
    assert names(plan) == ["<none> none", "oldest:v1", "middle:v1"]
    assert "images total 180B > threshold 60B" in plan.trigger


def test_no_eviction_when_images_total_equals_the_threshold() -> None:
    plan = plan_clean(usage(FOUR), Policy(threshold_bytes=180), NOW)
    assert plan.victims == []
    assert "within the threshold" in plan.trigger


def test_goal_not_reached_is_said() -> None:
    protected = [image("a", 100, labels={"goldenpath.keep": "true"}), image("b", 50)]
    plan = plan_clean(usage(protected), Policy(threshold_bytes=0), NOW)
    assert names(plan) == ["b:v1"]
    assert not plan.goal_reached
    assert any("goal not reached: 100B short" in note for note in plan.notes)


def test_victim_bytes_are_unique_bytes_and_the_plan_says_so() -> None:
    shared = [image("base-a", 100, shared=70), image("base-b", 120, shared=70, created=ago(days=1))]
    plan = plan_clean(usage(shared, images_bytes=150), Policy(threshold_bytes=0), NOW)
    assert [(v.name, v.bytes) for v in plan.victims] == [("base-a:v1", 30), ("base-b:v1", 50)]
    assert "Size - SharedSize" in plan.accounting


# --------------------------------------------------------------------------- order

def test_last_use_is_the_newest_of_container_tag_and_created() -> None:
    images = [
        image("tagged-yesterday", created=ago(days=40), tagged=ago(days=1)),
        image("used-two-days-ago", created=ago(days=50), containers=("c1",), container_used=ago(days=2)),
        image("created-long-ago", created=ago(days=30)),
        image("dangling-new", dangling=True, created=ago(hours=3)),
    ]
    used = container("c1", "sha256:used-two-days-ago", created=ago(days=3), finished=ago(days=2))
    plan = plan_clean(usage(images, containers=[used]), Policy(threshold_bytes=0, containers=True), NOW)
    assert names(plan) == ["c1", "<none> dangling-new", "created-long-ago:v1", "used-two-days-ago:v1",
                           "tagged-yesterday:v1"]
    reasons = {v.name: v.reason for v in plan.victims}
    assert reasons["tagged-yesterday:v1"] == "least recently used, last used 1d ago (tagged)"
    assert reasons["used-two-days-ago:v1"] == "least recently used, last used 2d ago (a container)"
    assert reasons["<none> dangling-new"] == "dangling, last used 3h ago (created)"


def test_several_dangling_images_go_oldest_first() -> None:
    images = [image("d2", dangling=True, created=ago(days=2)),
              image("d9", dangling=True, created=ago(days=9)),
              image("tagged-old", created=ago(days=99))]
    plan = plan_clean(usage(images), Policy(threshold_bytes=0), NOW)
    assert names(plan) == ["<none> d9", "<none> d2", "tagged-old:v1"]


# --------------------------------------------------------------------------- protections

def test_protected_images_are_kept_with_their_reason() -> None:
    images = [
        image("app-prod", created=ago(days=90)),
        image("labelled", labels={"goldenpath.keep": "true"}),
        image("label-false", labels={"goldenpath.keep": "false"}),
        image("in-use", containers=("stopped-1",), container_used=ago(days=10)),
        image("running", containers=("running-1",), container_used=ago(days=10)),
        image("young", created=ago(minutes=30)),
        image("base"),
        image("child", parent="sha256:base", created=ago(days=1)),
        image("victim"),
    ]
    containers = [container("stopped-1", "sha256:in-use", created=ago(days=10)),
                  container("running-1", "sha256:running", state="running", created=ago(days=10))]
    policy = Policy(threshold_bytes=0, keep=(r"-prod:",), min_age=timedelta(hours=1))
    plan = plan_clean(usage(images, containers=containers), policy, NOW)
    assert names(plan) == ["label-false:v1", "victim:v1", "child:v1"]
    assert kept(plan) == {
        "app-prod:v1": "app-prod:v1 matches keep /-prod:/",
        "labelled:v1": "keep label goldenpath.keep=true",
        "in-use:v1": "used by 1 container",
        "running:v1": "used by 1 container",
        "young:v1": "last used 30m ago, younger than the minimum age 1h",
        "base:v1": "parent of another image",
    }


def test_a_keep_label_key_alone_protects_whatever_its_value() -> None:
    images = [image("a", labels={"team.pin": "no"}), image("b")]
    plan = plan_clean(usage(images), Policy(threshold_bytes=0, keep_label="team.pin"), NOW)
    assert names(plan) == ["b:v1"]


def test_an_image_of_a_removed_container_is_still_protected_by_that_containers_recent_use() -> None:
    images = [image("img", created=ago(days=30), containers=("c",), container_used=ago(minutes=90))]
    old_enough = container("c", "sha256:img", created=ago(minutes=90))
    plan = plan_clean(usage(images, containers=[old_enough]),
                      Policy(threshold_bytes=0, containers=True, min_age=timedelta(hours=2)), NOW)
    assert plan.victims == []
    assert kept(plan) == {"c": "last used 1h30m ago, younger than the minimum age 2h",
                          "img:v1": "used by 1 container"}


# --------------------------------------------------------------------------- containers

def test_stopped_containers_only_with_the_flag() -> None:
    images = [image("img", containers=("c",), container_used=ago(days=5))]
    stopped = [container("c", "sha256:img", created=ago(days=5), size=7)]
    without = plan_clean(usage(images, containers=stopped), Policy(threshold_bytes=0), NOW)
    assert without.victims == []
    assert kept(without) == {"img:v1": "used by 1 container"}
    assert any("1 stopped container(s) left alone" in note for note in without.notes)
    with_flag = plan_clean(usage(images, containers=stopped), Policy(threshold_bytes=0, containers=True), NOW)
    assert [(v.kind, v.name, v.bytes) for v in with_flag.victims] == [("container", "c", 7),
                                                                      ("image", "img:v1", 100)]


def test_containers_running_young_or_labelled_stay() -> None:
    containers = [
        container("running", state="running"),
        container("paused", state="paused"),
        container("young", created=ago(minutes=5)),
        container("finished-lately", created=ago(days=9), finished=ago(minutes=5)),
        container("pinned", labels={"goldenpath.keep": "true"}),
        container("never-started", state="created", created=ago(days=2)),
        container("dead", state="dead", created=ago(days=3)),
    ]
    plan = plan_clean(usage(containers=containers), Policy(threshold_bytes=10**9, containers=True), NOW)
    assert names(plan, "container") == ["dead", "never-started"]
    assert set(kept(plan)) == {"young", "finished-lately", "pinned"}


# --------------------------------------------------------------------------- volumes

def test_only_unused_anonymous_volumes_and_only_with_the_flag() -> None:
    labelled_anonymous = "named-but-labelled"
    volumes = [
        volume(HEX, size=11),
        volume("cd" * 32, containers=("live",)),
        volume("ef" * 32, ref_count=1),  # used by something we did not see: a service, another tool
        volume("app-data"),
        volume(labelled_anonymous, labels={"com.docker.volume.anonymous": ""}, size=5),
        volume("01" * 32, created=ago(minutes=1)),
        volume("23" * 32, labels={"goldenpath.keep": "true"}),
    ]
    live = container("live", state="running", volumes=("cd" * 32,))
    now_used = usage(containers=[live], volumes=volumes)
    off = plan_clean(now_used, Policy(threshold_bytes=10**9), NOW)
    assert names(off, "volume") == []
    on = plan_clean(now_used, Policy(threshold_bytes=10**9, volumes=True), NOW)
    assert names(on, "volume") == [HEX, labelled_anonymous]
    assert [v.bytes for v in on.victims] == [11, 5]
    assert set(kept(on)) == {"01" * 32, "23" * 32}
    assert any("1 unused named volume(s) left alone" in note for note in on.notes)


def test_a_volume_goes_with_its_last_removed_container() -> None:
    volumes = [volume(HEX, containers=("c",))]
    stopped = container("c", volumes=(HEX,))
    only_volumes = plan_clean(usage(containers=[stopped], volumes=volumes),
                              Policy(threshold_bytes=10**9, volumes=True), NOW)
    assert only_volumes.victims == []
    both = plan_clean(usage(containers=[stopped], volumes=volumes),
                      Policy(threshold_bytes=10**9, volumes=True, containers=True), NOW)
    assert [(v.kind, v.name) for v in both.victims] == [("container", "c"), ("volume", HEX)]


# --------------------------------------------------------------------------- build cache

def test_build_cache_down_to_its_bound() -> None:
    cache = BuildCacheInfo(records=4, total_bytes=1000, reclaimable_bytes=700)

    def plan(keep: int | None) -> CleanPlan:
        policy = Policy(threshold_bytes=10**9, build_cache_keep_bytes=keep)
        return plan_clean(usage(build_cache=cache), policy, NOW)

    assert plan(None).victims == []
    assert [(v.kind, v.bytes) for v in plan(600).victims] == [("build cache", 400)]
    # Only unused records can go, whatever the bound.
    assert plan(0).total_bytes == 700
    assert plan(2000).victims == []


def test_build_cache_is_left_out_under_a_label_filter() -> None:
    plan = plan_clean(usage(build_cache=None), Policy(threshold_bytes=10**9, build_cache_keep_bytes=0), NOW)
    assert plan.victims == []
    assert any("build cache not pruned" in note for note in plan.notes)


# --------------------------------------------------------------------------- policy input

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"high_percent": 80, "low_percent": 85}, "low < high"),
    ({"high_percent": 101}, "<= 100"),
    ({"threshold_bytes": -1}, "threshold cannot be negative"),
    ({"min_age": timedelta(seconds=-1)}, "minimum age cannot be negative"),
    ({"keep": ("([",)}, "bad keep regex"),
    ({"keep_label": "=true"}, "bad keep label"),
    ({"only_label": "=x"}, "bad label filter"),
    ({"build_cache_keep_bytes": -5}, "build cache bound"),
])
def test_bad_policies_say_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy(**kwargs)  # type: ignore[arg-type]


def test_policy_from_command_line_strings() -> None:
    policy = policy_from_options(threshold="1.5GiB", min_age="2d", keep="^prod/", build_cache_keep="500MB",
                                 containers=True)
    assert policy.mode == "threshold"
    assert policy.threshold_bytes == 1610612736
    assert policy.min_age == timedelta(days=2)
    assert policy.keep == ("^prod/",)
    assert policy.build_cache_keep_bytes == 500_000_000
    assert policy_from_options(high=90, low=70).mode == "watermarks"
    assert policy_from_options(keep=["a", "", "b"]).keep == ("a", "b")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"threshold": "10XB"}, "bad size '10XB'"),
    ({"threshold": "10GB", "high": 90}, "not both"),
    ({"min_age": "soon"}, "bad age 'soon'"),
    ({"build_cache_keep": "-1GB"}, "bad size"),
])
def test_bad_options_say_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        policy_from_options(**kwargs)  # type: ignore[arg-type]


def test_the_clock_must_be_timezone_aware() -> None:
    with pytest.raises(PolicyError, match="timezone-aware"):
        plan_clean(usage(FOUR), Policy(threshold_bytes=0), datetime(2030, 1, 1))
