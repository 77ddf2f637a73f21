"""Make sure a layer's target answers: use it, or start the reference stack on loopback.

The reference stack is started only for the profile's own declared embedded target:
GOLDENPATH_AUTOSTART true, declared in the same place (the profile file, .env, the process
environment, or the built-in defaults) as BACKEND_URL and AUTH_SERVICE_URL. A URL that
comes from elsewhere names something the user means to test (their own app, a typo'd
port): nothing answering there is a finding, never a reason to test refstack instead.
"""

from __future__ import annotations

import os
import secrets
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from goldenpath.core import stack
from goldenpath.core.errors import ConfigError, StackError
from goldenpath.core.http import answers_ok, health_url, is_loopback
from goldenpath.core.masking import mask_url
from goldenpath.core.settings import Settings, read_env_file

# Secrets a stack we start ourselves needs, and the tests need to talk to it. Made up for
# each start when the profile has none, so nothing secret is ever committed or reused.
LOCAL_SECRETS = ("E2E_OAUTH_SIMULATION_KEY", "JWT_SECRET_KEY")
# What a stack of ours declares it issues, when the profile does not say: with them set, the
# e2e layer's issuer and audience checks run against the embedded stack too.
LOCAL_CLAIMS = {"JWT_ISSUER": "goldenpath-embedded", "JWT_AUDIENCE": "goldenpath-embedded-users"}
TARGET_URLS = ("BACKEND_URL", "AUTH_SERVICE_URL")
AUTOSTART = "GOLDENPATH_AUTOSTART"


@dataclass(frozen=True)
class Target:
    """What a layer's tests talk to: the settings to use, and the stack we started, if any.

    ``secrets_from`` is the `invoke stack.up` secrets file the settings took keys from.
    """

    settings: Settings
    started: stack.RunningStack | None = None
    secrets_from: Path | None = None


def health_urls(settings: Settings) -> tuple[str, ...]:
    return (health_url(settings.backend_url), health_url(settings.auth_service_url))


def silent_urls(settings: Settings) -> list[str]:
    """The target's base URLs whose /health does not answer 200."""
    return [url for url in (settings.backend_url, settings.auth_service_url)
            if not answers_ok(health_url(url), settings.timeout_s)]


def target_answers(settings: Settings) -> bool:
    return not silent_urls(settings)


def local_secrets(settings: Settings) -> dict[str, str]:
    """Made-up values for the secrets a stack of ours needs and the profile does not give,
    and the token claims it declares."""
    made = {key: secrets.token_urlsafe(32) for key in LOCAL_SECRETS if not settings.get(key)}
    return made | {key: value for key, value in LOCAL_CLAIMS.items() if not settings.get(key)}


def with_local_secrets(settings: Settings) -> Settings:
    made = local_secrets(settings)
    return settings.with_values(made, "generated for this run") if made else settings


def unconfigured(settings: Settings) -> list[str]:
    """Target URLs nobody declared: they are the built-in loopback defaults."""
    return [name for name in TARGET_URLS if settings.origins[name].source == "default"]


def autostart_refusal(settings: Settings, silent: str, *, layer_autostart: bool = True,
                      layer: str = "this") -> str | None:
    """Why the reference stack is not started for a target that does not answer, or None."""
    remote = [url for url in (settings.backend_url, settings.auth_service_url) if not is_loopback(url)]
    if remote:
        return (f"target {mask_url(remote[0])} does not answer /health; it is not on loopback, so "
                "the reference stack is not started for it: check the URL and that it is up")
    if not layer_autostart:
        return (f"target {mask_url(silent)} does not answer /health, and the {layer} layer never "
                "starts the reference stack: start the target, or fix BACKEND_URL / AUTH_SERVICE_URL")
    if not settings.autostart:
        return (f"target {mask_url(silent)} does not answer and {AUTOSTART}=0; start it "
                f"(invoke stack.up), or set {AUTOSTART}=1 beside the URL to have it started there")
    declared = settings.origins[AUTOSTART].source
    for name in TARGET_URLS:
        origin = settings.origins[name]
        if origin.source != declared:
            return (f"nothing answers at {mask_url(silent)} ({name} from {origin}), and goldenpath "
                    "starts the reference stack only for the profile's own embedded target "
                    f"(envs/{settings.profile}.env); set {AUTOSTART}=1 beside the URL to have it "
                    "started there")
    return None


def stack_up_secrets(settings: Settings, spec: stack.StackSpec | None = None) -> tuple[Settings, Path | None]:
    """The secrets `invoke stack.up` made up, when the target is the stack it started.

    Taken only when the file names this very target and that stack still runs from its pid
    file; only keys the profile leaves unset are filled in (the stack was started with the
    profile's own values otherwise).
    """
    spec = spec or stack.refstack_spec(settings, state_dir=settings.stack_dir)
    path = spec.secrets_path
    if not path.is_file():
        return settings, None
    _refuse_readable_by_others(path)
    try:
        entries = {key: value for key, (value, _) in read_env_file(path, str(path)).items()}
    except ConfigError as exc:
        raise StackError(f"{exc}; remove it (invoke stack.down) and start the stack again") from None
    serves = tuple(entries.get(name, "").rstrip("/") for name in TARGET_URLS)
    if serves != (settings.backend_url, settings.auth_service_url) or stack.find_running(spec) is None:
        return settings, None
    found = {key: entries[key] for key in (*LOCAL_SECRETS, *LOCAL_CLAIMS)
             if entries.get(key) and not settings.get(key)}
    if not found:
        return settings, None
    return settings.with_values(found, f"{path} (invoke stack.up)"), path


def _refuse_readable_by_others(path: Path) -> None:
    info = path.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise StackError(f"{path} holds secrets but is not private to you (mode "
                         f"{stat.S_IMODE(info.st_mode):o}); remove it and run `invoke stack.up` again")


def check_target(settings: Settings, *, layer_autostart: bool = True, layer: str = "this") -> list[str]:
    """The target's silent URLs, when the reference stack may be started for them; else
    StackError in one line. Cheap enough to call before a session installs anything.

    ``layer_autostart`` false (the staging layer): the target must be configured (its URLs
    not the built-in defaults) and is never started. Only a loopback target is ever
    started: a remote URL that does not answer is a real finding about that environment.
    """
    if not layer_autostart and unconfigured(settings):
        raise StackError(f"no {layer} configured: set {' and '.join(TARGET_URLS)} in "
                         f"envs/{settings.profile}.env or the environment")
    silent = silent_urls(settings)
    if silent:
        refusal = autostart_refusal(settings, silent[0], layer_autostart=layer_autostart, layer=layer)
        if refusal:
            raise StackError(refusal)
    return silent


@contextmanager
def ensure_target(
    settings: Settings,
    *,
    python: str = sys.executable,
    spec: stack.StackSpec | None = None,
    layer_autostart: bool = True,
    layer: str = "this",
) -> Iterator[Target]:
    """The profile's target as it is when it answers; else the reference stack, started
    for the block and tied to this process (see check_target for when it is not)."""
    if not check_target(settings, layer_autostart=layer_autostart, layer=layer):
        used, secrets_from = stack_up_secrets(settings)
        yield Target(used, secrets_from=secrets_from)
        return
    settings = with_local_secrets(settings)
    default_spec = stack.refstack_spec(settings, python=python, state_dir=session_stack_dir(settings))
    with stack.running(spec or default_spec) as started:
        yield Target(settings, started)


def session_stack_dir(settings: Settings) -> Path:
    """A run's own stack lives apart from `invoke stack.up`'s, so neither's pid file,
    log or secrets are mistaken for the other's (`stack.down` never stops a run's stack)."""
    return settings.stack_dir / "runs" / (settings.layer or "layer")
