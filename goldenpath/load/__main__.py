"""``python -m goldenpath.load``: the golden path at load, every event of every user checked.

Exit codes: 0 every gate passed, 1 a gate failed, 2 a bad flag or setting (said in one line,
before any connection), 130 interrupted (Ctrl-C: sockets closed, report marked interrupted).
"""

from __future__ import annotations

import sys
from pathlib import Path

from goldenpath.core.errors import ConfigError
from goldenpath.core.settings import load_settings
from goldenpath.load.config import parser, plan_from_flags
from goldenpath.load.session import run_and_report

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings(ROOT, args.env or None)
        plan = plan_from_flags(args.users, args.messages, args.ramp, args.think, args.duration,
                               args.sockets_per_user, args.together, args.pid, settings)  # fmt: skip
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_and_report(settings, plan)


if __name__ == "__main__":
    sys.exit(main())
