"""Collection audit: the strategy's "quick validation" of test discovery."""

import nox

from sessions._layer import REPORTS, install_group


@nox.session(tags=["collect", "fast", "preflight"])
def collect(session: nox.Session) -> None:
    """pytest --collect-only over every layer; passes only with zero collection errors."""
    install_group(session, "collect")
    session.run("python", "-m", "goldenpath.collect",
                f"--json={REPORTS}/collect.json", f"--junit={REPORTS}/collect.xml", *session.posargs)
