"""citus ready: every table that grows with usage can be distributed by account_id, colocated

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06

Citus colocates tables only when their distribution columns have one collation, and a distributed table's
primary key, unique constraints and foreign keys must include its distribution column. So:
- `event_ids.account_id` takes the database's default collation, like every other account_id (its `id` keeps
  "C": the claim index compares ids byte-wise);
- the wallet tables are keyed by (account_id, ...): credit_grants and wallet_entries get primary keys
  (account_id, id), and the references between them (and from credit_notes to its grant) include the account.
  Ids stay unique on their own (generated ids; wallet_entries.id an identity), so nothing the engine reads
  changes; wallet_entries' (account_id, id) index is the new primary key's and is dropped;
- `credit_grants.seq` is no longer unique on its own (an identity: it is unique anyway); the account's
  (account_id, seq) index stays.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from togai_engine.store.distribution import is_distributed

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("event_ids", "account_id", type_=sa.String(length=50, collation="default"),
                    existing_nullable=False)
    op.drop_constraint("fk_credit_notes_grant_id_credit_grants", "credit_notes", type_="foreignkey")
    op.drop_constraint("fk_wallet_entries_grant_id_credit_grants", "wallet_entries", type_="foreignkey")
    op.drop_constraint("fk_wallet_entries_reverses_entry_id_wallet_entries", "wallet_entries", type_="foreignkey")
    op.drop_constraint("uq_wallet_entries_reverses_entry_id", "wallet_entries", type_="unique")
    op.drop_constraint("uq_credit_grants_seq", "credit_grants", type_="unique")
    op.drop_constraint("pk_credit_grants", "credit_grants", type_="primary")
    op.create_primary_key("pk_credit_grants", "credit_grants", ["account_id", "id"])
    op.drop_constraint("pk_wallet_entries", "wallet_entries", type_="primary")
    op.create_primary_key("pk_wallet_entries", "wallet_entries", ["account_id", "id"])
    op.drop_index("ix_wallet_entries_account_id", table_name="wallet_entries")
    op.create_unique_constraint("uq_wallet_entries_account_id_reverses", "wallet_entries",
                                ["account_id", "reverses_entry_id"])
    op.create_foreign_key("fk_wallet_entries_account_id_reverses", "wallet_entries", "wallet_entries",
                          ["account_id", "reverses_entry_id"], ["account_id", "id"])
    op.create_foreign_key("fk_wallet_entries_account_id_grant", "wallet_entries", "credit_grants",
                          ["account_id", "grant_id"], ["account_id", "id"])
    op.create_foreign_key("fk_credit_notes_account_id_grant", "credit_notes", "credit_grants",
                          ["account_id", "grant_id"], ["account_id", "id"])


DISTRIBUTED_NO_DOWNGRADE = (
    "this database is distributed over Citus (`togai-engine db distribute`), and below 0020 its wallet tables "
    "would be keyed by id alone, which Citus refuses on a table distributed by account_id; nothing was changed. "
    "To run an engine older than 0020, restore a backup taken before `db distribute` (README, Scaling out -> Citus)")


def downgrade() -> None:
    bind = op.get_bind()
    # 0020 is what makes the schema distributable: a distributed database cannot go below it
    if is_distributed(bind):
        raise RuntimeError(DISTRIBUTED_NO_DOWNGRADE)
    op.drop_constraint("fk_credit_notes_account_id_grant", "credit_notes", type_="foreignkey")
    op.drop_constraint("fk_wallet_entries_account_id_grant", "wallet_entries", type_="foreignkey")
    op.drop_constraint("fk_wallet_entries_account_id_reverses", "wallet_entries", type_="foreignkey")
    op.drop_constraint("uq_wallet_entries_account_id_reverses", "wallet_entries", type_="unique")
    op.create_index("ix_wallet_entries_account_id", "wallet_entries", ["account_id", "id"])
    op.drop_constraint("pk_wallet_entries", "wallet_entries", type_="primary")
    op.create_primary_key("pk_wallet_entries", "wallet_entries", ["id"])
    op.drop_constraint("pk_credit_grants", "credit_grants", type_="primary")
    op.create_primary_key("pk_credit_grants", "credit_grants", ["id"])
    op.create_unique_constraint("uq_credit_grants_seq", "credit_grants", ["seq"])
    op.create_unique_constraint("uq_wallet_entries_reverses_entry_id", "wallet_entries", ["reverses_entry_id"])
    op.create_foreign_key("fk_wallet_entries_reverses_entry_id_wallet_entries", "wallet_entries", "wallet_entries",
                          ["reverses_entry_id"], ["id"])
    op.create_foreign_key("fk_wallet_entries_grant_id_credit_grants", "wallet_entries", "credit_grants",
                          ["grant_id"], ["id"])
    op.create_foreign_key("fk_credit_notes_grant_id_credit_grants", "credit_notes", "credit_grants",
                          ["grant_id"], ["id"])
    op.alter_column("event_ids", "account_id", type_=sa.String(length=50, collation="C"), existing_nullable=False)
