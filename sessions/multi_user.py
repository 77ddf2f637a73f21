"""Multi-user layer (Task 3.3): concurrent users without interference."""

import nox

from sessions._layer import run_layer


# Opt-in: it is a load run; it needs the whole machine for a while.
@nox.session(default=False, tags=["multi_user", "isolation", "target"])
def multi_user(session: nox.Session) -> None:
    """Concurrent users, event isolation and memory stability against the target."""
    run_layer(session, "multi_user")
