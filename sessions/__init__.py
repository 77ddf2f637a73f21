"""nox sessions, one module per validation layer: wiring only (deps, profile, pytest args)."""
