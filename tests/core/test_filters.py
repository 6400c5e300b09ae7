from datetime import UTC, date, datetime

from sqlalchemy import Select, select
from sqlalchemy.dialects import sqlite

from app.core.audit import AuditRecord
from app.core.filters import at_least, before, equal, from_day, given, through_day, where_given

AT = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def _where(query: Select[AuditRecord]) -> str:
    sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    return sql.partition("WHERE ")[2]


def test_a_filter_not_asked_for_narrows_nothing() -> None:
    query = where_given(
        select(AuditRecord),
        equal(AuditRecord.action, None),
        at_least(AuditRecord.occurred_at, None),
        before(AuditRecord.occurred_at, None),
        from_day(AuditRecord.occurred_at, None),
        through_day(AuditRecord.occurred_at, None),
        given(None, AuditRecord.client_id.in_),
    )
    assert "WHERE" not in str(query)


def test_each_filter_asked_for_in_the_order_given() -> None:
    query = where_given(
        select(AuditRecord),
        equal(AuditRecord.action, "create"),
        at_least(AuditRecord.occurred_at, AT),
        before(AuditRecord.occurred_at, AT),
        given({3}, AuditRecord.client_id.in_),
    )
    assert _where(query) == (
        "audit_records.action = 'create' AND audit_records.occurred_at >= '2025-03-04 05:06:07.000000'"
        " AND audit_records.occurred_at < '2025-03-04 05:06:07.000000' AND audit_records.client_id IN (3)"
    )


def test_days_are_vietnamese_and_the_last_one_is_included() -> None:
    query = where_given(
        select(AuditRecord),
        from_day(AuditRecord.occurred_at, date(2025, 1, 2)),
        through_day(AuditRecord.occurred_at, date(2025, 1, 2)),
    )
    assert _where(query) == (
        "audit_records.occurred_at >= '2025-01-01 17:00:00.000000'"
        " AND audit_records.occurred_at < '2025-01-02 17:00:00.000000'"
    )
