"""The locustfile of ``invoke load --engine locust``: GoldenPathUser as it is.

Messages per user and think time come from ``--gp-messages`` and ``--gp-think``, which the
invoke task sets from its own flags; everything else from the goldenpath profile.
"""

from goldenpath.locust import GoldenPathUser


class LoadUser(GoldenPathUser):
    pass
