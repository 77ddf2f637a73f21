"""The real docker engine, and test objects that cannot be confused with anyone else's.

Every object a test creates carries two labels: ``goldenpath.test=<session>`` (the session
sweep removes all of them at the end) and ``goldenpath.case=<session>-<n>`` (the planner in
that one test sees only its own objects, through ``only_label``). Names start ``gp-test-``.
Images come from ``docker import`` of small tarballs written here: there is no registry.
"""

from __future__ import annotations

import io
import itertools
import os
import secrets
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from goldenpath.core.errors import DockerError
from goldenpath.hygiene.usage import connect
from goldenpath.testkit.support import service_missing

SESSION = secrets.token_hex(4)
SESSION_LABEL = "goldenpath.test"
CASE_LABEL = "goldenpath.case"
_cases = itertools.count(1)


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    try:
        client = connect(timeout_s=30)
    except DockerError as exc:
        service_missing("docker engine", str(exc))
    try:
        yield client
    finally:
        sweep(client, f"{SESSION_LABEL}={SESSION}")
        client.close()


def sweep(client: Any, label: str) -> None:
    """Remove everything carrying label: containers first, since they pin images and volumes."""
    api = client.api
    for container in api.containers(all=True, filters={"label": label}):
        _gone(api.remove_container, container["Id"], force=True)
    for image in api.images(all=True, filters={"label": label}):
        _gone(api.remove_image, image["Id"], force=True)
    for volume in (api.volumes(filters={"label": label}) or {}).get("Volumes") or []:
        _gone(api.remove_volume, volume["Name"], force=True)


def _gone(remove: Any, *args: Any, **kwargs: Any) -> None:
    try:
        remove(*args, **kwargs)
    except docker.errors.NotFound:
        return  # a test removed it already, which is what it was testing


class Case:
    """One test's objects on the real engine."""

    def __init__(self, client: Any, workdir: Path) -> None:
        self.client = client
        self.workdir = workdir
        self.key = f"{SESSION}-{next(_cases)}"
        self.label = f"{CASE_LABEL}={self.key}"
        self.labels = {SESSION_LABEL: SESSION, CASE_LABEL: self.key}
        self._serial = itertools.count(1)

    def name(self, what: str) -> str:
        return f"gp-test-{self.key}-{what}"

    def layer(self, what: str, size: int) -> Path:
        """A tarball of size bytes of random data in two files: no other image shares it."""
        tarball = self.workdir / f"{what}-{next(self._serial)}.tar"
        with tarfile.open(tarball, "w") as archive:
            for index, part in enumerate((size // 2, size - size // 2)):
                member = tarfile.TarInfo(f"data/{what}-{index}.bin")
                member.size = part
                archive.addfile(member, io.BytesIO(os.urandom(part)))
        return tarball

    def image(self, what: str, size: int = 10_000, *, tag: str | None = "v1",
              labels: dict[str, str] | None = None, layer: Path | None = None) -> str:
        """`docker import` a one-layer image (tag=None: dangling); its id."""
        tarball = layer or self.layer(what, size)
        changes = [f'LABEL {k}="{v}"' for k, v in {**self.labels, **(labels or {})}.items()]
        changes.append('CMD ["/nothing"]')
        answer = self.client.api.import_image(src=str(tarball), repository=self.name(what) if tag else None,
                                              tag=tag, changes=changes)
        return _status(answer)

    def tag(self, image_id: str, what: str, tag: str) -> None:
        self.client.api.tag(image_id, self.name(what), tag)

    def container(self, image: str, what: str, **kwargs: Any) -> str:
        """Created, never started: there is no network and nothing to run."""
        created = self.client.containers.create(image, command="/nothing", name=self.name(what),
                                                labels=self.labels, **kwargs)
        return str(created.id)

    def volume(self, name: str | None = None) -> str:
        """An anonymous-looking volume (64 hex digits) unless a name is given."""
        volume = self.client.volumes.create(name=name or secrets.token_hex(32), labels=self.labels)
        return str(volume.name)

    def snapshot(self) -> dict[str, list[str]]:
        """This case's objects, as comparable lists (ids with their tags, names)."""
        api = self.client.api
        images = sorted(f"{i['Id']} {sorted(i.get('RepoTags') or [])}"
                        for i in api.images(all=True, filters={"label": self.label}))
        containers = sorted(f"{c['Id']} {c['Names']} {c['State']}"
                            for c in api.containers(all=True, filters={"label": self.label}))
        volumes = sorted(v["Name"] for v in (api.volumes(filters={"label": self.label}) or {})
                         .get("Volumes") or [])
        return {"images": images, "containers": containers, "volumes": volumes}

    def image_ids(self) -> set[str]:
        return {i["Id"] for i in self.client.api.images(all=True, filters={"label": self.label})}

    def container_ids(self) -> set[str]:
        return {c["Id"] for c in self.client.api.containers(all=True, filters={"label": self.label})}

    def volume_names(self) -> set[str]:
        found = self.client.api.volumes(filters={"label": self.label}) or {}
        return {v["Name"] for v in found.get("Volumes") or []}


def _status(answer: Any) -> str:
    """import_image answers a JSON line (or lines) whose last status is the new image id."""
    text = answer if isinstance(answer, str) else str(answer)
    ids = [part for part in text.replace('"', " ").split() if part.startswith("sha256:")]
    if not ids:
        raise AssertionError(f"docker import gave no image id: {text!r}")
    return ids[-1]


@pytest.fixture
def case(engine: Any, tmp_path: Path) -> Iterator[Case]:
    made = Case(engine, tmp_path)
    yield made
    sweep(engine, made.label)
