"""prepaid credit voids: a credit note on a PREPAID purchase line takes back the credits it sold

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07

- `credit_grants.sale_invoice_id`, `sale_line_position`: the invoice line that sold a PREPAID grant (both or
  neither). The grant is found by it when a credit note credits that line. One grant per sale
  (`uq_credit_grants_account_sale`); the one-grant-per-(card, cycle) key now holds for the other grants only (a
  partial unique index under the same name), so a cycle sold again after its first sale was credited (a replaced
  advance invoice) is granted again. Before this revision a cycle was granted once whatever sold it, so each such
  grant is linked to the sale of its cycle (same account, grantorId and cycle start) it stands for: a DUE or PAID
  purchase line not credited in full by notes, the PAID one that issued it first. When a replaced advance invoice
  was credited whole (its credits kept) and the cycle sold again, that is the later sale: paying it (still DUE)
  grants nothing again, a note on it voids from that grant, and a VOID of it is refused (credit_notes).
- `wallet_entries.credit_note_id` and the kind VOID (negative, with the note): the credits a credit note took back
  from such a grant; a note voids a grant once (`uq_wallet_entries_account_note_grant`).
- `credit_note_lines.credits_voided`: on a purchase line, the credits that part of the note took back.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from togai_engine.store.distribution import refuse_downgrade_if_distributed

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_BEFORE = "kind IN ('GRANT', 'APPLICATION', 'REVERSAL', 'EXPIRY')"
SIGNS_BEFORE = ("(kind = 'GRANT' AND amount > 0)"
                " OR (kind = 'APPLICATION' AND amount < 0 AND invoice_id IS NOT NULL)"
                " OR (kind = 'REVERSAL' AND amount > 0 AND reverses_entry_id IS NOT NULL)"
                " OR (kind = 'EXPIRY' AND amount <> 0)")
KINDS = "kind IN ('GRANT', 'APPLICATION', 'REVERSAL', 'EXPIRY', 'VOID')"
SIGNS = SIGNS_BEFORE + " OR (kind = 'VOID' AND amount < 0 AND credit_note_id IS NOT NULL)"

# For each (account, card, cycle), the sale the one grant revision 0021 issued stands for (see the docstring): among
# its DUE or PAID purchase lines, one that notes have not credited in full first (a sale credited whole gave its
# money back), then a PAID one, the earliest paid (the PAID that issued the grant), then in issue order.
LINK_SOLD_GRANTS = """
UPDATE credit_grants AS g SET sale_invoice_id = sold.invoice_id, sale_line_position = sold.position
FROM (
    SELECT DISTINCT ON (i.account_id, l.details->>'grantorId', (l.details->>'effectiveFrom')::timestamptz)
           i.account_id, l.invoice_id, l.position, l.details->>'grantorId' AS grantor_id,
           (l.details->>'effectiveFrom')::timestamptz AS cycle_start
    FROM invoice_lines AS l JOIN invoices AS i ON i.id = l.invoice_id
    LEFT JOIN (SELECT invoice_id, line_position, sum(amount) AS amount FROM credit_note_lines
               GROUP BY invoice_id, line_position) AS credited
           ON credited.invoice_id = l.invoice_id AND credited.line_position = l.position
    WHERE i.status IN ('DUE', 'PAID') AND l.parent_position IS NULL
      AND l.line_type = 'CREDIT_GRANT_RATE_CARD_AMOUNT' AND l.details->>'invoiceTiming' = 'PREPAID'
    ORDER BY i.account_id, l.details->>'grantorId', (l.details->>'effectiveFrom')::timestamptz,
             coalesce(credited.amount, 0) >= l.value, i.status <> 'PAID', i.status_changed_at, i.seq, l.position
) AS sold
WHERE g.account_id = sold.account_id AND g.source = 'RATE_CARD' AND g.grantor_id = sold.grantor_id
  AND g.cycle_start = sold.cycle_start
"""


def upgrade() -> None:
    op.add_column("credit_grants", sa.Column("sale_invoice_id", sa.String(50), nullable=True))
    op.add_column("credit_grants", sa.Column("sale_line_position", sa.Integer(), nullable=True))
    op.create_check_constraint(op.f("ck_credit_grants_sale_whole"), "credit_grants",
                               "(sale_invoice_id IS NULL) = (sale_line_position IS NULL)")
    op.execute(LINK_SOLD_GRANTS)
    op.drop_constraint("uq_credit_grants_account_grantor_cycle", "credit_grants", type_="unique")
    op.create_index("uq_credit_grants_account_grantor_cycle", "credit_grants",
                    ["account_id", "grantor_id", "cycle_start"], unique=True,
                    postgresql_where=sa.text("sale_invoice_id IS NULL"))
    op.create_unique_constraint("uq_credit_grants_account_sale", "credit_grants",
                                ["account_id", "sale_invoice_id", "sale_line_position"])

    op.add_column("wallet_entries", sa.Column("credit_note_id", sa.String(50), nullable=True))
    op.drop_constraint(op.f("ck_wallet_entries_kind_known"), "wallet_entries", type_="check")
    op.drop_constraint(op.f("ck_wallet_entries_sign_matches_kind"), "wallet_entries", type_="check")
    op.create_check_constraint(op.f("ck_wallet_entries_kind_known"), "wallet_entries", KINDS)
    op.create_check_constraint(op.f("ck_wallet_entries_sign_matches_kind"), "wallet_entries", SIGNS)
    op.create_index("uq_wallet_entries_account_note_grant", "wallet_entries",
                    ["account_id", "credit_note_id", "grant_id"], unique=True,
                    postgresql_where=sa.text("credit_note_id IS NOT NULL"))

    op.add_column("credit_note_lines", sa.Column("credits_voided", sa.Numeric(), nullable=True))
    op.create_check_constraint(op.f("ck_credit_note_lines_credits_voided_not_negative"), "credit_note_lines",
                               "credits_voided IS NULL OR credits_voided >= 0")


def downgrade() -> None:
    bind = op.get_bind()
    # refused before any DDL, as 0021's: its DDL would hold locks that 0020's check of Citus's tables waits for
    refuse_downgrade_if_distributed(bind, "0022")
    if bind.scalar(sa.text("SELECT count(*) FROM credit_note_lines WHERE credits_voided > 0")):
        raise RuntimeError("credit notes took back PREPAID credits (credit_note_lines.credits_voided, VOID wallet "
                           "entries), which cannot be represented before revision 0022: an older engine would "
                           "grant them again when their invoice is paid; downgrade refused, nothing changed")
    if bind.scalar(sa.text("SELECT count(*) FROM (SELECT 1 FROM credit_grants WHERE cycle_start IS NOT NULL "
                           "GROUP BY account_id, grantor_id, cycle_start HAVING count(*) > 1) AS twice")):
        raise RuntimeError("a PREPAID card's cycle was sold and granted twice (a replaced advance invoice sold it "
                           "again), which revision 0021 allows once per card and cycle: downgrade refused, "
                           "nothing changed")
    op.drop_constraint(op.f("ck_credit_note_lines_credits_voided_not_negative"), "credit_note_lines", type_="check")
    op.drop_column("credit_note_lines", "credits_voided")

    op.drop_index("uq_wallet_entries_account_note_grant", table_name="wallet_entries")
    op.drop_constraint(op.f("ck_wallet_entries_sign_matches_kind"), "wallet_entries", type_="check")
    op.drop_constraint(op.f("ck_wallet_entries_kind_known"), "wallet_entries", type_="check")
    op.create_check_constraint(op.f("ck_wallet_entries_kind_known"), "wallet_entries", KINDS_BEFORE)
    op.create_check_constraint(op.f("ck_wallet_entries_sign_matches_kind"), "wallet_entries", SIGNS_BEFORE)
    op.drop_column("wallet_entries", "credit_note_id")

    op.drop_constraint("uq_credit_grants_account_sale", "credit_grants", type_="unique")
    op.drop_index("uq_credit_grants_account_grantor_cycle", table_name="credit_grants")
    op.create_unique_constraint("uq_credit_grants_account_grantor_cycle", "credit_grants",
                                ["account_id", "grantor_id", "cycle_start"])
    op.drop_constraint(op.f("ck_credit_grants_sale_whole"), "credit_grants", type_="check")
    op.drop_column("credit_grants", "sale_line_position")
    op.drop_column("credit_grants", "sale_invoice_id")
