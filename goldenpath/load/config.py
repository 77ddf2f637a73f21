"""The load runner's flags: parsed and checked before any connection is opened.

Every problem is a ``ConfigError`` with one line saying what is wrong and what to do; the
command line turns it into exit 2. Durations need a unit (``500ms``, ``0.5s``, ``2m``), a rate
is ``R/s`` (or ``R/m``); the hard caps (GOLDENPATH_LOAD_MAX_USERS, _MAX_DURATION_S) hold
whatever else is set, and load beyond SLA_CONCURRENT_USERS needs LOAD_ALLOWED.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from goldenpath.core.errors import ConfigError
from goldenpath.core.http import is_loopback
from goldenpath.core.settings import Settings

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_RATE = re.compile(r"(\d+(?:\.\d+)?)/(s|m)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DEFAULT_DURATION = "60s"
DEFAULT_RAMP = "100/s"


@dataclass(frozen=True)
class LoadPlan:
    """What one load run does; bounded in users, messages and time."""

    users: int
    messages: int
    ramp_per_s: float  # users started per second; 0 = all at once
    think_s: float
    duration_s: float
    sockets_per_user: int = 1
    # Hold every user back until all are connected, so the whole crowd is connected at once
    # (a cross-talk that needs N users connected appears only then).
    together: bool = False
    pid: int | None = None  # the target's process, when known (memory is read from it)
    report_name: str = "load"

    @property
    def planned_runs(self) -> int:
        return self.users * self.messages

    def as_dict(self) -> dict[str, object]:
        return {"users": self.users, "messages": self.messages, "ramp_per_s": self.ramp_per_s,
                "think_s": self.think_s, "duration_s": self.duration_s,
                "sockets_per_user": self.sockets_per_user, "together": self.together,
                "planned_runs": self.planned_runs}  # fmt: skip


def parse_duration(flag: str, raw: str) -> float:
    """'500ms', '0.5s', '2m', '1h' -> seconds; a bare number is refused (which unit was meant?)."""
    match = _DURATION.fullmatch(raw.strip())
    if match is None:
        hint = f" (did you mean {raw.strip()}s?)" if re.fullmatch(r"\d+(?:\.\d+)?", raw.strip()) else ""
        raise ConfigError(f"--{flag} {raw!r} needs a unit: ms, s, m or h, e.g. 30s{hint}")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def parse_rate(flag: str, raw: str) -> float:
    """'50/s' or '600/m' -> per second; '0' means no ramp (everyone at once)."""
    text = raw.strip()
    if text in ("0", "0/s", "0/m"):
        return 0.0
    match = _RATE.fullmatch(text)
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"--{flag} {raw!r} is not a rate: give users per second like 50/s "
                          "(or 0 for all at once)")
    per = 1.0 if match.group(2) == "s" else 60.0
    return float(match.group(1)) / per


def _whole(flag: str, raw: str) -> int:
    text = raw.strip()
    if not re.fullmatch(r"-?\d+", text):
        raise ConfigError(f"--{flag} takes a whole number, not {raw!r}")
    value = int(text)
    if value <= 0:
        raise ConfigError(f"--{flag} must be at least 1, not {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m goldenpath.load",
        description="The golden path at load: N users, each with its own account and socket(s), "
                    "every event of every user checked as it arrives.")  # fmt: skip
    p.add_argument("--users", default=None, help="simulated users (default: MULTI_USER_USERS)")
    p.add_argument("--messages", default=None, help="messages per user (default: MULTI_USER_MESSAGES)")
    p.add_argument("--ramp", default=DEFAULT_RAMP,
                   help="users started per second, e.g. 50/s (0: all at once)")
    p.add_argument("--think", default="0s", help="pause between a user's messages, e.g. 0.5s")
    p.add_argument("--duration", default=DEFAULT_DURATION, help="stop sending after this long, e.g. 60s")
    p.add_argument("--sockets-per-user", default="1", help="sockets each user opens (its runs reach all)")
    p.add_argument("--together", action="store_true", help="start sending only once every user is connected")
    p.add_argument("--pid", default=None, help="the target's process id, to read its memory")
    p.add_argument("--env", default="", help="profile (a file in envs/); default GOLDENPATH_ENV, else local")
    return p


def plan_from_flags(users: str | None, messages: str | None, ramp: str, think: str, duration: str,
                    sockets_per_user: str, together: bool, pid: str | None,
                    settings: Settings) -> LoadPlan:  # fmt: skip
    """The plan, every flag and every policy checked; ConfigError on the first problem."""
    plan = LoadPlan(
        users=_whole("users", users) if users is not None else settings.multi_user_users,
        messages=_whole("messages", messages) if messages is not None else settings.multi_user_messages,
        ramp_per_s=parse_rate("ramp", ramp),
        think_s=parse_duration("think", think),
        duration_s=parse_duration("duration", duration),
        sockets_per_user=_whole("sockets-per-user", sockets_per_user),
        together=together,
        pid=_whole("pid", pid) if pid is not None else None,
    )
    check_plan(plan, settings, size_from_profile=users is None)
    return plan


def check_plan(plan: LoadPlan, settings: Settings, *, size_from_profile: bool = False) -> None:
    """The safety rules: hard caps, LOAD_ALLOWED, and a think time that fits the duration.

    ``size_from_profile``: the user count is the profile's own MULTI_USER_USERS (the
    multi-user layer's declared size), which a loopback target may take without LOAD_ALLOWED.
    """
    if plan.users <= 0 or plan.messages <= 0 or plan.sockets_per_user <= 0:
        raise ConfigError("--users, --messages and --sockets-per-user must be at least 1")
    max_users = int(settings.values["GOLDENPATH_LOAD_MAX_USERS"])
    max_duration = float(settings.values["GOLDENPATH_LOAD_MAX_DURATION_S"])
    if plan.users > max_users:
        raise ConfigError(f"{plan.users} users is over the hard cap GOLDENPATH_LOAD_MAX_USERS={max_users}")
    if plan.duration_s <= 0:
        raise ConfigError("--duration must be longer than 0")
    if plan.duration_s > max_duration:
        raise ConfigError(f"--duration {plan.duration_s:g}s is over the hard cap "
                          f"GOLDENPATH_LOAD_MAX_DURATION_S={max_duration:g}")  # fmt: skip
    if plan.think_s > plan.duration_s:
        raise ConfigError(f"--think {plan.think_s:g}s is longer than --duration {plan.duration_s:g}s: "
                          "no user could send a second message")  # fmt: skip
    allowed = settings.sla.concurrent_users
    if plan.users <= allowed or settings.load_allowed:
        return
    target = settings.backend_url
    where = urlsplit(target).hostname or target
    if not is_loopback(target):
        raise ConfigError(f"{plan.users} users against {where}, which is not on this machine, is load: "
                          f"more than SLA_CONCURRENT_USERS={allowed} needs LOAD_ALLOWED=true in the "
                          "profile or environment")  # fmt: skip
    if size_from_profile:
        return  # the profile's own multi-user size, on loopback
    raise ConfigError(f"{plan.users} users is more than SLA_CONCURRENT_USERS={allowed}: set "
                      "LOAD_ALLOWED=true in the profile or environment to run load")  # fmt: skip
