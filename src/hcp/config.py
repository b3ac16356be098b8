"""Settings: read once, at the composition root, from HCP_* variables and an optional TOML file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hcp.urls import redact_url

DEMO_KEYS_FILE = "demo-keys.json"
"""Where `hcp up` writes the first-start keys, inside `var_dir`."""
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "dev", "development"})
MEMORY_BUS = "memory"
NATS_SCHEMES = ("nats", "tls")


class Settings(BaseSettings):
    """Everything that can be configured. Environment variables win over the TOML file
    (named by HCP_CONFIG), which wins over the defaults."""

    model_config = SettingsConfigDict(env_prefix="HCP_", extra="forbid")

    env: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    tick_seconds: float = Field(300.0, gt=0)
    poll_seconds: float = Field(5.0, gt=0, description="how often the fleet is read, wall seconds")
    device_io_workers: int = Field(
        0, ge=0, description="processes that carry the miners' TCP exchanges; 0: the main one"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    secret_key: SecretStr = SecretStr("change-me")
    max_body_bytes: int = Field(64 * 1024, gt=0)
    market_seed: int = 42
    rate_limit_per_second: float = Field(50.0, ge=0, description="per API key; 0 turns it off")
    rate_limit_burst: int = Field(200, ge=1)
    metrics_token: SecretStr | None = Field(
        None,
        description="when set, GET /metrics answers only `Authorization: Bearer <token>` (the "
        "scraper's); unset, it is open like /health",
    )
    leader_check_seconds: float = Field(
        5.0,
        gt=0,
        description="how often a leading control loop checks it still holds its site, and a "
        "standing-by one tries to take it (wall seconds)",
    )
    bus_url: str = Field(
        MEMORY_BUS,
        description="the event bus: `memory` (in-process) or NATS JetStream servers, "
        "nats://host:port[,nats://host:port...]",
    )
    bus_prefix: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="the JetStream stream and subject prefix of the site's events; unset: "
        "hcp-SITE_ID (dots made '_'), so sites sharing a NATS server do not mix",
    )
    planner: Literal["mpc", "breakeven"] = Field(
        "mpc", description="the live planner: the optimizer (mpc) or the breakeven rule of thumb"
    )

    site_id: str = Field(
        "site-west-1",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$",
        description="letters, digits, '.', '_', '-' (it starts every device id, and ids sit in "
        "URL paths)",
    )
    site_name: str = "West Texas 1"
    site_node: str = "HB_WEST"
    site_capacity_mw: float = Field(1.0, gt=0)
    site_pue: float = Field(1.08, ge=1.0)
    site_asics: int = Field(50, ge=0)
    site_asic_model: str = "S21"
    site_gpus: int = Field(10, ge=0)
    site_gpu_model: str = "H100 SXM"
    site_gpus_per_node: int = Field(8, ge=1)
    devices_file: Path | None = Field(
        None, description="where the site's devices answer (TOML); unset: hcp up simulates them"
    )
    site_ramp_mw_per_tick: float | None = Field(
        None, gt=0, description="largest rise or fall of grid draw from one tick to the next"
    )
    site_min_on_minutes: float = Field(
        0.0,
        ge=0,
        description="a miner woken stays on at least this long (the optimizer plans within it, "
        "the dispatcher sleeps such a miner only when no other can be)",
    )
    site_min_off_minutes: float = Field(
        0.0,
        ge=0,
        description="a miner put to sleep stays asleep this long (the optimizer plans within "
        "it, the dispatcher wakes such a miner only when no other can be)",
    )

    @field_validator("bus_url")
    @classmethod
    def _check_bus_url(cls, value: str) -> str:
        """`memory` (also for an empty value), or a comma-separated list of NATS URLs; a
        ValueError naming HCP_BUS_URL (and never a password in it) for anything else."""
        value = value.strip()
        if value in ("", MEMORY_BUS):
            return MEMORY_BUS
        servers = [server.strip() for server in value.split(",")]
        for server in servers:
            problem = _nats_url_problem(server)
            if problem is not None:
                shown = f" {redact_url(server)!r}" if server else ""
                raise ValueError(
                    f"HCP_BUS_URL{shown} {problem}; use `memory` or nats://host:port "
                    "(several: comma-separated)"
                )
        return ",".join(servers)

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.env != "development" and self.secret_key.get_secret_value() in PLACEHOLDER_SECRETS:
            raise ValueError(
                f"HCP_SECRET_KEY is a placeholder; set a real secret when HCP_ENV={self.env}"
            )
        return self

    @model_validator(mode="after")
    def _refuse_blank_metrics_token(self) -> Settings:
        # Set but blank (an unset variable substituted into an env file): no token at all,
        # and a bare 'Authorization: Bearer' matched it.
        token = self.metrics_token
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("HCP_METRICS_TOKEN is empty; set a token, or leave it unset")
        return self

    @property
    def api_url(self) -> str:
        """Where a client on this host reaches the API: loopback when it listens on every
        interface (an empty host), an IPv6 address in brackets."""
        host = self.host or "127.0.0.1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def bus_servers(self) -> list[str] | None:
        """The NATS servers of HCP_BUS_URL; None for the in-process bus."""
        return None if self.bus_url == MEMORY_BUS else self.bus_url.split(",")

    @property
    def effective_bus_prefix(self) -> str:
        """The JetStream stream name and subject prefix: HCP_BUS_PREFIX, or one per site."""
        return self.bus_prefix or f"hcp-{self.site_id.replace('.', '_')}"

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or a SQLite file under var_dir."""
        return self.database_url or f"sqlite:///{self.var_dir / 'hcp.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("HCP_CONFIG")
        if toml_path:
            if not Path(toml_path).is_file():
                raise FileNotFoundError(f"HCP_CONFIG names {toml_path}, which is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        sources.append(file_secret_settings)
        return tuple(sources)


def _nats_url_problem(server: str) -> str | None:
    """None for a NATS server URL nats-py can use (nats:// or tls://, a host, a valid port),
    else what is wrong with it."""
    if not server:
        return "has an empty entry between commas"
    parts = urlsplit(server)
    if parts.scheme not in NATS_SCHEMES:
        return "is neither `memory` nor a nats:// (or tls://) URL"
    try:
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        return "has a port that is not a number up to 65535"
    if not parts.hostname:
        return "names no host"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "has more than scheme://host:port"
    return None
