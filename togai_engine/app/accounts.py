"""Account flows that cross domains: onboarding with a plan, plan changes and ends, archive, currency.

Policies (billing README): archiving ends the plan at the archive instant (its last partial period is
billed, prorated, and nothing after it); an ARCHIVED account takes no plan until it is set ACTIVE again,
in the same call or before. A new invoiceCurrency must be one every plan not fully invoiced supports.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts import service as accounts
from togai_engine.accounts.schemas import Account, AccountCreate, AccountUpdate
from togai_engine.app.financials import account_financials
from togai_engine.app.guards import check_currency_change
from togai_engine.app.plan_changes import attach_plan, end_plan, rebill
from togai_engine.billing.close import close_due_cycles
from togai_engine.billing.models import AccountBillingRow
from togai_engine.common.messages import brief
from togai_engine.common.schemas import Page
from togai_engine.common.validation import check_currency, utc_instant
from togai_engine.customers import service as customers
from togai_engine.errors import InvalidInput
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.overrides import deal_difference, validate_overrides
from togai_engine.plans.schemas import PricingRule, RateCards
from togai_engine.plans.service import get_version
from togai_engine.plans.versions import hold_plan
from togai_engine.wallets.ledger import hold_wallet_currency


async def create_account(session: AsyncSession, data: AccountCreate, now: datetime, *, prefix: str = "",
                         rate_card_overrides: RateCards | None = None) -> tuple[Account, bool]:
    """Creates the account (idempotent on its id) and attaches its plan, with the account's deal
    (`rate_card_overrides`, checked and stored as update_account's), when it was created now. Again with an
    existing id: the account as it is when every field matches what is stored, else a Conflict naming the
    first field that differs (accounts README); either way nothing is written."""
    _plan_fields_need_plan(data.pricePlanId, data.effectiveFrom, rate_card_overrides, prefix)
    await customers.get_row(session, data.customerId)
    account, created = await accounts.create_account(session, data, prefix=prefix)
    if not created:
        await _check_plan_replay(session, account, data, rate_card_overrides, prefix)
    elif data.pricePlanId:
        await hold_plan(session, data.pricePlanId)  # before the account's lock (attach_plan)
        row = await accounts.get_row(session, account.id, lock=True)
        await attach_plan(session, row, data.pricePlanId, data.effectiveFrom or now, now,
                          field=f"{prefix}pricePlanId", overrides=rate_card_overrides, by_account_creation=True)
    return account, created


async def _check_plan_replay(session: AsyncSession, account: Account, data: AccountCreate,
                             rate_card_overrides: RateCards | None, prefix: str) -> None:
    """A replay's pricePlanId, effectiveFrom and rateCardOverrides against the association the account's
    creation wrote (marked `by_account_creation`; none when it was created without a plan). Plans attached later
    by update_account are not what the creation asked for, so they are not compared, even one whose call began in
    the creation's microsecond (its created_at is the account's). An omitted effectiveFrom matches: its default
    is the moment of the call, which a retry cannot repeat (grant_credit's rule for its effectiveFrom)."""
    created_on = await session.scalar(select(PlanAssociationRow).where(
        PlanAssociationRow.account_id == account.id, PlanAssociationRow.by_account_creation))
    fix = ("Use update_account (pricePlanId + effectiveFrom, with rateCardOverrides for a deal) to change the "
           "account's plan, or choose another id for a new account")
    stored_plan = None if created_on is None else created_on.price_plan_id
    if data.pricePlanId != stored_plan:
        raise accounts.replay_conflict(account.id, f"{prefix}pricePlanId", "pricePlanId", brief(stored_plan),
                                       brief(data.pricePlanId), fix)
    if created_on is None:
        return  # no plan: _plan_fields_need_plan refused effectiveFrom and a deal without one
    if data.effectiveFrom is not None:
        sent_from = utc_instant(data.effectiveFrom, f"{prefix}effectiveFrom")
        if sent_from != created_on.effective_from:
            raise accounts.replay_conflict(account.id, f"{prefix}effectiveFrom", "effectiveFrom",
                                           brief(created_on.effective_from), brief(sent_from), fix)
    plan = await get_version(session, created_on.price_plan_id, created_on.version)
    field = f"{prefix}rateCardOverrides"
    sent_deal = None if rate_card_overrides is None else await validate_overrides(
        session, plan, rate_card_overrides, field)
    different = deal_difference(created_on.rate_card_overrides, sent_deal)
    if different is not None:
        within, stored, sent = different
        raise accounts.replay_conflict(account.id, field + within, "rateCardOverrides", stored, sent, fix)


def _plan_fields_need_plan(plan_id: str | None, effective_from: datetime | None,
                           rate_card_overrides: RateCards | None, prefix: str = "",
                           pricing_rules_override: list[PricingRule] | None = None) -> None:
    """rateCardOverrides, pricingRulesOverride and effectiveFrom describe the plan attached in the same call:
    refused without one."""
    if plan_id:
        return
    for name, value, what in (("rateCardOverrides", rate_card_overrides, "this deal"),
                              ("pricingRulesOverride", pricing_rules_override, "these rules in place of the plan's")):
        if value is not None:
            raise InvalidInput(f"{prefix}{name}", (
                f"applies to the plan attached in the same call; add pricePlanId (the account is on that plan with "
                f"{what} from effectiveFrom) or drop {name}"))
    if effective_from is not None:
        raise InvalidInput(f"{prefix}effectiveFrom", "is only meaningful with pricePlanId; add pricePlanId or drop it")


async def get_account(session: AsyncSession, account_id: str, now: datetime) -> Account:
    """The account named by its id or an alias, with its financial picture."""
    account_id = await accounts.account_id_of(session, account_id)
    account = await accounts.get_account(session, account_id)
    account.financial = await account_financials(session, account_id, account.invoiceCurrency, now)
    return account


async def list_accounts(session: AsyncSession, customer_id: str | None, status: str | None, page_size: int | None,
                        next_token: str | None) -> Page[Account]:
    if customer_id is not None:
        await customers.get_row(session, customer_id)
    return await accounts.list_accounts(session, customer_id, status, page_size, next_token)


async def update_account(session: AsyncSession, account_id: str, data: AccountUpdate, now: datetime,
                         rate_card_overrides: RateCards | None = None,
                         pricing_rules_override: list[PricingRule] | None = None) -> Account:
    """Profile fields, then the plan: end it (effectiveUntil, or archiving), or attach one (pricePlanId, with
    the account's rateCardOverrides and pricingRulesOverride). The account is named by its id or an alias."""
    _plan_fields_need_plan(data.pricePlanId, data.effectiveFrom, rate_card_overrides,
                           pricing_rules_override=pricing_rules_override)
    if data.effectiveUntil is not None and data.pricePlanId:
        raise InvalidInput("effectiveUntil", "ends the account's plan; it cannot come with pricePlanId. To switch "
                                             "plans send pricePlanId + effectiveFrom alone (the old plan ends there)")
    account_id = await accounts.account_id_of(session, account_id)
    if data.pricePlanId:
        await hold_plan(session, data.pricePlanId)  # before the account's lock (attach_plan)
    row = await accounts.get_row(session, account_id, lock=True)
    if data.invoiceCurrency or data.status:
        # A grant holds this lock shared while it checks the account's currency and status, so neither changes
        # under it (no grant lands on an account being archived). After the account's lock, as everywhere: a PAID
        # invoice's PREPAID grant takes it shared under the account's lock, and grant_credit takes no account lock.
        await hold_wallet_currency(session, account_id, exclusive=True)
    archiving = data.status == "ARCHIVED" and row.status != "ARCHIVED"
    staying_archived = row.status == "ARCHIVED" and data.status != "ACTIVE"
    if data.pricePlanId and (archiving or staying_archived or data.status == "ARCHIVED"):
        raise InvalidInput("pricePlanId", f"account {account_id!r} is or becomes ARCHIVED and takes no plan; set "
                                          "status ACTIVE (in the same call is fine) to attach one")
    if archiving and data.effectiveUntil is not None and utc_instant(data.effectiveUntil, "effectiveUntil") > now:
        # archiving ends the plan at the archive instant: a later end would bill the archived account past it
        raise InvalidInput("effectiveUntil", f"is after now ({now.isoformat()}), but status ARCHIVED ends account "
                                             f"{account_id!r}'s plan now; drop effectiveUntil to archive now, or send "
                                             "effectiveUntil alone and archive the account once that time has passed")
    currency = check_currency(data.invoiceCurrency, "invoiceCurrency") if data.invoiceCurrency else None
    new_currency = currency is not None and currency != row.invoice_currency
    new_terms = data.netTermDays is not None and data.netTermDays != row.net_term_days
    if new_currency or new_terms:
        # Periods whose grace ended before `now` were issued in the old currency, due on the old terms: close them
        # first (the catch-up every read does), so only invoices issued after the change follow the new ones.
        await close_due_cycles(session, now, [account_id])
    if currency is not None and new_currency:
        await check_currency_change(session, account_id, currency)
    account = await accounts.update_account(session, account_id, data)
    if new_currency:
        await _rebill_drafts(session, account_id, now)  # its open DRAFTs now invoice in the new currency
    if data.effectiveUntil is not None:
        await end_plan(session, row, data.effectiveUntil, now)
    elif archiving:
        await end_plan(session, row, now, now, field="status")
    if data.pricePlanId:
        await attach_plan(session, row, data.pricePlanId, data.effectiveFrom or now, now, field="pricePlanId",
                          overrides=rate_card_overrides, rules=pricing_rules_override)
    return account


async def _rebill_drafts(session: AsyncSession, account_id: str, now: datetime) -> None:
    billing = await session.get(AccountBillingRow, account_id)
    if billing is not None:
        await rebill(session, billing, account_id, now)
