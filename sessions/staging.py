"""Staging layer (Task 3.2): a deployed environment, read-only but for its test users."""

import nox

from sessions._layer import run_layer


@nox.session(tags=["staging", "target", "remote"])
def staging(session: nox.Session) -> None:
    """Staging connectivity, SLA compliance and persistence (profile: staging)."""
    run_layer(session, "staging")
