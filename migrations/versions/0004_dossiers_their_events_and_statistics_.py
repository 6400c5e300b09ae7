"""dossiers, their events and statistics counters

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dossier_counters",
        sa.Column("unit_code", sa.String(length=32), nullable=False),
        sa.Column("sector_code", sa.String(length=32), nullable=False),
        sa.Column("procedure_code", sa.String(length=64), nullable=False),
        sa.Column("grain", sa.String(length=1), nullable=False),
        sa.Column("bucket", sa.Date(), nullable=False),
        sa.Column("received_direct", sa.Integer(), nullable=False),
        sa.Column("received_postal", sa.Integer(), nullable=False),
        sa.Column("received_online_partial", sa.Integer(), nullable=False),
        sa.Column("received_online_full", sa.Integer(), nullable=False),
        sa.Column("ended_direct", sa.Integer(), nullable=False),
        sa.Column("ended_postal", sa.Integer(), nullable=False),
        sa.Column("ended_online_partial", sa.Integer(), nullable=False),
        sa.Column("ended_online_full", sa.Integer(), nullable=False),
        sa.Column("finished_on_time", sa.Integer(), nullable=False),
        sa.Column("finished_early", sa.Integer(), nullable=False),
        sa.Column("finished_late", sa.Integer(), nullable=False),
        sa.Column("withdrawn", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("waiting_start", sa.Integer(), nullable=False),
        sa.Column("waiting_end", sa.Integer(), nullable=False),
        sa.Column("overdue_start", sa.Integer(), nullable=False),
        sa.Column("overdue_end", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "unit_code", "sector_code", "procedure_code", "grain", "bucket", name=op.f("pk_dossier_counters")
        ),
        # Counters are updated in place all the time: room in each page lets PostgreSQL do so
        # without new index entries (HOT updates).
        postgresql_with={"fillfactor": 70},
    )
    op.create_table(
        "dossier_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("dossier_code", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_clients.id"], name=op.f("fk_dossier_events_client_id_api_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dossier_events")),
        sa.UniqueConstraint("client_id", "event_id", name="uq_dossier_events_client_event"),
    )
    with op.batch_alter_table("dossier_events", schema=None) as batch_op:
        batch_op.create_index("ix_dossier_events_dossier", ["dossier_code", "occurred_at"], unique=False)

    op.create_table(
        "dossiers",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("procedure_code", sa.String(length=64), nullable=False),
        sa.Column("unit_code", sa.String(length=32), nullable=False),
        sa.Column("sector_code", sa.String(length=32), nullable=True),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("online_level", sa.String(length=16), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("original_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("supplement_count", sa.Integer(), nullable=False),
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("apology_count", sa.Integer(), nullable=False),
        sa.Column("new_return_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("on_time", sa.Boolean(), nullable=True),
        sa.Column("early", sa.Boolean(), nullable=True),
        sa.Column("overdue_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lookup_secret_hash", sa.String(length=64), nullable=True),
        sa.Column("paid_online", sa.Boolean(), nullable=True),
        sa.Column("fee_payable", sa.Boolean(), nullable=True),
        sa.Column("digitized", sa.Boolean(), nullable=True),
        sa.Column("e_result", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["procedure_code"], ["procedures.code"], name=op.f("fk_dossiers_procedure_code_procedures")
        ),
        sa.ForeignKeyConstraint(["unit_code"], ["units.code"], name=op.f("fk_dossiers_unit_code_units")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_dossiers")),
    )
    with op.batch_alter_table("dossiers", schema=None) as batch_op:
        batch_op.create_index("ix_dossiers_procedure_code", ["procedure_code"], unique=False)
        batch_op.create_index("ix_dossiers_status_due", ["status", "due_at"], unique=False)
        batch_op.create_index("ix_dossiers_unit_received", ["unit_code", "received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dossiers", schema=None) as batch_op:
        batch_op.drop_index("ix_dossiers_unit_received")
        batch_op.drop_index("ix_dossiers_status_due")
        batch_op.drop_index("ix_dossiers_procedure_code")

    op.drop_table("dossiers")
    with op.batch_alter_table("dossier_events", schema=None) as batch_op:
        batch_op.drop_index("ix_dossier_events_dossier")

    op.drop_table("dossier_events")
    op.drop_table("dossier_counters")
