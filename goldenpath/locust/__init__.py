"""goldenpath's checks inside Locust (``pip install goldenpath[locust]``).

``GoldenPathUser`` walks the golden path under Locust, in one process or as Locust's
master/worker fleet, and checks every frame with the load runner's own per-user ledger
(goldenpath.protocol.ledger). Importing it hooks goldenpath into Locust's events
(goldenpath.locust.plugin): settings from the goldenpath profile, violation evidence sent to
the master, one goldenpath report at the end.

Runs on gevent: nothing here may import an asyncio-based goldenpath module (the client
package); the ledger, the contract and the SLA code are pure. Nothing else in goldenpath
imports this package, so Locust stays an optional extra. ``GoldenPathUser`` is imported on
first use (PEP 562), so ``goldenpath.locust.launch``, which only builds command lines, never
imports Locust (whose import monkey-patches the standard library).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from goldenpath.locust.user import GoldenPathUser

__all__ = ["GoldenPathUser"]


def __getattr__(name: str) -> Any:
    if name == "GoldenPathUser":
        from goldenpath.locust.user import GoldenPathUser  # imports Locust: on demand

        return GoldenPathUser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
