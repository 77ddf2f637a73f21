"""Make sure a layer's target answers: use it, or start the reference stack on loopback."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from goldenpath.core import stack
from goldenpath.core.errors import StackError
from goldenpath.core.http import answers_ok, health_url, is_loopback
from goldenpath.core.settings import Settings

# Secrets a stack we start ourselves needs, and the tests need to talk to it. Made up for
# each start when the profile has none, so nothing secret is ever committed or reused.
LOCAL_SECRETS = ("E2E_OAUTH_SIMULATION_KEY", "JWT_SECRET_KEY")


@dataclass(frozen=True)
class Target:
    """What a layer's tests talk to: the settings to use, and the stack we started, if any."""

    settings: Settings
    started: stack.RunningStack | None = None


def health_urls(settings: Settings) -> tuple[str, ...]:
    return (health_url(settings.backend_url), health_url(settings.auth_service_url))


def target_answers(settings: Settings) -> bool:
    return all(answers_ok(url, settings.timeout_s) for url in health_urls(settings))


def with_local_secrets(settings: Settings) -> Settings:
    made = {key: secrets.token_urlsafe(32) for key in LOCAL_SECRETS if not settings.get(key)}
    return settings.with_values(made, "generated for this run") if made else settings


@contextmanager
def ensure_target(
    settings: Settings,
    *,
    python: str = sys.executable,
    spec: stack.StackSpec | None = None,
) -> Iterator[Target]:
    """The profile's target as it is when it answers; else the reference stack, started.

    Only a loopback target is ever started: a remote URL that does not answer is a
    real finding about that environment, not something to paper over.
    """
    if target_answers(settings):
        yield Target(settings)
        return
    urls = (settings.backend_url, settings.auth_service_url)
    remote = [url for url in urls if not is_loopback(url)]
    if remote:
        raise StackError(
            f"target {remote[0]} does not answer /health; it is not on loopback, so the "
            "reference stack is not started for it: check the URL and that it is up"
        )
    if not settings.autostart:
        raise StackError(
            f"target {settings.backend_url} does not answer and GOLDENPATH_AUTOSTART=0; "
            "start it (invoke stack.up) or unset GOLDENPATH_AUTOSTART"
        )
    settings = with_local_secrets(settings)
    with stack.running(spec or stack.refstack_spec(settings, python=python)) as started:
        yield Target(settings, started)
