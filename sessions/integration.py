"""Integration layer: the platform over the wire, no docker."""

import nox

from sessions._layer import run_layer


@nox.session(tags=["integration", "wire"])
def integration(session: nox.Session) -> None:
    """Every endpoint, error case and injected fault of the platform, no docker."""
    run_layer(session, "integration")
