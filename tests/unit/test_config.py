"""Settings: environment over TOML over defaults, and no placeholder secret outside development."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hcp.config import Settings


def test_defaults_serve_sqlite_under_var(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HCP_CONFIG", "HCP_PORT", "HCP_DATABASE_URL", "HCP_VAR_DIR", "HCP_ENV"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.port == 8080
    assert settings.effective_database_url == "sqlite:///var/hcp.db"
    assert (settings.site_asics, settings.site_gpus) == (50, 10)


def test_environment_beats_toml_beats_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "hcp.toml"
    config.write_text('port = 9000\nsite_asics = 7\nlog_level = "DEBUG"\n')
    monkeypatch.setenv("HCP_CONFIG", str(config))
    monkeypatch.setenv("HCP_PORT", "9100")
    settings = Settings()
    assert settings.port == 9100
    assert settings.site_asics == 7
    assert settings.log_level == "DEBUG"


def test_unknown_toml_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hcp.toml"
    config.write_text("prot = 9000\n")
    monkeypatch.setenv("HCP_CONFIG", str(config))
    with pytest.raises(ValidationError, match="prot"):
        Settings()


def test_missing_config_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HCP_CONFIG", "/nonexistent/hcp.toml")
    with pytest.raises(FileNotFoundError, match=r"/nonexistent/hcp\.toml"):
        Settings()


@pytest.mark.parametrize("env", ["test", "production"])
def test_placeholder_secret_refused_outside_development(env: str) -> None:
    with pytest.raises(ValidationError, match="HCP_SECRET_KEY is a placeholder"):
        Settings(env=env)  # type: ignore[arg-type]
    assert Settings(env=env, secret_key="a-real-secret-value").env == env  # type: ignore[arg-type]


def test_bad_values_name_the_setting() -> None:
    with pytest.raises(ValidationError, match="port"):
        Settings(port=70_000)
    with pytest.raises(ValidationError, match="site_pue"):
        Settings(site_pue=0.9)


@pytest.mark.parametrize("site_id", ["tx/west-1", "west 1", "", "-west", "x" * 49, "wést"])
def test_a_site_id_that_cannot_sit_in_a_url_path_is_refused(site_id: str) -> None:
    """It starts every device id, and device ids sit in URL paths (/api/v1/resources/{id})."""
    with pytest.raises(ValidationError, match="site_id"):
        Settings(site_id=site_id)


def test_a_plain_site_id_is_taken() -> None:
    assert Settings(site_id="tx.west_1-b").site_id == "tx.west_1-b"


@pytest.mark.parametrize("url", [None, "", "memory", "  memory "])
def test_the_bus_is_in_process_unless_a_nats_url_is_given(
    url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HCP_BUS_URL", raising=False)
    settings = Settings() if url is None else Settings(bus_url=url)
    assert settings.bus_url == "memory"
    assert settings.bus_servers is None


def test_a_nats_bus_url_may_list_several_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HCP_BUS_URL", "nats://10.0.0.1:4222, tls://user:pw@nats.example:4443")
    settings = Settings()
    assert settings.bus_servers == ["nats://10.0.0.1:4222", "tls://user:pw@nats.example:4443"]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("kafka://127.0.0.1:9092", "is neither `memory` nor a nats://"),
        ("127.0.0.1:4222", "is neither `memory` nor a nats://"),
        ("nats://127.0.0.1:notaport", "port that is not a number"),
        ("nats://:4222", "names no host"),
        ("nats://127.0.0.1:4222/stream", "more than scheme://host:port"),
        ("nats://127.0.0.1:4222,", "empty entry"),
    ],
)
def test_a_bad_bus_url_is_refused_naming_the_variable(url: str, words: str) -> None:
    with pytest.raises(ValidationError, match="HCP_BUS_URL") as refused:
        Settings(bus_url=url)
    assert words in str(refused.value)


def test_a_refused_bus_url_does_not_show_its_password() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(bus_url="redis://user:hunter2@cache:6379")
    message = refused.value.errors()[0]["msg"]
    assert "HCP_BUS_URL 'redis://user:***@cache:6379'" in message
    assert "hunter2" not in message


def test_the_bus_prefix_is_one_per_site_unless_set() -> None:
    assert Settings(site_id="tx.west_1").effective_bus_prefix == "hcp-tx_west_1"
    assert Settings(bus_prefix="staging-7").effective_bus_prefix == "staging-7"
    for prefix in ("a.b", "a>", "", "x" * 65):
        with pytest.raises(ValidationError, match="bus_prefix"):
            Settings(bus_prefix=prefix)
