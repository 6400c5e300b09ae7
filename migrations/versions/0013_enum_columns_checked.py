"""enum columns checked by the database: CHECK constraints listing each column's values

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28

The models type these columns with their enums (app.core.base.enum_column); the constraints keep
any other value out of the tables whoever writes them. ``units.level`` has had its own since 0001.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PROPOSAL_STATES = ("draft", "submitted", "approved", "rejected", "withdrawn", "implemented")
_FEEDBACK_STATES = ("received", "processing", "info_requested", "rejected", "answered", "published")

# (table, column, values); the values as they stood when this revision was written.
CHECKED: list[tuple[str, str, tuple[str | int, ...]]] = [
    ("procedures", "online_service", ("none", "partial", "full")),
    ("procedures", "status", ("active", "suspended", "abolished")),
    ("dossiers", "status", (2, 3, 4, 5, 7, 8, 9, 10)),
    ("dossiers", "channel", ("direct", "online", "postal")),
    ("dossiers", "online_level", ("partial", "full")),
    (
        "dossier_events",
        "type",
        (
            "received",
            "refused",
            "processing",
            "supplement_requested",
            "supplement_received",
            "withdrawn",
            "stopped",
            "resolved",
            "returned",
            "apology_issued",
        ),
    ),
    ("dossier_events", "status", ("applied", "pending", "rejected", "cancelled")),
    (
        "dossier_ratings",
        "level",
        ("very_satisfied", "satisfied", "neutral", "unsatisfied", "very_unsatisfied"),
    ),
    ("proposals", "kind", ("simplify", "abolish", "reduce_fee")),
    ("proposals", "level", ("province", "district", "commune")),
    ("proposals", "state", _PROPOSAL_STATES),
    ("proposal_transitions", "from_state", _PROPOSAL_STATES),
    ("proposal_transitions", "to_state", _PROPOSAL_STATES),
    ("feedback", "channel", ("portal", "direct", "hotline", "mail")),
    ("feedback", "subject", ("procedure", "unit", "officer")),
    ("feedback", "state", _FEEDBACK_STATES),
    ("feedback_transitions", "from_state", _FEEDBACK_STATES),
    ("feedback_transitions", "to_state", _FEEDBACK_STATES),
]


def _tables() -> dict[str, list[tuple[str, tuple[str | int, ...]]]]:
    tables: dict[str, list[tuple[str, tuple[str | int, ...]]]] = {}
    for table, column, values in CHECKED:
        tables.setdefault(table, []).append((column, values))
    return tables


def upgrade() -> None:
    # One batch per table: SQLite cannot add a constraint to a table, so it is rebuilt once.
    for table, columns in _tables().items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, values in columns:
                batch_op.create_check_constraint(column, sa.column(column).in_(values))


def downgrade() -> None:
    for table, columns in _tables().items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, _values in columns:
                batch_op.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")
