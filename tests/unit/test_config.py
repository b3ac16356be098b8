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
