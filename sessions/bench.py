"""Benchmarks: each prints a ratio against a baseline measured side by side in the same run."""

import nox

from sessions._layer import install_group


# Opt-in: a benchmark wants a quiet machine, and it proves nothing a test should gate on.
@nox.session(default=False, tags=["bench"])
def bench(session: nox.Session) -> None:
    """refstack fan-out against a bare websockets server; preflight against its checks in sequence."""
    install_group(session, "bench")
    session.run("python", "bench/refstack_fanout.py", *session.posargs)
    session.run("python", "bench/preflight.py")
