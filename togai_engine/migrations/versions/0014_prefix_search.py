"""prefix-search indexes on the ids clients complete (MCP completion/complete)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

Argument completion looks ids up by prefix (app/lookup.py). The primary keys use the database's default
collation, and PostgreSQL serves a prefix from such an index only under the C collation; a
text_pattern_ops index compares bytes whatever the collation (a Docker postgres image defaults to
en_US.utf8), so the prefix is a range scan of it, returned in that index's order. The tables are catalogs
(one row per customer, account handle, plan, meter, invoice), so the extra index costs little on writes.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_account_handles_handle_prefix", "account_handles", "handle"),
    ("ix_customers_id_prefix", "customers", "id"),
    ("ix_invoices_id_prefix", "invoices", "id"),
    ("ix_price_plans_id_prefix", "price_plans", "id"),
    ("ix_usage_meters_id_prefix", "usage_meters", "id"),
)


def upgrade() -> None:
    for name, table, column in INDEXES:
        op.create_index(name, table, [column], postgresql_ops={column: "text_pattern_ops"})


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
