"""Start here: goldenpath's golden path under Locust, checked on every frame.

    GOLDENPATH_ENV=local locust -f examples/locustfile.py --headless -u 50 -r 10 --run-time 2m

Settings (URLs, E2E key, service levels, contract names) come from the goldenpath profile
(GOLDENPATH_ENV, .env), so one configuration serves nox, invoke and Locust. The report is
<GOLDENPATH_REPORTS_DIR>/locust.json (+ .md); a violation or a failed service level makes
the exit code non-zero. README.md, "Load beyond one machine: Locust", has the master/worker
command lines.
"""

from locust import between

from goldenpath.locust import GoldenPathUser


class ChatUser(GoldenPathUser):
    wait_time = between(0.5, 2)
    messages = 5  # per user, then it keeps listening (a leak into an idle user is still seen)
    text = "Plan a two-day trip to Lisbon"  # a canary is appended to every message
