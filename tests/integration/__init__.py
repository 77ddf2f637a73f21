"""Integration layer: refstack over the wire, one test session per run of this package."""
