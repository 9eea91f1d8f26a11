"""pricing rules: each DUE invoice keeps the log of its plan's pricing rules

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06

One JSON array per invoice (`pricing_rule_logs`): every rule of the plan, in the order it ran, with its status
(APPLIED, SKIPPED, FAILED), what it computed and what it changed (invoices/pricing_rules.py). NULL on invoices
whose plan has no rules and on DRAFTs (computed when read). Plans live as JSON, so their `pricingRules` need no
column; plans stored before have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("invoices", sa.Column("pricing_rule_logs", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("invoices", "pricing_rule_logs")
