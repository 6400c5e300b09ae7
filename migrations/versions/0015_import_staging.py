"""import staging: a file's valid events staged, then folded dossier by dossier

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# As they were at this revision (app.dossiers.counters.COUNTERS).
COUNTERS = (
    "received_direct",
    "received_postal",
    "received_online_partial",
    "received_online_full",
    "ended_direct",
    "ended_postal",
    "ended_online_partial",
    "ended_online_full",
    "finished_on_time",
    "finished_early",
    "finished_late",
    "withdrawn",
    "refused",
    "waiting_start",
    "waiting_end",
    "overdue_start",
    "overdue_end",
)

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "import_staged_events",
        sa.Column("file_identity", sa.String(length=100), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column("dossier_code", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("file_identity", "line", name=op.f("pk_import_staged_events")),
    )
    op.create_index(
        "ix_import_staged_events_dossier",
        "import_staged_events",
        ["file_identity", "dossier_code", "line"],
    )
    op.create_table(
        "import_staged_counters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("file_identity", sa.String(length=100), nullable=False),
        sa.Column("unit_code", sa.String(length=32), nullable=False),
        sa.Column("sector_code", sa.String(length=32), nullable=False),
        sa.Column("procedure_code", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTERS),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_staged_counters")),
    )
    op.create_index(
        op.f("ix_import_staged_counters_file_identity"), "import_staged_counters", ["file_identity"]
    )
    with op.batch_alter_table("import_checkpoints") as table:
        table.add_column(sa.Column("staged", sa.Boolean(), nullable=False, server_default=sa.false()))
        table.add_column(sa.Column("folded_through", sa.String(length=64), nullable=True))
        table.add_column(sa.Column("finished", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("import_checkpoints") as table:
        table.drop_column("finished")
        table.drop_column("folded_through")
        table.drop_column("staged")
    op.drop_index(op.f("ix_import_staged_counters_file_identity"), table_name="import_staged_counters")
    op.drop_table("import_staged_counters")
    op.drop_index("ix_import_staged_events_dossier", table_name="import_staged_events")
    op.drop_table("import_staged_events")
