from __future__ import annotations

import pytest

from goldenpath.core.masking import MASK, mask_text, mask_url, mask_value


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", f"postgresql://u:{MASK}@h:5432/db"),
        ("redis://:pw@h:6379/0", f"redis://:{MASK}@h:6379/0"),
        ("http://h:8123/?user=u&password=pw", f"http://h:8123/?user=u&password={MASK}"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_urls_keep_everything_but_the_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_secret_names_hide_the_whole_value() -> None:
    assert mask_value("E2E_OAUTH_SIMULATION_KEY", "abc") == MASK
    assert mask_value("JWT_SECRET_KEY", "abc") == MASK
    assert mask_value("SOME_API_TOKEN", "abc") == MASK
    assert mask_value("BACKEND_URL", "http://x:1") == "http://x:1"
    assert mask_value("SLA_PERCENTILE", "95") == "95"


def test_free_text_loses_every_known_secret() -> None:
    text = "login as bob with key sekrit-key failed; retry with sekrit-key"
    assert mask_text(text, ["sekrit-key", ""]) == f"login as bob with key {MASK} failed; retry with {MASK}"
