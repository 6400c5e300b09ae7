"""dossier events as a history: revision, verdict and reason; corrections

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dossier_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), server_default="applied", nullable=False)
        )
        batch_op.add_column(sa.Column("reason", sa.String(length=500), nullable=True))
        batch_op.create_index(
            "ix_dossier_events_pending",
            ["dossier_code"],
            unique=False,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
    op.create_table(
        "dossier_event_corrections",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_row_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dossier_code", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("from_revision", sa.Integer(), nullable=False),
        sa.Column("to_revision", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_clients.id"], name=op.f("fk_dossier_event_corrections_client_id_api_clients")
        ),
        sa.ForeignKeyConstraint(
            ["event_row_id"],
            ["dossier_events.id"],
            name=op.f("fk_dossier_event_corrections_event_row_id_dossier_events"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dossier_event_corrections")),
    )
    with op.batch_alter_table("dossier_event_corrections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dossier_event_corrections_dossier_code"), ["dossier_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_dossier_event_corrections_event_row_id"), ["event_row_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("dossier_event_corrections")
    with op.batch_alter_table("dossier_events", schema=None) as batch_op:
        batch_op.drop_index("ix_dossier_events_pending")
        batch_op.drop_column("reason")
        batch_op.drop_column("status")
        batch_op.drop_column("revision")
