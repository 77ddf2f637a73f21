"""A realistic broken application repository, generated: what goldenpath meets in the wild.

Hundreds of test files under the application's own pytest configuration (``--maxfail=10
--cache-clear`` in addopts, unregistered markers, a conftest that prints), a missing
third-party package behind a shared factories module that breaks most of them, a shared
helper with a syntax error, names renamed in git history, env files in two places that
disagree about the auth port and three compose files with interpolated port mappings.

Used by tests/integration/test_app_repository.py and bench/collect_audit.py. Every number
the tests assert is a constant here.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent

MISSING_PACKAGE = "factory"  # factory_boy: the tests need it, nobody installed it
FACTORY_FILES = 240  # test files that import it through chatapp.testing.factories
STREAMING_FILES = 12  # test files that import the helper with a syntax error
LEGACY_CLIENT_FILES = 6  # `from chatapp.clients import LegacyHTTPClient` (now LegacyHttpClient)
TOKEN_FILES = 4  # `from chatapp.auth.tokens import make_access_token` (now create_access_token)
EMITTER_FILES = 3  # `UserWebSocketEmitter`, in goldenpath's hand-written rename map
MARKED_FILES = 5  # use @pytest.mark.integration_db, which nobody registered
GOOD_FILES = 60  # files that collect, three tests each
TESTS_PER_GOOD_FILE = 3
ERRORS = FACTORY_FILES + STREAMING_FILES + LEGACY_CLIENT_FILES + TOKEN_FILES + EMITTER_FILES
TEST_FILES = ERRORS + MARKED_FILES + GOOD_FILES
COLLECTED = (GOOD_FILES + MARKED_FILES) * TESTS_PER_GOOD_FILE
AREAS = ("api", "auth", "billing", "chat", "threads", "websocket", "agents", "admin")

PYPROJECT = """\
[project]
name = "chatapp"
version = "2.4.0"
requires-python = ">=3.11"
dependencies = ["starlette>=0.40", "httpx>=0.27"]

[tool.pytest.ini_options]
minversion = "8.0"
pythonpath = ["src", "."]
testpaths = ["tests"]
addopts = "-ra --maxfail=10 --cache-clear"
markers = ["slow: takes a while"]
"""

REQUIREMENTS_DEV = """\
# what CI installs for the test suite
-r requirements.txt
pytest>=8.3,<10
pytest-asyncio==0.24.0
factory-boy==3.3.1
"""

CLIENTS_OLD = '''\
"""HTTP clients of the platform's services."""


class LegacyHTTPClient:
    """The pre-2.0 client, kept for the admin tools."""


class StreamingClient:
    """Server-sent events."""
'''

TOKENS_OLD = '''\
"""Access tokens."""


def make_access_token(user_id: str) -> str:
    return f"token-{user_id}"


def verify_access_token(token: str) -> bool:
    return token.startswith("token-")
'''

EMITTER = '''\
"""Events to the browser."""


class UnifiedWebSocketEmitter:
    """One emitter for every channel."""
'''

FACTORIES = '''\
"""Test data factories shared by the suite."""

import factory

from chatapp.clients import StreamingClient


class UserFactory(factory.Factory):
    class Meta:
        model = dict
'''

STREAMING_HELPER = '''\
"""Assertions over a streamed answer, shared by the streaming tests."""


def assert_stream_complete(events):
    expected = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
    assert [e["type"] for e in events] == expected


def collect_stream(socket, timeout=5.0:
    return list(socket)
'''

CONFTEST = '''\
import pytest

# The team's own diagnostics, printed at import: what goldenpath used to show instead
# of pytest's real reason.
print("chatapp test configuration loaded (ENVIRONMENT=test)")


@pytest.fixture
def api_base_url():
    return "http://localhost:8000"
'''

GOOD_TEST = '''\
import pytest


def test_{area}_{n}_answers(api_base_url):
    assert api_base_url.startswith("http")


def test_{area}_{n}_parses():
    assert int("{n}") == {n}


@pytest.mark.slow
def test_{area}_{n}_slow():
    assert True
'''

MARKED_TEST = '''\
import pytest


@pytest.mark.integration_db
def test_{area}_{n}_stores(api_base_url):
    assert api_base_url


@pytest.mark.integration_db
def test_{area}_{n}_reads():
    assert True


def test_{area}_{n}_plain():
    assert True
'''

ENV_FILES = {
    # The developers' own settings: keys goldenpath does not know are theirs.
    ".env": "ENVIRONMENT=development\nNODE_ENV=development\nAUTH_PORT=8081\n"
            "NEXT_PUBLIC_AUTH_URL=http://localhost:8081\nBACKEND_URL=http://localhost:8000\n",
    # A template nobody updated.
    ".env.example": "# copy to .env\nAUTH_SERVICE_PORT=8001\nBACKEND_URL=http://localhost:8000\n",
    "config/dev.env": "ENVIRONMENT=dev\nDEV_AUTH_PORT=8083\nFRONTEND_AUTH_SERVICE_URL=http://localhost:8083\n"
                      "this line is not an assignment\n",
    "config/docker.env": "AUTH_SERVICE_URL=http://dev-auth:8081\nSECRET_KEY=not-a-real-secret\n",
}

COMPOSE_FILES = {
    "docker-compose.yml": """\
services:
  dev-auth:
    image: chatapp/auth:2.4
    ports:
      - "${DEV_AUTH_PORT:-8081}:8081"
  backend:
    image: chatapp/backend:2.4
    ports:
      - "${BACKEND_PORT-8000}:8000"
    environment:
      - AUTH_SERVICE_URL=http://dev-auth:8081
      - NODE_ENV=production
""",
    "docker-compose.override.yml": """\
services:
  dev-auth:
    ports:
      - target: 8081
        published: "${AUTH_PORT}"
        protocol: tcp
""",
    "docker/compose.test.yml": """\
x-common: &common
  restart: "no"
services:
  auth-test:
    <<: *common
    image: chatapp/auth:2.4
    ports: ["127.0.0.1:${TEST_AUTH_PORT:-8091}:8081"]
  backend:
    <<: *common
    environment:
      AUTH_SERVICE_URL: http://auth-test:8082
      BACKEND_URL: "http://backend:${BACKEND_PORT:-8000}"
""",
}


@dataclass(frozen=True)
class AppRepo:
    root: Path
    git: bool


def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _git(root: Path, *args: str) -> None:
    git = shutil.which("git") or "git"
    subprocess.run([git, "-C", str(root), *args], check=True, capture_output=True, timeout=60,
                   env={"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
                        "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
                        "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(root)})


def build(root: Path) -> AppRepo:
    """Write the repository under root; with git, the renames are commits of their own."""
    _write(root, "pyproject.toml", PYPROJECT)
    _write(root, "requirements.txt", "starlette>=0.40\nhttpx>=0.27\n")
    _write(root, "requirements-dev.txt", REQUIREMENTS_DEV)
    _write(root, "src/chatapp/__init__.py", '"""chatapp."""\n')
    _write(root, "src/chatapp/auth/__init__.py", "")
    _write(root, "src/chatapp/clients.py", CLIENTS_OLD)
    _write(root, "src/chatapp/auth/tokens.py", TOKENS_OLD)
    _write(root, "src/chatapp/events.py", EMITTER)
    _write(root, "src/chatapp/testing/__init__.py", "")
    _write(root, "src/chatapp/testing/factories.py", FACTORIES)
    _write(root, "tests/__init__.py", "")
    _write(root, "tests/conftest.py", CONFTEST)
    _write(root, "tests/helpers/__init__.py", "")
    _write(root, "tests/helpers/streaming.py", STREAMING_HELPER)
    for name, text in {**ENV_FILES, **COMPOSE_FILES}.items():
        _write(root, name, text)
    _write_tests(root)
    git = shutil.which("git") is not None
    if git:
        _git(root, "init", "-q", "-b", "main")
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", "chatapp 2.3")
    # The renames of 2.4: the tests were not updated.
    clients = (root / "src/chatapp/clients.py")
    clients.write_text(CLIENTS_OLD.replace("LegacyHTTPClient", "LegacyHttpClient"), encoding="utf-8")
    tokens = root / "src/chatapp/auth/tokens.py"
    tokens.write_text(TOKENS_OLD.replace("make_access_token", "create_access_token"), encoding="utf-8")
    if git:
        _git(root, "commit", "-q", "-am", "Rename LegacyHTTPClient to LegacyHttpClient, "
                                         "make_access_token to create_access_token")
    return AppRepo(root, git)


def _write_tests(root: Path) -> None:
    def area(n: int) -> str:
        return AREAS[n % len(AREAS)]

    for n in range(FACTORY_FILES):
        _write(root, f"tests/{area(n)}/test_factory_{n:03d}.py", dedent(f"""\
            from chatapp.testing.factories import UserFactory


            def test_user_{n}():
                assert UserFactory
            """))
    for n in range(STREAMING_FILES):
        _write(root, f"tests/streaming/test_stream_{n:02d}.py", dedent(f"""\
            from tests.helpers.streaming import assert_stream_complete


            def test_stream_{n}():
                assert_stream_complete([])
            """))
    imports = ([("chatapp.clients", "LegacyHTTPClient", "admin")] * LEGACY_CLIENT_FILES
               + [("chatapp.auth.tokens", "make_access_token", "auth")] * TOKEN_FILES
               + [("chatapp.events", "UserWebSocketEmitter", "websocket")] * EMITTER_FILES)
    for n, (module, name, folder) in enumerate(imports):
        _write(root, f"tests/{folder}/test_renamed_{n:02d}.py",
               f"from {module} import {name}\n\n\ndef test_renamed_{n}():\n    assert {name}\n")
    for n in range(MARKED_FILES):
        _write(root, f"tests/db/test_db_{n:02d}.py", MARKED_TEST.format(area="db", n=n))
    for n in range(GOOD_FILES):
        _write(root, f"tests/{area(n)}/test_good_{n:03d}.py", GOOD_TEST.format(area=area(n), n=n))
    for folder in {*AREAS, "streaming", "db"}:
        init = root / "tests" / folder / "__init__.py"
        if (root / "tests" / folder).is_dir():
            init.write_text("", encoding="utf-8")
