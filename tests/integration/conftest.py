"""One healthy refstack per backend for the whole session; fault tests start their own."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from goldenpath.testkit.support import service_missing, services_required

from .services import OwnRedis, RealServices, provisioned
from .stacks import launched
from .wire import Target

# "services" is PostgreSQL + Redis + ClickHouse, whichever of them the environment provides.
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("services", id="services", marks=pytest.mark.real_services),
]


@pytest.fixture(scope="session")
def real_services() -> Iterator[RealServices]:
    with provisioned() as services:
        # On a laptop, whatever is there is used; where services are required, each one is.
        if services.missing and (services_required() or not services.env()):
            service_missing(", ".join(services.missing), "; ".join(services.missing.values()))
        yield services


@pytest.fixture(scope="session")
def services_target(
    real_services: RealServices, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """The stack on real services, for the whole session: also what target["services"] is."""
    with launched(tmp_path_factory.mktemp("refstack-services"), env=real_services.env()) as running:
        yield running


@pytest.fixture(scope="session", params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    if request.param == "services":
        # Shared with the real-service-only tests, so the stack starts once per session.
        yield request.getfixturevalue("services_target")
        return
    with launched(tmp_path_factory.mktemp("refstack-sqlite")) as running:
        yield running


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """Where a test's own short-lived refstack keeps its SQLite file and log."""
    return tmp_path / "refstack"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("redis-server", "the binary is not installed")
    redis = OwnRedis(str(binary), tmp_path)
    redis.start()
    yield redis
    redis.stop()
