"""Profiles: layering order, validation errors that name file/line/key, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from goldenpath.core.errors import ConfigError
from goldenpath.core.masking import MASK
from goldenpath.core.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def make_root(tmp_path: Path, profiles: dict[str, str], dotenv: str | None = None) -> Path:
    (tmp_path / "envs").mkdir()
    for name, text in profiles.items():
        (tmp_path / "envs" / f"{name}.env").write_text(text)
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    return tmp_path


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    root = make_root(
        tmp_path,
        {"local": "BACKEND_URL=http://profile:1\nAUTH_SERVICE_URL=http://profile:2\n"
                  "SLA_PERCENTILE=90\nSLA_WS_CONNECT_MS=1500\n"},
        dotenv="AUTH_SERVICE_URL=http://dotenv:3\nSLA_PERCENTILE=99\nSLA_WS_CONNECT_MS=1000\n",
    )
    settings = load_settings(
        root,
        environ={"SLA_PERCENTILE": "50", "SLA_WS_CONNECT_MS": "700"},
        overrides={"SLA_WS_CONNECT_MS": "600"},
    )
    assert settings.get("SLA_FIRST_EVENT_MS") == "5000"  # built-in default
    assert settings.backend_url == "http://profile:1"  # profile over default
    assert settings.auth_service_url == "http://dotenv:3"  # .env over profile
    assert settings.sla.percentile == 50  # environment over .env
    assert settings.sla.ws_connect_ms == 600  # override over environment
    assert str(settings.origins["AUTH_SERVICE_URL"]) == ".env:1"
    assert str(settings.origins["BACKEND_URL"]) == "envs/local.env:1"
    assert str(settings.origins["SLA_PERCENTILE"]) == "environment"


def test_protocol_numbers_are_the_sla_defaults(tmp_path: Path) -> None:
    sla = load_settings(make_root(tmp_path, {"local": ""}), environ={}).sla
    assert (sla.ws_connect_ms, sla.first_event_ms, sla.tool_result_ms, sla.event_delivery_ms) == (
        2000, 5000, 30000, 500)
    assert (sla.concurrent_users, sla.percentile) == (10, 95)


def test_websocket_url_follows_an_overridden_backend(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"local": "BACKEND_URL=http://127.0.0.1:8000\n"})
    settings = load_settings(root, environ={"BACKEND_URL": "https://api.example.com/base"})
    assert settings.websocket_url == "wss://api.example.com/base/ws"
    assert "derived from BACKEND_URL (environment)" in str(settings.origins["WEBSOCKET_URL"])


def test_profile_from_environment_then_explicit(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"local": "", "ci": "GOLDENPATH_TIMEOUT_S=15\n", "staging": ""})
    assert load_settings(root, environ={"GOLDENPATH_ENV": "ci"}).profile == "ci"
    assert load_settings(root, "staging", environ={"GOLDENPATH_ENV": "ci"}).profile == "staging"
    assert load_settings(root, environ={}, layer_default="staging").profile == "staging"


def test_unknown_profile_lists_the_profiles_that_exist(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"local": "", "ci": ""})
    with pytest.raises(ConfigError) as err:
        load_settings(root, environ={"GOLDENPATH_ENV": "nope"})
    message = str(err.value)
    assert "unknown profile 'nope' (GOLDENPATH_ENV)" in message
    assert "profiles: ci, local" in message
    assert "\n" not in message


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"local": ""}, dotenv="# fine\nBACKEND_URL=http://x:1\nhunter2 secret\n")
    with pytest.raises(ConfigError, match=r"^\.env:3: cannot parse this line; expected KEY=value$") as err:
        load_settings(root, environ={})
    assert "hunter2" not in str(err.value)


def test_key_without_value_names_file_and_line(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"local": "BACKEND_URL\n"})
    with pytest.raises(ConfigError, match=r"^envs/local.env:1: BACKEND_URL has no value"):
        load_settings(root, environ={})


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("BACKEND_URL=localhost:8000", "BACKEND_URL='localhost:8000': not a http:// or https:// URL"),
        ("AUTH_SERVICE_URL=http://127.0.0.1:70000", "the port is not a number from 1 to 65535"),
        ("AUTH_SERVICE_URL=http://127.0.0.1:0", "the port is not a number from 1 to 65535"),
        ("AUTH_SERVICE_PORT=http", "AUTH_SERVICE_PORT='http': not a port"),
        ("WEBSOCKET_URL=http://127.0.0.1:8000/ws", "not a ws:// or wss:// URL"),
        ("SLA_FIRST_EVENT_MS=-5", "SLA_FIRST_EVENT_MS='-5': must be a positive number"),
        ("SLA_TOOL_RESULT_MS=fast", "SLA_TOOL_RESULT_MS='fast': not a number"),
        ("SLA_EVENT_DELIVERY_MS=inf", "must be a positive number"),
        ("SLA_CONCURRENT_USERS=2.5", "must be a positive whole number"),
        ("SLA_PERCENTILE=101", "must be a percentile above 0 and at most 100"),
        ("GOLDENPATH_AUTOSTART=maybe", "not a boolean"),
        ("AUTH_SERVICE_URL=http://[::1", "not a http:// or https:// URL"),
        ("BACKEND_URL=http:/nohost", "not a http:// or https:// URL"),
    ],
)
def test_bad_value_names_file_line_and_key(tmp_path: Path, line: str, expected: str) -> None:
    root = make_root(tmp_path, {"local": f"# a comment\n{line}\n"})
    with pytest.raises(ConfigError) as err:
        load_settings(root, environ={})
    assert str(err.value).startswith("envs/local.env:2: ")
    assert expected in str(err.value)


def test_bad_value_from_the_environment_says_so(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"local": ""})
    with pytest.raises(ConfigError, match=r"^environment: BACKEND_URL='ftp://x': not a http"):
        load_settings(root, environ={"BACKEND_URL": "ftp://x"})


def test_unknown_key_in_a_profile_suggests_the_known_one(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"local": "BAKEND_URL=http://x:1\n"})
    expected = r"envs/local.env:1: unknown setting BAKEND_URL; did you mean BACKEND_URL\?"
    with pytest.raises(ConfigError, match=expected):
        load_settings(root, environ={})


@pytest.mark.parametrize("where", ["profile", "dotenv"])
def test_a_misspelled_goldenpath_key_is_refused_with_a_hint(tmp_path: Path, where: str) -> None:
    line = "GOLDENPATH_TIMOUT_S=1\n"
    root = make_root(tmp_path, {"local": line if where == "profile" else ""},
                     dotenv=line if where == "dotenv" else None)
    label = "envs/local.env" if where == "profile" else ".env"
    expected = rf"^{label}:1: unknown setting GOLDENPATH_TIMOUT_S; did you mean GOLDENPATH_TIMEOUT_S\?$"
    with pytest.raises(ConfigError, match=expected):
        load_settings(root, environ={})


def test_settings_are_resolved_once_and_handed_on(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"local": "SLA_PERCENTILE=90\n"}, dotenv="E2E_OAUTH_SIMULATION_KEY=k3y\n")
    parent = load_settings(root, environ={})
    env = parent.as_env()
    # The child does not read the files again: breaking them changes nothing for it.
    (root / ".env").write_text("this is not an env file\n")
    child = load_settings(root, environ=env)
    assert child == parent
    assert str(child.origins["SLA_PERCENTILE"]) == "envs/local.env:1"


@pytest.mark.parametrize("change", [{"SLA_PERCENTILE": "99"}, {"GOLDENPATH_ENV": "ci"},
                                    {"REDIS_URL": "redis://127.0.0.1:1/0"}])
def test_a_changed_environment_is_resolved_again(tmp_path: Path, change: dict[str, str]) -> None:
    root = make_root(tmp_path, {"local": "SLA_PERCENTILE=90\n", "ci": "SLA_PERCENTILE=80\n"})
    env = {**load_settings(root, environ={}).as_env(), **change}
    child = load_settings(root, environ=env)
    for key, value in change.items():
        assert child.values.get(key, child.profile) == value


def test_dotenv_and_environment_may_hold_other_services_keys(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"local": ""}, dotenv="SOME_APP_SETTING=1\n")
    settings = load_settings(root, environ={"HOME": "/root", "REFSTACK_FAULTS": "drop:agent_thinking"})
    assert "SOME_APP_SETTING" not in settings.values
    assert "HOME" not in settings.values
    assert settings.get("REFSTACK_FAULTS") == "drop:agent_thinking"


def test_empty_value_means_not_configured(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"local": "REDIS_URL=redis://127.0.0.1:6379/0\n"})
    assert load_settings(root, environ={}).redis_url == "redis://127.0.0.1:6379/0"
    assert load_settings(root, environ={"REDIS_URL": ""}).redis_url is None


def test_secrets_are_masked_wherever_settings_are_shown(tmp_path: Path) -> None:
    root = make_root(
        tmp_path, {"local": ""},
        dotenv="DATABASE_URL=postgresql://app:s3cr3t-pw@db:5432/app\n"
               "E2E_OAUTH_SIMULATION_KEY=bypass-key-123\nJWT_SECRET_KEY=jwt-secret-456\n"
               "REDIS_URL=redis://:redis-pw@cache:6379/0\n"
               "CLICKHOUSE_URL=http://default:ch-pw@ch:8123/db?password=ch-pw\n",
    )
    settings = load_settings(root, environ={})
    shown = "\n".join(" ".join(row) for row in settings.masked())
    for secret in ("s3cr3t-pw", "bypass-key-123", "jwt-secret-456", "redis-pw", "ch-pw"):
        assert secret not in shown
    assert f"postgresql://app:{MASK}@db:5432/app" in shown
    assert f"E2E_OAUTH_SIMULATION_KEY {MASK}" in shown
    # The child process still gets the real values.
    assert settings.as_env()["JWT_SECRET_KEY"] == "jwt-secret-456"


@pytest.mark.parametrize("dsn", ["mysql://app:hunter2pw@db/app", "postgresql:app:hunter2pw@db/app",
                                 "postgresql//app:hunter2pw@db/app"])
def test_a_malformed_dsn_error_does_not_print_its_password(tmp_path: Path, dsn: str) -> None:
    root = make_root(tmp_path, {"local": ""}, dotenv=f"DATABASE_URL={dsn}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(root, environ={})
    assert "hunter2pw" not in str(err.value)
    assert str(err.value).startswith(f".env:1: DATABASE_URL='{MASK}': not a postgresql://")


def test_non_utf8_env_file_is_one_clear_error(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"local": ""})
    (root / ".env").write_bytes(b"BACKEND_URL=http://\xff\xfe:1\n")
    with pytest.raises(ConfigError, match=r"^\.env: not UTF-8 text"):
        load_settings(root, environ={})


@pytest.mark.parametrize("profile", ["local", "ci", "staging"])
def test_shipped_profiles_are_valid_and_on_loopback(profile: str) -> None:
    settings = load_settings(REPO, profile, environ={})
    assert settings.backend_url.startswith("http://127.0.0.1:")
    assert settings.auth_service_url.startswith("http://127.0.0.1:")
    assert settings.backend_url != settings.auth_service_url


def test_env_example_documents_every_setting() -> None:
    from goldenpath.core.settings import SPECS

    example = (REPO / ".env.example").read_text()
    missing = [spec.name for spec in SPECS if f"{spec.name}=" not in example]
    assert not missing
