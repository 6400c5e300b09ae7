"""idempotent answers keep their Location: a replayed 201 names what it created

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotent_answers") as batch:
        batch.add_column(sa.Column("location", sa.String(length=2048), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotent_answers") as batch:
        batch.drop_column("location")
