"""Settings: one frozen pydantic-settings class per service, checked at start.

Every variable has the prefix ``DECILE_`` and nested sections use ``__``:
``DECILE_NATS__URL``, ``DECILE_POSTGRES__DSN``, ``DECILE_REDIS__URL``,
``DECILE_OBS__HTTP_PORT``. A service subclasses :class:`ServiceSettings` and
adds its own section (``DECILE_INGEST__GRACE_S``...).

A bad value stops the service with one line naming the variable
(:func:`load_settings`), never a traceback.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

ENV_PREFIX = "DECILE_"
NESTED = "__"


class Section(BaseModel):
    """A frozen settings section; unknown keys are refused so typos surface."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class NatsSettings(Section):
    url: str = "nats://127.0.0.1:4222"
    # Prepended to every subject and stream name; tests use it for isolation,
    # operators can use it to run two fleets on one server.
    namespace: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]*$", max_length=32)] = ""
    user: str | None = None
    password: SecretStr | None = None
    creds_file: str | None = None
    tls_ca: str | None = None
    connect_timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    reconnect_wait_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    max_reconnect_attempts: Annotated[int, Field(ge=-1)] = -1
    stream_replicas: Annotated[int, Field(ge=1, le=5)] = 1
    # Server-side dedup window on Nats-Msg-Id; must cover the longest redelivery.
    duplicate_window_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    max_age_days: Annotated[float, Field(gt=0)] = 30.0

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        for part in v.split(","):
            if not part.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ValueError("must be nats://host:port (comma-separated for a cluster)")
        return v


class PostgresSettings(Section):
    dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/postgres")
    pool_min: Annotated[int, Field(ge=1)] = 1
    pool_max: Annotated[int, Field(ge=1)] = 4


class RedisSettings(Section):
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    key_prefix: Annotated[str, Field(max_length=64)] = ""


class ObsSettings(Section):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    http_host: str = "127.0.0.1"
    # 0 picks a free port (tests); the fleet registry gives each service its own.
    http_port: Annotated[int, Field(ge=0, le=65535)] = 9100


class ServiceSettings(BaseSettings):
    """Settings every service shares. Subclass and add a section per service."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED,
        frozen=True,
        extra="ignore",
    )

    service: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")] = "decile"
    nats: NatsSettings = NatsSettings()
    postgres: PostgresSettings = PostgresSettings()
    redis: RedisSettings = RedisSettings()
    obs: ObsSettings = ObsSettings()
    state_dir: str = ".state"


S = TypeVar("S", bound=BaseSettings)


def env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable a validation error location refers to."""
    return ENV_PREFIX + NESTED.join(str(p).upper() for p in loc)


def explain(err: ValidationError) -> str:
    """One line per bad field, naming the variable to fix."""
    parts = []
    for e in err.errors():
        value = e.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        parts.append(f"{env_name(e['loc'])}: {e['msg']}{shown}")
    return "invalid settings: " + "; ".join(parts)


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build settings from the environment or exit(2) with one clear line."""
    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        print(explain(err), file=sys.stderr)
        raise SystemExit(2) from None
    except SettingsError as err:  # a section variable (DECILE_NATS=...) that is not JSON
        field = re.search(r'field "([^"]+)"', str(err))
        name = env_name((field.group(1),)) if field else ENV_PREFIX + "*"
        print(f"invalid settings: {name}: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def redacted(settings: BaseSettings) -> dict[str, object]:
    """Effective settings for the start-up log line; secrets stay masked."""
    return settings.model_dump(mode="json")  # SecretStr dumps as '**********'
