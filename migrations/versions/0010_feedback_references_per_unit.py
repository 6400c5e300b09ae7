"""feedback references unique per unit, not across the country

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_constraint("uq_feedback_external_ref", type_="unique")
        batch_op.create_unique_constraint("uq_feedback_unit_code", ["unit_code", "external_ref"])


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_constraint("uq_feedback_unit_code", type_="unique")
        batch_op.create_unique_constraint("uq_feedback_external_ref", ["external_ref"])
