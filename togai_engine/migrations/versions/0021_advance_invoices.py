"""advance invoices: an association's first in-advance charges are invoiced when it starts

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06

`invoices.invoice_type` (Togai's invoiceType): STANDARD is the invoice of a billing period, one per account and
period start (the unique key becomes partial); STANDARD_ADVANCED is issued DUE at an association's first instant
for the in-advance charges of its first period, with an empty period [start, start).
`invoices.carries_opening_fees`: the invoice of an association's first period that was opened before this
revision carries that period's in-advance fees itself, as they were priced then (every existing row is marked, so
no fee is dropped or charged twice on upgrade); invoices opened from now on leave them to the advance invoice.
`invoices.association_id` may become NULL (ON DELETE SET NULL): an advance invoice is final before its period
ends, so a plan change at its association's first instant drops that association (after crediting the invoice)
while the invoice stays. A STANDARD invoice past DRAFT never loses its association (changes stop at billed_until).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from togai_engine.store.distribution import refuse_downgrade_if_distributed

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("invoices", sa.Column("invoice_type", sa.String(24), nullable=False, server_default="STANDARD"))
    op.add_column("invoices", sa.Column("carries_opening_fees", sa.Boolean(), nullable=False,
                                        server_default=sa.false()))
    op.execute("UPDATE invoices SET carries_opening_fees = true")
    op.drop_constraint("uq_invoices_account_id", "invoices", type_="unique")
    op.drop_constraint("fk_invoices_association_id_plan_associations", "invoices", type_="foreignkey")
    op.alter_column("invoices", "association_id", nullable=True)
    op.create_foreign_key("fk_invoices_association_id_plan_associations", "invoices", "plan_associations",
                          ["association_id"], ["id"], ondelete="SET NULL")
    op.create_index("uq_invoices_account_period", "invoices", ["account_id", "period_start"], unique=True,
                    postgresql_where=sa.text("invoice_type = 'STANDARD'"))


def downgrade() -> None:
    # Advance invoices have no place in the older schema: refuse rather than drop issued invoices.
    bind = op.get_bind()
    # refused before any DDL: a distributed database cannot go below 0020, and 0021's DDL would hold locks that
    # 0020's check of Citus's tables waits for
    refuse_downgrade_if_distributed(bind, "0021")
    if bind.scalar(sa.text("SELECT count(*) FROM invoices WHERE invoice_type <> 'STANDARD'")):
        raise RuntimeError("advance invoices (invoice_type STANDARD_ADVANCED) exist; they are issued invoices and "
                           "cannot be represented before revision 0021: downgrade refused, nothing changed")
    op.drop_index("uq_invoices_account_period", table_name="invoices")
    op.drop_constraint("fk_invoices_association_id_plan_associations", "invoices", type_="foreignkey")
    op.alter_column("invoices", "association_id", nullable=False)
    op.create_foreign_key("fk_invoices_association_id_plan_associations", "invoices", "plan_associations",
                          ["association_id"], ["id"])
    op.create_unique_constraint("uq_invoices_account_id", "invoices", ["account_id", "period_start"])
    op.drop_column("invoices", "carries_opening_fees")
    op.drop_column("invoices", "invoice_type")
