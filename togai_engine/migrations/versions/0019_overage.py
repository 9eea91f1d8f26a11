"""credit grants restricted to rate cards: grantDetails.applicableEntityIds of a credit-grant rate card

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06

A grant issued by a card with applicableEntityIds pays only the invoice lines of those rate cards (by card
name); NULL pays any line (every grant before this revision).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("credit_grants", sa.Column("applicable_entity_ids", postgresql.ARRAY(sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column("credit_grants", "applicable_entity_ids")
