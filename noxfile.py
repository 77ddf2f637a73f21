# /// script
# dependencies = ["nox>=2025.10.16", "python-dotenv>=1.0", "rich>=13.7"]
# ///
"""goldenpath: one nox session per validation layer. `nox -l` lists them.

The sessions themselves live in sessions/, one module per layer; this file holds
only the settings every session shares.
"""

from __future__ import annotations

import nox

nox.needs_version = ">=2025.10.16"
nox.options.default_venv_backend = "uv|virtualenv"
# A developer re-running a layer should not wait for its virtualenv to be rebuilt.
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

# Importing a layer module registers its session.
from sessions import (  # noqa: E402
    collect,
    docker,
    e2e,
    integration,
    lint,
    multi_user,
    staging,
    unit,
)

__all__ = ["collect", "docker", "e2e", "integration", "lint", "multi_user", "staging", "unit"]
