"""Settings come from PROGRAMME_API_* variables; a bad one is one clear line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from programme_api.app import create_app
from programme_api.config import LogFormat, Settings, SettingsError, load_settings


def test_defaults_give_a_laptop_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "ISSUER", "REDIS_URL", "LOG_FORMAT"):
        monkeypatch.delenv(f"PROGRAMME_API_{name}", raising=False)
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///./programme.db"
    assert settings.issuer == "http://127.0.0.1:8000"
    assert settings.redis_url is None
    assert settings.log_format is LogFormat.CONSOLE


def test_values_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROGRAMME_API_DATABASE_URL", "postgresql+asyncpg://app@db/programme")
    monkeypatch.setenv("PROGRAMME_API_LOG_FORMAT", "json")
    monkeypatch.setenv("PROGRAMME_API_REDIS_URL", "redis://127.0.0.1:6379/0")
    settings = load_settings()
    assert settings.database_url == "postgresql+asyncpg://app@db/programme"
    assert settings.log_format is LogFormat.JSON
    assert settings.redis_url == "redis://127.0.0.1:6379/0"


def test_replica_urls_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PROGRAMME_API_DATABASE_REPLICA_URLS", " postgresql+asyncpg://app@r1/db, ,postgresql+asyncpg://app@r2/db"
    )
    assert load_settings().replica_urls == ("postgresql+asyncpg://app@r1/db", "postgresql+asyncpg://app@r2/db")


async def test_sqlite_ignores_replicas(tmp_path: Path) -> None:
    """SQLite has no replicas: every read stays on the one database file."""
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'one.db'}",
                        database_replica_urls="postgresql+asyncpg://app@replica/db")  # fmt: skip
    app = create_app(settings)
    runtime = app.state.runtime
    try:
        assert runtime.reads.replicas == []
        assert runtime.reads.primary.session_maker is runtime.session_maker
    finally:
        await runtime.reads.close()
        await runtime.engine.dispose()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "definitely not a url", "not a database URL"),
        ("DATABASE_URL", "mysql://root@localhost/x", "not supported"),
        ("LOG_FORMAT", "xml", "json"),
        ("ISSUER", "ftp://example", "http(s) URL"),
        ("REDIS_URL", "http://cache", "redis://"),
        ("STATEMENT_CACHE_SIZE", "-1", "greater than or equal"),
        ("DATABASE_REPLICA_URLS", "postgresql+asyncpg://app@replica/db,not a url", "not a database URL"),
        ("DATABASE_REPLICA_URLS", "sqlite+aiosqlite:///./copy.db", "PostgreSQL URLs"),
        ("METRICS_ALLOW_IPS", "10.0.0.0/8, nonsense", "not an address or network: 'nonsense'"),
        ("WEBHOOK_ALLOWED_NETWORKS", '["10.0.0.0/8"', "not a JSON list"),
        ("WEBHOOK_ALLOWED_NETWORKS", "[1, 2]", "strings only"),
        ("FORWARDED_ALLOW_IPS", "*, 10.0.0.1", "not an address or network: '*'"),
    ],
)
def test_bad_values_stop_with_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(f"PROGRAMME_API_{variable}", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"invalid setting PROGRAMME_API_{variable}: ")
    assert expected in message


LIST_SETTINGS = ("METRICS_ALLOW_IPS", "FORWARDED_ALLOW_IPS", "WEBHOOK_ALLOWED_NETWORKS")


@pytest.mark.parametrize("variable", LIST_SETTINGS)
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.0/8, 192.0.2.7", ["10.0.0.0/8", "192.0.2.7"]),
        ("10.0.0.0/8,,192.0.2.7,", ["10.0.0.0/8", "192.0.2.7"]),
        ('["10.0.0.0/8", " 192.0.2.7 "]', ["10.0.0.0/8", "192.0.2.7"]),
        ("", []),
        ("[]", []),
    ],
)
def test_every_list_setting_reads_comma_separated_items_or_a_json_list(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv(f"PROGRAMME_API_{variable}", value)
    assert getattr(load_settings(), variable.lower()) == expected


def test_forwarded_allow_ips_takes_a_lone_star_for_any_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROGRAMME_API_FORWARDED_ALLOW_IPS", " * ")
    assert load_settings().forwarded_allow_ips == ["*"]
