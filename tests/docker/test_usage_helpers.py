"""Sizes, ages, engine timestamps, label specs and where the disk is: no engine needed."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest

from goldenpath.hygiene.model import format_age, format_size, label_matches, parse_age, parse_size
from goldenpath.hygiene.usage import disk_at, parse_time


@pytest.mark.parametrize(("text", "size"), [
    ("10GB", 10_000_000_000),
    ("500MB", 500_000_000),
    ("1.5GiB", 1_610_612_736),
    ("2048", 2048),
    ("0", 0),
    ("64kB", 64_000),
    ("3 MiB", 3 * 1024 * 1024),
    ("10g", 10_000_000_000),
    ("1TB", 10**12),
])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GB", "10XB", "-1GB", "1e9", "ten GB", "1.2.3MB", "10 G B"])
def test_bad_sizes_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"bad size .*such as 500MB, 10GB or 1\.5GiB"):
        parse_size(text)


@pytest.mark.parametrize(("text", "age"), [
    ("90s", timedelta(seconds=90)),
    ("30m", timedelta(minutes=30)),
    ("1h30m", timedelta(minutes=90)),
    ("2d", timedelta(days=2)),
    ("1w", timedelta(days=7)),
    ("0", timedelta(0)),
])
def test_ages(text: str, age: timedelta) -> None:
    assert parse_age(text) == age


@pytest.mark.parametrize("text", ["", "soon", "5", "1y", "-1h", "1h soon"])
def test_bad_ages(text: str) -> None:
    with pytest.raises(ValueError, match="bad age"):
        parse_age(text)


def test_formatting() -> None:
    sizes = (0, 999, 80_000, 1_500_000, 10**13)
    assert [format_size(n) for n in sizes] == ["0B", "999B", "80kB", "1.5MB", "10TB"]
    assert [format_age(timedelta(seconds=s)) for s in (0, 40, 750, 7200, 273_900)] == [
        "0s", "40s", "12m30s", "2h", "3d4h"]


def test_engine_timestamps() -> None:
    assert parse_time("2026-11-24T23:11:37.872652139Z") == datetime(2026, 11, 24, 23, 11, 37, 872652, UTC)
    assert parse_time("0001-01-01T00:00:00Z") is None  # the engine's "never started"
    assert parse_time(1_795_561_897) == datetime.fromtimestamp(1_795_561_897, UTC)
    assert parse_time("") is None
    assert parse_time(None) is None


def test_label_specs() -> None:
    assert label_matches({"goldenpath.keep": "true"}, "goldenpath.keep=true")
    assert not label_matches({"goldenpath.keep": "false"}, "goldenpath.keep=true")
    assert label_matches({"goldenpath.keep": "false"}, "goldenpath.keep")
    assert not label_matches(None, "goldenpath.keep")


def test_a_remote_engines_disk_is_not_guessed() -> None:
    disk, problem = disk_at("/", "tcp://build-box.example:2376", "build-box")
    assert disk is None
    assert problem == ("/ is on the engine's machine (tcp://build-box.example:2376), "
                       "not visible from this process")


def test_an_engine_on_another_host_name_is_not_guessed() -> None:
    disk, problem = disk_at("/", "unix:///var/run/docker.sock", "docker-desktop-vm-not-this-host")
    assert disk is None
    assert "the engine runs on 'docker-desktop-vm-not-this-host'" in problem


def test_a_missing_root_dir_is_said() -> None:
    disk, problem = disk_at("/nonexistent/docker", "unix:///var/run/docker.sock", socket.gethostname())
    assert disk is None
    assert problem == "/nonexistent/docker is not visible from this process (No such file or directory)"


def test_a_local_root_dir_is_measured() -> None:
    disk, problem = disk_at("/", "unix:///var/run/docker.sock", socket.gethostname())
    assert problem == ""
    assert disk is not None
    assert disk.total_bytes >= disk.available_bytes > 0
