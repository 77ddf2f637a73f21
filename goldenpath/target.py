"""Make sure a layer's target answers: use it, or start the reference stack on loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from goldenpath import stack
from goldenpath.config import Settings
from goldenpath.probes import http_get, is_loopback


def health_urls(settings: Settings) -> tuple[str, ...]:
    return (f"{settings.backend_url}/health", f"{settings.auth_service_url}/health")


def target_answers(settings: Settings) -> bool:
    return all(_answers(url, settings.timeout_s) for url in health_urls(settings))


def _answers(url: str, timeout_s: float) -> bool:
    answer = http_get(url, timeout_s)
    return answer is not None and answer.status == 200


@contextmanager
def ensure_target(
    settings: Settings,
    *,
    python: str = sys.executable,
    spec: stack.StackSpec | None = None,
) -> Iterator[stack.RunningStack | None]:
    """Yield the started stack, or None when the profile's target already answers.

    Only a loopback target is ever started: a remote URL that does not answer is a
    real finding about that environment, not something to paper over.
    """
    if target_answers(settings):
        yield None
        return
    urls = (settings.backend_url, settings.auth_service_url)
    remote = [url for url in urls if not is_loopback(url)]
    if remote:
        raise stack.StackError(
            f"target {remote[0]} does not answer /health; it is not on loopback, so the "
            "reference stack is not started for it: check the URL and that it is up"
        )
    if not settings.autostart:
        raise stack.StackError(
            f"target {settings.backend_url} does not answer and GOLDENPATH_AUTOSTART=0; "
            "start it (invoke stack.up) or unset GOLDENPATH_AUTOSTART"
        )
    with stack.running(spec or stack.refstack_spec(settings, python=python)) as started:
        yield started
