"""Ids by prefix and short catalog listings, for MCP argument completion and resource listings.

Every lookup is bounded (`limit`) and served by an index: a prefix becomes a byte-order range
(`~>=~` / `~<~`) over the text_pattern_ops indexes of migration 0014, which hold whatever the database's
collation is (a default-collation primary key serves a prefix only under the C collation). Results come
in that byte order, except an account's invoices, newest billing period first.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import String

from togai_engine.accounts import service as accounts
from togai_engine.invoices.display import invoice_number

IdKind = Literal["account", "customer", "invoice", "price_plan", "usage_meter"]

# kind -> (table, id column); account ids and aliases share one key space (account_handles)
_ID_COLUMNS: dict[str, tuple[str, str]] = {
    "account": ("account_handles", "handle"),
    "customer": ("customers", "id"),
    "invoice": ("invoices", "id"),
    "price_plan": ("price_plans", "id"),
    "usage_meter": ("usage_meters", "id"),
}
MAX_CODE_POINT = 0x10FFFF
SURROGATES = range(0xD800, 0xE000)


@dataclass(frozen=True)
class Matches:
    values: list[str]
    has_more: bool


def prefix_successor(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix`, in byte order (UTF-8 byte order is
    code point order); None when there is none (empty prefix, or only U+10FFFF characters)."""
    chars = list(prefix)
    while chars:
        following = ord(chars.pop()) + 1
        if following in SURROGATES:  # not storable text: the next storable character
            following = SURROGATES.stop
        if following <= MAX_CODE_POINT:
            return "".join(chars) + chr(following)
    return None


def _range(column: str, prefix: str) -> tuple[str, dict[str, str]]:
    upper = prefix_successor(prefix)
    if upper is None:
        return f"{column} ~>=~ :prefix", {"prefix": prefix}
    return f"{column} ~>=~ :prefix AND {column} ~<~ :upper", {"prefix": prefix, "upper": upper}


def _matches(values: list[str], limit: int) -> Matches:
    return Matches(values=values[:limit], has_more=len(values) > limit)


async def ids_with_prefix(session: AsyncSession, kind: IdKind, prefix: str, limit: int) -> Matches:
    """Ids of `kind` starting with `prefix`, at most `limit` (account: ids and aliases alike)."""
    if "\x00" in prefix:  # no stored id holds one
        return Matches(values=[], has_more=False)
    table, column = _ID_COLUMNS[kind]
    condition, params = _range(column, prefix)
    rows = await session.execute(
        text(f"SELECT {column} FROM {table} WHERE {condition} ORDER BY {column} USING ~<~ LIMIT :n"),
        {**params, "n": limit + 1})
    return _matches(list(rows.scalars()), limit)


async def account_invoice_ids(session: AsyncSession, account: str, prefix: str, limit: int) -> Matches:
    """The invoices of one account (id or alias) whose id starts with `prefix`, newest period first."""
    account_id = await accounts.resolve_account_id(session, account)
    if account_id is None or "\x00" in prefix:
        return Matches(values=[], has_more=False)
    condition, params = _range("id", prefix)
    rows = await session.execute(
        text(f"SELECT id FROM invoices WHERE account_id = :account AND {condition} "
             "ORDER BY period_start DESC LIMIT :n"),
        {**params, "account": account_id, "n": limit + 1})
    return _matches(list(rows.scalars()), limit)


async def feature_ids(session: AsyncSession, prefix: str, limit: int, *, account: str | None = None) -> Matches:
    """Feature ids of the plans' billing-entitlement rate cards starting with `prefix`: of their ACTIVE versions (a
    version adds and drops features; a DRAFT grants none yet), with `account` only of the plan versions that account
    has been on. Plans are a small catalog, read whole."""
    if "\x00" in prefix:
        return Matches(values=[], has_more=False)
    plans = "(SELECT v.* FROM price_plan_versions v WHERE v.status = 'ACTIVE')"
    params: dict[str, object] = {"prefix": prefix, "n": limit + 1}
    if account is not None:
        account_id = await accounts.resolve_account_id(session, account)
        if account_id is None:
            return Matches(values=[], has_more=False)
        plans = ("(SELECT v.* FROM price_plan_versions v WHERE (v.plan_id, v.version) IN "
                 "(SELECT price_plan_id, version FROM plan_associations WHERE account_id = :account))")
        params["account"] = account_id
    rows = await session.execute(text(
        "SELECT DISTINCT card ->> 'featureId' AS feature FROM " + plans + " AS plan, "
        "jsonb_array_elements(coalesce(plan.definition -> 'rateCards' -> 'billingEntitlementRateCards', '[]'))"
        " AS card WHERE starts_with(card ->> 'featureId', :prefix) ORDER BY 1 LIMIT :n"), params)
    return _matches(list(rows.scalars()), limit)


@dataclass(frozen=True)
class Listed:
    """One catalog entry for a resource listing: its id and a human label."""

    id: str
    label: str
    detail: str = ""


async def recent(session: AsyncSession, kind: Literal["account", "invoice", "price_plan", "usage_meter"],
                 limit: int) -> list[Listed]:
    """The newest `limit` entries of a catalog (by creation, or billing period for invoices)."""
    if kind == "invoice":
        rows = await session.execute(text(
            "SELECT id, account_id, period_start, period_end, sequence_number FROM invoices "
            "ORDER BY period_start DESC, seq DESC LIMIT :n"), {"n": limit})
        return [Listed(id=row.id, label=_invoice_label(row.sequence_number),
                       detail=f"account {row.account_id}, period {_day(row.period_start)} to {_day(row.period_end)}")
                for row in rows]
    table = {"account": "accounts", "price_plan": "price_plans", "usage_meter": "usage_meters"}[kind]
    rows = await session.execute(text(f"SELECT id, name FROM {table} ORDER BY seq DESC LIMIT :n"), {"n": limit})
    return [Listed(id=row.id, label=row.name) for row in rows]


def _invoice_label(number: int | None) -> str:
    shown = invoice_number(number)
    return f"Invoice {shown}" if shown is not None else "Invoice, not numbered yet (DRAFT)"


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


@dataclass
class AccountHandles:
    """What names an account in resource URIs: its id and aliases, and its DRAFT invoices."""

    handles: list[str] = field(default_factory=list)
    draft_invoice_ids: list[str] = field(default_factory=list)


async def accounts_and_drafts(session: AsyncSession, handles: Collection[str]) -> dict[str, AccountHandles]:
    """For the accounts named by `handles` (ids or aliases; unknown ones left out): every handle of each
    and its DRAFT invoices, keyed by account id."""
    account_ids = sorted(set((await accounts.resolve_account_ids(session, handles)).values()))
    if not account_ids:
        return {}
    found = {account_id: AccountHandles() for account_id in account_ids}
    ids = bindparam("ids", account_ids, type_=ARRAY(String))
    for account_id, handle in await session.execute(
            text("SELECT account_id, handle FROM account_handles WHERE account_id = ANY(:ids)").bindparams(ids)):
        found[account_id].handles.append(handle)
    for account_id, invoice_id in await session.execute(
            text("SELECT account_id, id FROM invoices WHERE status = 'DRAFT' AND account_id = ANY(:ids)")
            .bindparams(ids)):
        found[account_id].draft_invoice_ids.append(invoice_id)
    return found
