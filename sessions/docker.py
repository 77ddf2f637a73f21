"""Docker layer: engine hygiene against a real dockerd."""

import nox

from sessions._layer import run_layer


# Without an engine its tests skip on a laptop and fail where GOLDENPATH_REQUIRE_SERVICES=1.
@nox.session(tags=["docker", "engine"])
def docker(session: nox.Session) -> None:
    """Docker disk hygiene and test-image handling against a real engine."""
    run_layer(session, "docker")
