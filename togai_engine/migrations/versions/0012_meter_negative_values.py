"""usage meters: negative_values (ALLOW or REJECT), the meter's rule for negative event values

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

ALLOW (every existing meter, and the default) meters a negative value as it is, e.g. a correction;
REJECT makes ingestion reject an event whose value for the meter is negative (meters/README.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("usage_meters", sa.Column("negative_values", sa.String(length=8), server_default="ALLOW",
                                            nullable=False))
    op.create_check_constraint(op.f("ck_usage_meters_negative_values_known"), "usage_meters",
                               "negative_values IN ('ALLOW', 'REJECT')")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_usage_meters_negative_values_known"), "usage_meters", type_="check")
    op.drop_column("usage_meters", "negative_values")
