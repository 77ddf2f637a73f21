"""Unit layer: goldenpath's own logic."""

import nox

from sessions._layer import run_layer


@nox.session(tags=["unit", "fast"])
def unit(session: nox.Session) -> None:
    """Unit tests of goldenpath itself: profiles, masking, contract checks, audits."""
    run_layer(session, "unit")
