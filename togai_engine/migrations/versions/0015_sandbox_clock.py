"""sandbox clock: the one-row table whose presence makes a database a sandbox

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

A sandbox server (`togai-engine serve --sandbox`) reads every call's current time from this row and moves it
only by advance_clock. A database without the row is a real one and uses the wall clock.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sandbox_clock",
        sa.Column("one", sa.Boolean(), primary_key=True),
        sa.Column("now", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("one", name="ck_sandbox_clock_one_row"),
    )


def downgrade() -> None:
    op.drop_table("sandbox_clock")
