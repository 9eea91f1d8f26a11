"""Settings from the environment (TOGAI_*), validated once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOGAI_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="asyncpg SQLAlchemy URL of an existing PostgreSQL; unset = embedded PostgreSQL",
    )
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("togai-engine")),
        description="where the embedded PostgreSQL keeps its data",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    billing_interval_seconds: int = Field(
        default=60, ge=0, description="how often the server closes due cycles in the background (0 = off)"
    )
    http_allowed_hosts: str = Field(
        default="127.0.0.1:*,localhost:*,[::1]:*",
        description="comma-separated Host header values the HTTP transport accepts (DNS-rebinding guard)",
    )
    http_allowed_origins: str = Field(
        default="http://127.0.0.1:*,http://localhost:*,http://[::1]:*",
        description="comma-separated Origin header values the HTTP transport accepts",
    )
    http_max_request_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024,
        description="the largest request accepted: an HTTP body, or one stdio message (a line of JSON)")
    tool_timeout_seconds: float = Field(
        default=60, gt=0, description="a tool call still running after this long is stopped with an error")
    bulk_tool_timeout_seconds: float = Field(
        default=300, gt=0,
        description="the same for the bulk tools (ingest_batch_events, void_events, simulate_price_plan)")
    api_key: str | None = Field(
        default=None, min_length=24,
        description="an extra HTTP API key with every scope, taken from the environment (for containers)",
    )

    @field_validator("database_url")
    @classmethod
    def _asyncpg_url(cls, value: str | None) -> str | None:
        return asyncpg_url(value) if value else None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def asyncpg_url(value: str) -> str:
    """A PostgreSQL URL in the asyncpg form the engine speaks; the libpq form users copy from elsewhere
    (`postgresql://`, `postgres://`) is accepted. Anything else raises ValueError."""
    if value.startswith(("postgresql://", "postgres://")):
        value = "postgresql+asyncpg://" + value.split("://", 1)[1]
    if not value.startswith("postgresql+asyncpg://"):
        raise ValueError("must be a PostgreSQL URL such as postgresql+asyncpg://user@host:5432/dbname")
    return value


class SettingsError(Exception):
    """Invalid settings; the message is one line naming the variable and the fix."""


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "TOGAI_" + str(first["loc"][0]).upper() if first["loc"] else "TOGAI_*"
        raise SettingsError(f"invalid setting {name}: {first['msg']}") from None
