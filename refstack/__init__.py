"""refstack: the reference implementation of the golden-path protocol.

An auth service issuing JWTs and a backend streaming deterministic agent events over a
WebSocket, small enough to read in one sitting and strict enough to validate the validators.
"""

__version__ = "1.0.0"
