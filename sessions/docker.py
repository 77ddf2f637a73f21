"""Docker layer: engine hygiene against a real dockerd."""

import nox

from sessions._layer import run_layer


# Opt-in: it needs a docker engine, which a laptop may not run.
@nox.session(default=False, tags=["docker", "suite"])
def docker(session: nox.Session) -> None:
    """Docker disk hygiene and test-image handling against a real engine."""
    run_layer(session, "docker")
