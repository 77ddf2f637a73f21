"""Multi-user layer (Task 3.3): concurrent users without interference."""

import nox

from sessions._layer import run_layer


@nox.session(tags=["multi_user", "target", "isolation"])
def multi_user(session: nox.Session) -> None:
    """Concurrent users, event isolation and memory stability against the target."""
    run_layer(session, "multi_user")
