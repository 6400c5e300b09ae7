import pytest
from pydantic import ValidationError

from app.core.config import Settings
from app.core.primary import hosts_of


def test_default_database_is_local_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTHC_DATABASE_URL", raising=False)
    settings = Settings(_env_file=None)
    assert settings.database_url == "sqlite+aiosqlite:///./tthc.db"
    assert settings.is_sqlite


def test_database_url_read_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTHC_DATABASE_URL", "postgresql+asyncpg://app:secret@db:5432/tthc")
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql+asyncpg://app:secret@db:5432/tthc"
    assert not settings.is_sqlite


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
    ],
)
def test_plain_schemes_get_the_async_driver(given: str, expected: str) -> None:
    assert Settings(database_url=given).database_url == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("mysql+aiomysql://u@h/db", "supported: sqlite+aiosqlite, postgresql+asyncpg"),
        ("not a url", "not a valid database URL"),
        ("postgresql+asyncpg://u@h", "must name a database"),
        ("postgresql+psycopg2://u@h/db", "uses 'postgresql+psycopg2'"),
    ],
)
def test_unusable_database_url_fails_fast_with_a_clear_message(given: str, message: str) -> None:
    with pytest.raises(ValidationError) as error:
        Settings(database_url=given)
    assert message in str(error.value)


def test_the_export_send_timeout_is_seconds_above_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTHC_EXPORT_SEND_TIMEOUT", raising=False)
    assert Settings(_env_file=None).export_send_timeout == 30
    monkeypatch.setenv("TTHC_EXPORT_SEND_TIMEOUT", "2.5")
    assert Settings(_env_file=None).export_send_timeout == 2.5
    # Zero or less would cut every export at once, and "inf" would never cut a client that stops.
    for unusable in ("0", "-1", "inf"):
        monkeypatch.setenv("TTHC_EXPORT_SEND_TIMEOUT", unusable)
        with pytest.raises(ValidationError, match="export_send_timeout"):
            Settings(_env_file=None)


def test_several_servers_are_asked_for_their_primary() -> None:
    settings = Settings(database_url="postgresql://tthc@/tthc?host=db-a:5432&host=db-b")
    assert settings.database_url.endswith("target_session_attrs=primary")
    assert hosts_of(settings.database_url) == ["db-a:5432", "db-b:5432"]
    assert hosts_of("postgresql+asyncpg://tthc@db-a:6432/tthc") == ["db-a:6432"]


@pytest.mark.parametrize("wish", ["standby", "prefer-standby", "any", "read-only"])
def test_several_servers_for_writes_cannot_be_asked_for_a_standby(wish: str) -> None:
    with pytest.raises(ValidationError, match="target_session_attrs must be primary"):
        Settings(database_url=f"postgresql://tthc@/tthc?host=a&host=b&target_session_attrs={wish}")
