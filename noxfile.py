# /// script
# dependencies = ["nox>=2025.10.16", "python-dotenv>=1.0", "rich>=13.7"]
# ///
"""goldenpath: one nox session per validation layer. `nox -l` lists them.

The sessions themselves live in sessions/, one module per layer; this file holds
only the settings every session shares.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

# nox loads this file by path; the layer modules and goldenpath sit beside it.
sys.path.insert(0, str(Path(__file__).resolve().parent))

nox.needs_version = ">=2025.10.16"
nox.options.default_venv_backend = "uv|virtualenv"
# A developer re-running a layer should not wait for its virtualenv to be rebuilt.
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

# Importing a layer module registers its session, in this order: cheapest checks first,
# then the layers from the inside out, as `nox` runs and `nox -l` lists them.
from sessions import lint, collect, unit, integration, e2e, staging, multi_user, docker, bench  # noqa: E402, I001

__all__ = ["bench", "collect", "docker", "e2e", "integration", "lint", "multi_user", "staging", "unit"]
