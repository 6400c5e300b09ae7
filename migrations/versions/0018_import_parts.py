"""a bulk load in parts: each part's checkpoint names the file's, and the line or dossier its part ends at

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("import_checkpoints") as batch:
        batch.add_column(sa.Column("part_of", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("last_line", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("last_code", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_import_checkpoints_part_of"), ["part_of"])


def downgrade() -> None:
    with op.batch_alter_table("import_checkpoints") as batch:
        batch.drop_index(batch.f("ix_import_checkpoints_part_of"))
        batch.drop_column("last_code")
        batch.drop_column("last_line")
        batch.drop_column("part_of")
