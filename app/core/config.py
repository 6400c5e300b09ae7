"""Settings from the environment (prefix ``TTHC_``) or a ``.env`` file."""

import json
from datetime import date, time
from functools import lru_cache
from typing import Annotated, Any, Literal

from limits import parse
from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from app.core.primary import PRIMARY_SESSION_ATTRS, hosts_of

SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")

# Plain scheme names people paste from other tools, mapped to the async driver we use.
_DRIVER_ALIASES = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
}


DEFAULT_WORKING_HOURS = "08:00-12:00,13:00-17:00"


def parse_working_hours(text: str) -> list[tuple[time, time]]:
    """``"08:00-12:00,13:00-17:00"`` → ordered, non-overlapping periods of one day."""
    periods: list[tuple[time, time]] = []
    for part in text.split(","):
        try:
            start_text, end_text = part.strip().split("-")
            start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
        except ValueError as exc:
            raise ValueError(f"working hours must look like {DEFAULT_WORKING_HOURS!r}, got {text!r}") from exc
        if start >= end:
            raise ValueError(f"a working period must end after it starts: {part.strip()!r}")
        if periods and start < periods[-1][1]:
            raise ValueError("working periods must be in order and must not overlap")
        periods.append((start, end))
    return periods


Weight766 = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Threshold766 = Annotated[float, Field(gt=0, le=100)]


class Index766Settings(BaseModel):
    """Weights and thresholds of the Decision 766 scorecard; the national rules revise them.

    The scores take each number as the decimal written (a weight of 0.1 is 1/10, never the nearest
    binary float) and round only their exact result (app/stats/index766.py)."""

    publicity: Weight766 = 18
    progress: Weight766 = 20
    online_service: Weight766 = 12
    digitisation: Weight766 = 22
    satisfaction: Weight766 = 18
    online_payment: Weight766 = 10
    online_full_threshold: Threshold766 = Field(
        default=50, description="% of online full-service dossiers for full points"
    )
    online_payment_threshold: Threshold766 = Field(default=50, description="% paid online for full points")
    satisfaction_threshold: Threshold766 = Field(
        default=90,
        description="% of received dossiers handled to the citizen's satisfaction for the full dossier "
        "satisfaction part: min(part, part × r / (threshold / 100))",
    )


DEVELOPMENT_SECRET_KEY = "tthc-development-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TTHC_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./tthc.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db; a "
        "PostgreSQL cluster with failover as its servers in turn, "
        "postgresql+asyncpg://user@/db?host=a:5432&host=b:5432 (writes go to the primary among them)",
    )
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_echo: bool = False
    database_read_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hot standbys of the PostgreSQL primary (streaming replicas), comma-separated or a JSON "
        "list: statistics, reports and anonymous catalogue reads go to them in turn",
    )
    replica_max_lag: float = Field(
        default=5.0, gt=0, description="Seconds a standby may lag behind the primary and still answer reads"
    )
    replica_check_interval: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between checks of the standbys; one that is down, or lags beyond the bound, "
        "is skipped from the next check on (a check waits for an answer at most this long, and 1 s)",
    )
    database_connect_timeout: float = Field(
        default=1.5, gt=0, description="Seconds to open a database connection before answering 503"
    )
    database_pool_timeout: float = Field(
        default=2.0, gt=0, description="Seconds to wait for a free pooled connection before answering 503"
    )
    database_command_timeout: float | None = Field(
        default=2.0,
        gt=0,
        description="Seconds a database command may take in a request before it gets a 503 (a database "
        "that stops answering on open connections); the CLI's long commands run without it",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = Field(
        default="json", description="`json`: one JSON object per line (for log shippers); `text` for people"
    )

    redis_url: str | None = Field(
        default=None,
        description="redis://host:port/db; when set, rate-limit state is shared by all workers",
    )
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, description="Largest request body")
    body_read_timeout: float = Field(
        default=20.0, gt=0, description="Seconds a request body may take to arrive before a 408"
    )
    export_send_timeout: float = Field(
        default=30.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds a streamed export gives its client to take each piece of at most 64 KiB: a "
        "client that stops reading is cut this long after the buffers fill",
    )
    # Rate limits in the `limits` notation ("600/minute", "10/second"); an empty value disables one.
    rate_limit_ip_reads: str = "6000/minute"
    rate_limit_ip_writes: str = "1200/minute"
    rate_limit_client_reads: str = "6000/minute"
    rate_limit_client_writes: str = "1200/minute"
    rate_limit_lookup: str = Field(
        default="30/minute",
        description="Citizen look-ups and PIN ratings per IP address, together (guessing PINs)",
    )
    pin_failures_per_dossier: str = Field(
        default="10/hour",
        description="Wrong PINs on one dossier before it is locked for the rest of the window",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For is believed; none by default",
    )
    environment: Literal["development", "production"] = Field(
        default="development",
        description="`production` refuses to start with the development secret key",
    )
    secret_key: str = Field(
        default=DEVELOPMENT_SECRET_KEY,
        min_length=16,
        description="Keys the hashes of citizens' look-up PINs and signs cursors; set a long random value "
        "in production",
    )
    working_hours: str = Field(default=DEFAULT_WORKING_HOURS, description="Working periods of a day")
    extra_days_off: Annotated[list[date], NoDecode] = Field(
        default_factory=list, description="Days off beyond the official holidays, e.g. 2025-01-02,2025-05-02"
    )
    extra_working_days: Annotated[list[date], NoDecode] = Field(
        default_factory=list, description="Make-up working days (Saturdays worked in exchange for a day off)"
    )
    index_766: Index766Settings = Field(
        default_factory=Index766Settings, description='JSON, e.g. {"online_full_threshold": 60}'
    )
    cors_origins: list[str] = Field(
        default_factory=list, description='Browser origins allowed by CORS, e.g. ["https://app.example"]'
    )
    stats_cache_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=0,
        description="Memory per worker for answers of the statistics endpoints, reused until the data "
        "changes; 0 turns the cache off",
    )
    benchmark_baseline: bool = Field(
        default=False,
        description="Serve GET /api/v1/_baseline (one SELECT 1), the yardstick of bench/ — not in production",
    )

    @field_validator(
        "extra_days_off", "extra_working_days", "trusted_proxies", "database_read_urls", mode="before"
    )
    @classmethod
    def _dates(cls, value: Any) -> Any:
        # The environment gives "2024-04-29,2024-05-02" or a JSON list; code gives lists.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("working_hours")
    @classmethod
    def _working_hours(cls, value: str) -> str:
        parse_working_hours(value)
        return value

    @field_validator(
        "rate_limit_ip_reads",
        "rate_limit_ip_writes",
        "rate_limit_client_reads",
        "rate_limit_client_writes",
        "rate_limit_lookup",
        "pin_failures_per_dossier",
    )
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        if value.strip():
            try:
                parse(value)
            except ValueError as exc:
                raise ValueError(f"not a rate limit like '600/minute': {value!r}") from exc
        return value.strip()

    @model_validator(mode="after")
    def _no_development_key_in_production(self) -> "Settings":
        if self.environment == "production" and self.secret_key == DEVELOPMENT_SECRET_KEY:
            raise ValueError("TTHC_SECRET_KEY must be set to a long random value in production")
        return self

    @property
    def uses_development_key(self) -> bool:
        return self.secret_key == DEVELOPMENT_SECRET_KEY

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        return normalise_database_url(value).render_as_string(hide_password=False)

    @field_validator("database_read_urls")
    @classmethod
    def _check_read_urls(cls, value: list[str]) -> list[str]:
        urls = [normalise_database_url(url, "TTHC_DATABASE_READ_URLS") for url in value]
        if any(url.drivername != "postgresql+asyncpg" for url in urls):
            raise ValueError("TTHC_DATABASE_READ_URLS names PostgreSQL standbys (postgresql://user@host/db)")
        return [url.render_as_string(hide_password=False) for url in urls]

    @model_validator(mode="after")
    def _standbys_of_postgresql(self) -> "Settings":
        if self.database_read_urls and self.is_sqlite:
            raise ValueError("TTHC_DATABASE_READ_URLS needs a PostgreSQL primary in TTHC_DATABASE_URL")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def normalise_database_url(value: str, setting: str = "TTHC_DATABASE_URL") -> URL:
    """Parse a database URL and make sure it names a driver this service ships with."""
    try:
        url = make_url(value)
    except ArgumentError as exc:
        raise ValueError(f"{setting} is not a valid database URL: {value!r}") from exc
    driver = _DRIVER_ALIASES.get(url.drivername, url.drivername)
    if driver not in SUPPORTED_DRIVERS:
        raise ValueError(
            f"{setting} uses {url.drivername!r}; supported: {', '.join(SUPPORTED_DRIVERS)} "
            "(e.g. sqlite+aiosqlite:///./tthc.db or postgresql+asyncpg://user:pass@host:5432/db)"
        )
    if driver.startswith("postgresql") and not url.database:
        raise ValueError(f"{setting} for PostgreSQL must name a database")
    url = url.set(drivername=driver)
    if driver.startswith("postgresql") and len(hosts_of(url)) > 1:
        wish = url.query.get("target_session_attrs", PRIMARY_SESSION_ATTRS[0])
        if wish not in PRIMARY_SESSION_ATTRS:
            raise ValueError(
                f"{setting} names several servers for writes: target_session_attrs must be primary "
                f"(or read-write), not {wish!r}"
            )
        # For every connection made from the URL outside the service's pool (migrations).
        url = url.update_query_dict({"target_session_attrs": wish})
    return url


@lru_cache
def get_settings() -> Settings:
    return Settings()
