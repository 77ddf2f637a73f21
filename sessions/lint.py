"""Static checks: ruff and mypy."""

import nox

from sessions._layer import REPORTS, install_group


@nox.session(tags=["lint", "fast", "static"])
def lint(session: nox.Session) -> None:
    """ruff and mypy over the whole repository."""
    install_group(session, "lint")
    session.run("ruff", "check", *session.posargs)
    session.run("ruff", "check", "--output-format=junit", f"--output-file={REPORTS}/lint.xml",
                success_codes=[0, 1])
    session.run("mypy", f"--junit-xml={REPORTS}/lint-mypy.xml")
