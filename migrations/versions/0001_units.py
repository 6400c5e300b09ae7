"""Administrative units.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("division_type", sa.String(length=40), nullable=True),
        sa.Column("parent_code", sa.String(length=32), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("search_name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("level IN ('province', 'district', 'commune')", name=op.f("ck_units_level")),
        sa.CheckConstraint(
            "valid_from IS NULL OR valid_to IS NULL OR valid_from <= valid_to",
            name=op.f("ck_units_validity_order"),
        ),
        sa.ForeignKeyConstraint(["parent_code"], ["units.code"], name=op.f("fk_units_parent_code_units")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_units")),
    )
    with op.batch_alter_table("units") as batch_op:
        batch_op.create_index("ix_units_level_code", ["level", "code"], unique=False)
        batch_op.create_index(batch_op.f("ix_units_parent_code"), ["parent_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("units") as batch_op:
        batch_op.drop_index(batch_op.f("ix_units_parent_code"))
        batch_op.drop_index("ix_units_level_code")
    op.drop_table("units")
