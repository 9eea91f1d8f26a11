"""Account operations. Services take the session first and never commit."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.models import AccountHandleRow, AccountRow
from togai_engine.accounts.schemas import Account, AccountCreate, AccountFields, AccountUpdate
from togai_engine.common.locks import advisory_locks_sql
from togai_engine.common.messages import brief
from togai_engine.common.pagination import fetch_page
from togai_engine.common.profiles import stored_profile
from togai_engine.common.schemas import Page
from togai_engine.common.validation import check_currency, check_email, check_id, clean_address, refuse_nulls
from togai_engine.errors import Conflict, InvalidInput, NotFound
from togai_engine.store.arrays import any_of


def _clean_aliases(aliases: list[str], account_id: str, field: str) -> list[str]:
    seen: list[str] = []
    for i, alias in enumerate(aliases):
        check_id(alias, f"{field}[{i}]")
        if alias == account_id:
            raise InvalidInput(f"{field}[{i}]", f"alias {alias!r} is the account's own id; leave it out")
        if alias in seen:
            raise InvalidInput(f"{field}[{i}]", f"alias {alias!r} is listed twice")
        seen.append(alias)
    return seen


def _stored_values(data: AccountFields | AccountUpdate, prefix: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    given = data.model_fields_set | ({"invoiceCurrency", "netTermDays"} if isinstance(data, AccountFields) else set())
    if "name" in given and data.name is not None:
        values["name"] = data.name.strip()
    if "invoiceCurrency" in given and data.invoiceCurrency is not None:
        values["invoice_currency"] = check_currency(data.invoiceCurrency, f"{prefix}invoiceCurrency")
    if "primaryEmail" in given:
        values["primary_email"] = (
            check_email(data.primaryEmail, f"{prefix}primaryEmail") if data.primaryEmail else None
        )
    if "address" in given:
        values["address"] = clean_address(data.address, f"{prefix}address")
    if "netTermDays" in given and data.netTermDays is not None:
        values["net_term_days"] = data.netTermDays
    if "metadata" in given:
        values["metadata_"] = data.metadata
    return values


async def _aliases(session: AsyncSession, account_id: str) -> list[str]:
    rows = await session.scalars(
        select(AccountHandleRow.handle)
        .where(AccountHandleRow.account_id == account_id, AccountHandleRow.kind == "ALIAS")
        .order_by(AccountHandleRow.handle)
    )
    return list(rows)


def _to_schema(row: AccountRow, aliases: list[str]) -> Account:
    address, metadata, problem = stored_profile(row.address, row.metadata_, f"account {row.id!r}", "update_account")
    return Account(
        id=row.id,
        customerId=row.customer_id,
        name=row.name,
        invoiceCurrency=row.invoice_currency,
        aliases=aliases,
        primaryEmail=row.primary_email,
        address=address,
        netTermDays=row.net_term_days,
        metadata=metadata,
        problem=problem,
        status=row.status,  # type: ignore[arg-type]
        createdAt=row.created_at,
        updatedAt=row.updated_at,
    )


async def _claim_handles(session: AsyncSession, account_id: str, handles: list[str], kind: str, field: str) -> None:
    """Claims ids/aliases in the shared key space; a taken one is a conflict naming its owner."""
    if not handles:
        return
    claimed = set(
        await session.scalars(
            insert(AccountHandleRow)
            .values([{"handle": h, "account_id": account_id, "kind": kind} for h in handles])
            .on_conflict_do_nothing(index_elements=["handle"])
            .returning(AccountHandleRow.handle)
        )
    )
    for i, handle in enumerate(handles):
        if handle in claimed:
            continue
        owner = await session.scalar(select(AccountHandleRow).where(AccountHandleRow.handle == handle))
        assert owner is not None
        if owner.account_id == account_id and owner.kind == kind:
            continue
        what = "the id of account" if owner.kind == "ID" else "already an alias of account"
        target = f"{field}[{i}]" if kind == "ALIAS" else field
        raise Conflict(f"{target}: {handle!r} is {what} {owner.account_id!r}; choose another")


async def create_account(
    session: AsyncSession, data: AccountCreate, *, prefix: str = ""
) -> tuple[Account, bool]:
    """Returns the account and whether it was created now (False: a replay whose profile fields all match the
    account as stored; one that differs is a Conflict naming the first, and writes nothing). The customer must
    exist (the caller checks); a plan is attached, and a replay's plan fields compared, by the caller too."""
    account_id = check_id(data.id, f"{prefix}id")
    aliases = _clean_aliases(data.aliases, account_id, f"{prefix}aliases")
    values = {"name": data.name.strip(), "primary_email": None, "address": None, "metadata_": None}
    values.update(_stored_values(data, prefix))
    inserted = await session.scalar(
        insert(AccountRow)
        .values(id=account_id, customer_id=data.customerId, **values)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(AccountRow.id)
    )
    row = await session.get(AccountRow, account_id, populate_existing=True)
    assert row is not None
    if inserted is None:
        stored_aliases = await _aliases(session, account_id)
        different = _first_profile_difference(row, stored_aliases, data.customerId, values, aliases)
        if different is not None:
            argument, stored, sent = different
            fix = ("An account belongs to one customer for good: choose another id for this customer's account"
                   if argument == "customerId" else
                   "Use update_account to change it, or choose another id for a new account")
            # create_customer's inline account takes its customer from the customer's id: the clash is its own id
            path = f"{prefix}id" if argument == "customerId" and prefix else f"{prefix}{argument}"
            raise replay_conflict(account_id, path, argument, brief(stored), brief(sent), fix)
        return _to_schema(row, stored_aliases), False
    await _claim_handles(session, account_id, [account_id], "ID", f"{prefix}id")
    await _claim_handles(session, account_id, aliases, "ALIAS", f"{prefix}aliases")
    return _to_schema(row, aliases), True


def _first_profile_difference(row: AccountRow, stored_aliases: list[str], customer_id: str,
                              values: dict[str, Any], aliases: list[str]) -> tuple[str, Any, Any] | None:
    """The first of create_account's profile arguments (in the tool's order) whose value, normalised as it is
    stored, differs from the account's: (argument, stored, sent); None when all match. Aliases are a set; an
    address is compared as clean_address stores it, on both sides."""
    compared = (
        ("customerId", row.customer_id, customer_id),
        ("name", row.name, values["name"]),
        ("invoiceCurrency", row.invoice_currency, values["invoice_currency"]),
        ("aliases", sorted(stored_aliases), sorted(aliases)),
        ("primaryEmail", row.primary_email, values["primary_email"]),
        ("address", row.address, values["address"]),
        ("netTermDays", row.net_term_days, values["net_term_days"]),
        ("metadata", row.metadata_, values["metadata_"]),
    )
    return next(((argument, stored, sent) for argument, stored, sent in compared if stored != sent), None)


def replay_conflict(account_id: str, path: str, argument: str, stored: str, sent: str, fix: str) -> Conflict:
    """create_account again with an existing id and a field that differs from the account as stored (Stripe's
    idempotency rule: same key, different parameters is an error, never a silent replay; accounts README).
    `path` is where the field is in the call (`account.name` inline, a place inside rateCardOverrides);
    `stored` and `sent` are shown as given, already short."""
    return Conflict(
        f"{path}: account {account_id!r} already exists with a different {argument} (stored {stored}, sent "
        f"{sent}). Nothing was changed: creating an account again returns it only when every field matches what "
        f"is stored. {fix}")


ACCOUNT_LOCK_CLASS = 0x61636374  # "acct": the key space of lock_accounts' locks


async def lock_accounts(session: AsyncSession, account_ids: Sequence[str]) -> None:
    """Until the transaction ends, the accounts' locks, exclusive: for a change of the account (its profile,
    plan, seats) and for closing its cycles or crediting its invoices. A transaction advisory lock
    (common/locks.py) in place of a lock on the account's row: on Citus `accounts` is a reference table, and a
    row lock on one is a lock of the whole table on every node (Citus takes a table-wide lock to keep the copies
    in step), so a change of one account made every other account's bill run wait. Take it before reading what
    it guards: a read after it sees what committed."""
    # one round trip: the setting (below) and the locks
    locks = advisory_locks_sql(ACCOUNT_LOCK_CLASS, "unnest(CAST(:ids AS text[]))", exclusive=True)
    await session.execute(text(f"SELECT {ROWS_OF_LOCKED_ACCOUNTS}, ({locks})"), {"ids": sorted(set(account_ids))})


# On Citus every write of a reference table (an UPDATE, an upsert) takes a table-wide lock, exclusive, on every
# node, and the same on each reference table it points at by foreign key (an invoice: accounts), so that two
# writers of one row never apply their writes to the nodes' copies in different orders. The engine orders
# those writers itself: what a transaction writes of an account's rows (its account, billing row, plan,
# invoices, notes) is written under the account's lock, exclusive, and a shared counter under its own lock
# (invoices.models.counter_lock_sql). Told so, Citus takes the lock a plain insert takes, and one account's
# bill run, plan change or credit note no longer makes every other account's wait. On PostgreSQL without
# Citus this sets an unused placeholder setting, for the transaction only.
ROWS_OF_LOCKED_ACCOUNTS = "set_config('citus.all_modifications_commutative', 'on', true)"  # SET LOCAL, as a value


async def get_row(session: AsyncSession, account_id: str, *, lock: bool = False) -> AccountRow:
    """The account's row; with `lock`, after taking its lock exclusive (lock_accounts)."""
    if lock:
        await lock_accounts(session, [account_id])
    stmt = select(AccountRow).where(AccountRow.id == account_id)
    if lock:
        stmt = stmt.execution_options(populate_existing=True)
    row = await session.scalar(stmt)
    if row is None:
        raise NotFound(f"account {account_id!r} does not exist; list_accounts shows the ids")
    return row


async def resolve_account_id(session: AsyncSession, handle: str) -> str | None:
    """The account an id or alias names, or None."""
    return await session.scalar(select(AccountHandleRow.account_id).where(AccountHandleRow.handle == handle))


async def account_id_of(session: AsyncSession, handle: str) -> str:
    """The id of the account `handle` names (its id or one of its aliases); NotFound when none."""
    account_id = await resolve_account_id(session, handle)
    if account_id is None:
        raise NotFound(f"account {handle[:60]!r} does not exist; list_accounts shows the ids and their aliases")
    return account_id


async def resolve_account_ids(session: AsyncSession, handles: Collection[str]) -> dict[str, str]:
    """The account each id or alias names, in one lookup; a handle that names none is left out."""
    if not handles:
        return {}
    found = await session.execute(select(AccountHandleRow.handle, AccountHandleRow.account_id)
                                  .where(any_of(AccountHandleRow.handle, set(handles))))
    return dict(found.tuples().all())


async def get_account(session: AsyncSession, account_id: str) -> Account:
    """The account's profile (its financial picture is the application layer's: app/financials.py)."""
    row = await get_row(session, account_id)
    return _to_schema(row, await _aliases(session, account_id))


async def update_account(session: AsyncSession, account_id: str, data: AccountUpdate) -> Account:
    """Profile fields, status and aliases. Plan changes and the guards on currency and status are the
    application layer's (app/accounts.py), which calls this under the same row lock. A field given as None
    is cleared (aliases: all removed); one an account cannot be without is refused."""
    refuse_nulls(data, ("name", "status", "invoiceCurrency", "netTermDays"), "an account")
    row = await get_row(session, account_id, lock=True)
    values = _stored_values(data, "")
    if data.status is not None:
        values["status"] = data.status
    for key, value in values.items():
        setattr(row, key, value)
    if "aliases" in data.model_fields_set:
        aliases = _clean_aliases(data.aliases or [], account_id, "aliases")
        await session.execute(
            delete(AccountHandleRow).where(
                AccountHandleRow.account_id == account_id,
                AccountHandleRow.kind == "ALIAS",
                AccountHandleRow.handle.not_in(aliases),
            )
        )
        await _claim_handles(session, account_id, aliases, "ALIAS", "aliases")
    row.updated_at = await session.scalar(select(func.now()))
    await session.flush()
    return _to_schema(row, await _aliases(session, account_id))


async def list_accounts(
    session: AsyncSession,
    customer_id: str | None,
    status: str | None,
    page_size: int | None,
    next_token: str | None,
) -> Page[Account]:
    """Accounts, oldest first (the caller checks that `customer_id` exists)."""
    stmt = select(AccountRow)
    if customer_id is not None:
        stmt = stmt.where(AccountRow.customer_id == customer_id)
    if status is not None:
        stmt = stmt.where(AccountRow.status == status)
    rows, token = await fetch_page(session, stmt, AccountRow.seq, "accounts", page_size, next_token)
    aliases: dict[str, list[str]] = {r.id: [] for r in rows}
    if rows:
        for account_id, handle in await session.execute(
            select(AccountHandleRow.account_id, AccountHandleRow.handle)
            .where(AccountHandleRow.account_id.in_(list(aliases)), AccountHandleRow.kind == "ALIAS")
            .order_by(AccountHandleRow.handle)
        ):
            aliases[account_id].append(handle)
    return Page[Account](data=[_to_schema(r, aliases[r.id]) for r in rows], nextToken=token)
