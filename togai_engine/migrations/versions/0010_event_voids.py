"""event voids: when and why an event was voided

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

`void_event` corrects usage of an open billing period without editing history away: the event stays
stored (its id stays claimed), its status becomes VOIDED and these columns say when and why. Both are
NULL for every other event. Adding nullable columns without a default changes only the catalog, on the
partitioned parent and every partition at once; partitions made later copy them (LIKE events).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("events", sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("events", sa.Column("void_reason", sa.String(length=255), nullable=True))


def downgrade() -> None:
    # voided events keep their status (they stay out of every quantity); only when and why is lost
    op.drop_column("events", "void_reason")
    op.drop_column("events", "voided_at")
