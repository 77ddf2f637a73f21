"""End-to-end layer (Task 3.1): the golden path against the profile's target."""

import nox

from sessions._layer import run_layer


@nox.session(tags=["e2e", "golden_path", "target"])
def e2e(session: nox.Session) -> None:
    """The golden path of a real user against the profile's target (auto-started on loopback)."""
    run_layer(session, "e2e")
