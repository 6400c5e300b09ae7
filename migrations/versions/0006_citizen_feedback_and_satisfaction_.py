"""citizen feedback and satisfaction ratings

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_ref", sa.String(length=100), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=16), nullable=False),
        sa.Column("procedure_code", sa.String(length=64), nullable=True),
        sa.Column("unit_code", sa.String(length=32), nullable=False),
        sa.Column("officer", sa.String(length=200), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("contact", sa.String(length=500), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reject_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("info_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("publish_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("info_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["procedure_code"], ["procedures.code"], name=op.f("fk_feedback_procedure_code_procedures")
        ),
        sa.ForeignKeyConstraint(["unit_code"], ["units.code"], name=op.f("fk_feedback_unit_code_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_feedback_external_ref")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index("ix_feedback_unit_received", ["unit_code", "received_at"], unique=False)

    op.create_table(
        "dossier_ratings",
        sa.Column("dossier_code", sa.String(length=64), nullable=False),
        sa.Column("unit_code", sa.String(length=32), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rated_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["dossier_code"], ["dossiers.code"], name=op.f("fk_dossier_ratings_dossier_code_dossiers")
        ),
        sa.ForeignKeyConstraint(
            ["unit_code"], ["units.code"], name=op.f("fk_dossier_ratings_unit_code_units")
        ),
        sa.PrimaryKeyConstraint("dossier_code", name=op.f("pk_dossier_ratings")),
    )
    with op.batch_alter_table("dossier_ratings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dossier_ratings_unit_code"), ["unit_code"], unique=False)

    op.create_table(
        "feedback_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feedback_id", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("client_name", sa.String(length=100), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("within_deadline", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["feedback_id"], ["feedback.id"], name=op.f("fk_feedback_transitions_feedback_id_feedback")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_transitions")),
    )
    with op.batch_alter_table("feedback_transitions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feedback_transitions_feedback_id"), ["feedback_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("feedback_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_transitions_feedback_id"))

    op.drop_table("feedback_transitions")
    with op.batch_alter_table("dossier_ratings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dossier_ratings_unit_code"))

    op.drop_table("dossier_ratings")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_unit_received")

    op.drop_table("feedback")
