"""Settings, read from the environment (prefix ``PROGRAMME_API_``) and checked before anything starts."""

from __future__ import annotations

import enum
import ipaddress
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


class LogFormat(enum.StrEnum):
    JSON = "json"
    CONSOLE = "console"


def split_list(value: object) -> object:
    """An operator writes a list as comma-separated items (``10.0.0.0/8, 192.0.2.7``), or as the JSON list
    earlier releases documented (``["10.0.0.0/8"]``); both read the same, blanks dropped. Values that are
    already lists (code, tests) pass through."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            raise ValueError("not a JSON list; write comma-separated items instead") from None
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValueError("a JSON list must hold strings only")
        return [item.strip() for item in items if item.strip()]
    return [part.strip() for part in text.split(",") if part.strip()]


def check_networks(items: list[str]) -> list[str]:
    """Every item is an address or a network, so a typo stops start-up instead of silently matching no one."""
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"not an address or network: {item!r}") from None
    return items


def check_proxies(items: list[str]) -> list[str]:
    """Addresses or networks, or ``*`` alone for any peer (the proxy headers' own convention)."""
    return items if items == ["*"] else check_networks(items)


# The one type of every list setting: read from the environment as it is written (no JSON decoding first),
# then split by ``split_list``. A new list setting is ``name: ListSetting = Field(default_factory=list)``,
# with an ``AfterValidator`` in its own ``Annotated`` for what each item must be.
ListSetting = Annotated[list[str], NoDecode, BeforeValidator(split_list)]
NetworkList = Annotated[ListSetting, AfterValidator(check_networks)]
ProxyList = Annotated[ListSetting, AfterValidator(check_proxies)]


class Settings(BaseSettings):
    """The operator's knobs (contract section 5). Defaults give a working laptop install on SQLite."""

    model_config = SettingsConfigDict(env_prefix="PROGRAMME_API_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./programme.db"
    # The tables' owner, for system work that is cross-tenant by nature (migrations, demo load, organisation
    # listings); unset: the same as ``database_url``. On PostgreSQL the service's own role should not own the
    # tables, so that row-level security applies to it (migration 0006).
    owner_database_url: str | None = None
    # Streaming replicas of the primary (comma-separated PostgreSQL URLs, same role as ``database_url``): GraphQL
    # queries and evaluator exports read from them, except a caller's reads until a replica has replayed that
    # caller's last write (``replicas.py``). Ignored on SQLite.
    database_replica_urls: ListSetting = Field(default_factory=list)
    issuer: str = "http://127.0.0.1:8000"
    redis_url: str | None = None
    secret_key_file: Path = Path("./programme-keys.json")
    log_format: LogFormat = LogFormat.CONSOLE
    # asyncpg caches prepared statements per connection; PgBouncer in transaction mode needs 0.
    statement_cache_size: int = Field(default=100, ge=0)
    # Connections each worker keeps open (PostgreSQL). Fewer than the requests a worker has in flight at once
    # means connections closed on return and opened again: a backend started per request.
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Answer the read shapes it knows with one compiled statement (schema/compiler/); off = always the full executor.
    compiled_reads: bool = True
    # SQLite: seconds between the server's runs of PRAGMA optimize (fresh planner statistics as data grows).
    sqlite_optimize_seconds: float = Field(default=3600.0, gt=0)
    # Change notifications: outbox worker, webhooks (SSRF allow-list, retries), safeguarding emails.
    worker_poll_seconds: float = Field(default=0.25, gt=0)
    # Run the outbox worker inside ``serve`` (unset: when it serves as one process).
    worker_in_serve: bool | None = None
    webhook_allowed_networks: NetworkList = Field(default_factory=list)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_seconds: float = Field(default=24 * 3600.0, gt=0)
    webhook_backoff_seconds: float = Field(default=5.0, gt=0)
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    smtp_url: str | None = None
    smtp_from: str = "programme-api@localhost"
    safeguarding_leads: dict[str, str] = Field(default_factory=dict)
    safeguarding_escalate_minutes: float = Field(default=60.0, gt=0)

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("smtp://", "smtps://")):
            raise ValueError("must be an smtp:// or smtps:// URL")
        return value

    # Operations: who may read /metrics (loopback peers always; these networks too; or the bearer token), and
    # the per-request access log (one line per request; JSON with LOG_FORMAT=json).
    metrics_token: str | None = None
    metrics_allow_ips: NetworkList = Field(default_factory=list)
    access_log: bool = True

    @property
    def metrics_allow_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(item, strict=False) for item in self.metrics_allow_ips)

    # Forwarded headers: the peers (comma-separated addresses or networks, `*` for any) whose X-Forwarded-For
    # and X-Forwarded-Proto name the client; empty (default): none, the client is the TCP peer.
    forwarded_allow_ips: ProxyList = Field(default_factory=list)
    # Limits: query cost, rate limits (leaky buckets of cost points), time limits (README "Limits").
    max_query_cost: int = Field(default=5000, ge=1)
    max_query_nodes: int = Field(default=50_000, ge=1)
    rate_limit_points: int = Field(default=5000, ge=1)
    rate_limit_refill_seconds: float = Field(default=50.0, gt=0)
    auth_rate_limit_requests: int = Field(default=60, ge=1)
    auth_rate_limit_address_requests: int = Field(default=300, ge=1)
    rate_limit_redis_prefix: str = "programme-api:rate-limit:"
    request_timeout_seconds: float = Field(default=10.0, gt=0)

    @property
    def owner_url(self) -> str:
        return self.owner_database_url or self.database_url

    def as_owner(self) -> Settings:
        """These settings with the owner's database URL, for system work."""
        return self.model_copy(update={"database_url": self.owner_url})

    @property
    def replica_urls(self) -> tuple[str, ...]:
        return tuple(self.database_replica_urls)

    @field_validator("database_replica_urls")
    @classmethod
    def _check_replica_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if cls._check_database_url(url).startswith("sqlite"):
                raise ValueError("replicas must be PostgreSQL URLs (postgresql+asyncpg://...)")
        return value

    @field_validator("owner_database_url")
    @classmethod
    def _check_owner_database_url(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else cls._check_database_url(value)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {value!r}") from exc
        if url.drivername not in SUPPORTED_DRIVERS:
            raise ValueError(f"driver {url.drivername!r} is not supported; use one of {', '.join(SUPPORTED_DRIVERS)}")
        return value

    @field_validator("issuer")
    @classmethod
    def _check_issuer(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or value.endswith("/"):
            raise ValueError("must be an http(s) URL without a trailing slash")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value


class SettingsError(Exception):
    """A setting could not be read; the message is one line naming the environment variable."""


def load_settings() -> Settings:
    """Read settings, turning pydantic's report into one line per bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"invalid setting PROGRAMME_API_{field.upper()}: {message}")
        raise SettingsError("; ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
