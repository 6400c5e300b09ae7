"""sectors and procedure catalogue

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Trigram index for accent-insensitive "contains" search on the folded name.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "sectors",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_sectors")),
    )
    op.create_table(
        "procedures",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column(
            "search_name",
            sa.String(length=500).with_variant(sa.String(length=500, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "search_code",
            sa.String(length=64).with_variant(sa.String(length=64, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("sector_code", sa.String(length=32), nullable=False),
        sa.Column("level_province", sa.Boolean(), nullable=False),
        sa.Column("level_district", sa.Boolean(), nullable=False),
        sa.Column("level_commune", sa.Boolean(), nullable=False),
        sa.Column("channel_direct", sa.Boolean(), nullable=False),
        sa.Column("channel_online", sa.Boolean(), nullable=False),
        sa.Column("channel_postal", sa.Boolean(), nullable=False),
        sa.Column("online_service", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("in_force_from", sa.Date(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sector_code"], ["sectors.code"], name=op.f("fk_procedures_sector_code_sectors")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_procedures")),
    )
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        batch_op.create_index("ix_procedures_search_code", ["search_code"], unique=False)
        batch_op.create_index(
            "ix_procedures_search_name_trgm",
            ["search_name"],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={"search_name": "gin_trgm_ops"},
            postgresql_with={"fastupdate": "off"},
        )
        batch_op.create_index("ix_procedures_search_order", ["search_name", "code"], unique=False)
        batch_op.create_index(batch_op.f("ix_procedures_sector_code"), ["sector_code"], unique=False)

    op.create_table(
        "procedure_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("procedure_code", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("in_force_from", sa.Date(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["procedure_code"],
            ["procedures.code"],
            name=op.f("fk_procedure_versions_procedure_code_procedures"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_procedure_versions")),
        sa.UniqueConstraint("procedure_code", "version", name="uq_procedure_versions_code_version"),
    )
    with op.batch_alter_table("procedure_versions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_procedure_versions_in_force", ["procedure_code", "in_force_from"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("procedure_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_procedure_versions_in_force")

    op.drop_table("procedure_versions")
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_procedures_sector_code"))
        batch_op.drop_index("ix_procedures_search_order")
        batch_op.drop_index(
            "ix_procedures_search_name_trgm",
            postgresql_using="gin",
            postgresql_ops={"search_name": "gin_trgm_ops"},
        )
        batch_op.drop_index("ix_procedures_search_code")

    op.drop_table("procedures")
    op.drop_table("sectors")
