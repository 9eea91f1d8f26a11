"""creation association: which plan association an account's creation wrote

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07

- `plan_associations.by_account_creation`: true on the association create_account (or create_customer's inline
  account) wrote with the account, in its own transaction; at most one per account
  (`uq_plan_associations_account_creation`). A replayed creation compares its pricePlanId, effectiveFrom and
  rateCardOverrides with it (none: the account was created without a plan). Before this revision the creation's
  association was taken to be the account's first one written at the account's created_at (both PostgreSQL's
  now(), the creating transaction's start), which an update_account begun in that same microsecond also matched:
  a plan-less creation then replayed as one with that plan. The upgrade marks the association that rule found,
  the best the older schema tells.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from togai_engine.store.distribution import refuse_downgrade_if_distributed

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the rule revision 0022's engine replayed with (app/accounts.py then): the account's first association by id whose
# created_at is the account's
MARK_CREATION_ASSOCIATIONS = """
UPDATE plan_associations SET by_account_creation = true
WHERE id IN (SELECT DISTINCT ON (p.account_id) p.id
             FROM plan_associations AS p JOIN accounts AS a ON a.id = p.account_id AND a.created_at = p.created_at
             ORDER BY p.account_id, p.id)
"""


def upgrade() -> None:
    op.add_column("plan_associations", sa.Column("by_account_creation", sa.Boolean(), nullable=False,
                                                 server_default=sa.false()))
    op.execute(MARK_CREATION_ASSOCIATIONS)
    op.create_index("uq_plan_associations_account_creation", "plan_associations", ["account_id"], unique=True,
                    postgresql_where=sa.text("by_account_creation"))


def downgrade() -> None:
    # refused before any DDL, as 0022's: its DDL would hold locks that 0020's check of Citus's tables waits for
    refuse_downgrade_if_distributed(op.get_bind(), "0023")
    op.drop_index("uq_plan_associations_account_creation", table_name="plan_associations")
    op.drop_column("plan_associations", "by_account_creation")
