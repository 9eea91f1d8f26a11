"""An account's financial picture and the catch-up reads of its money: invoices and wallet.

Every read here first brings the accounts it reads up to `now` (close_due_cycles: only accounts with a
bill run due are touched), then reads. One account's data that cannot be billed is reported for that
account (a `problem`), never raised into another account's read.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts import service as accounts
from togai_engine.accounts.schemas import AccountFinancial, CurrencyAmount, Period, PlanRef
from togai_engine.app.invoices import failure_of, missing_draft_problem
from togai_engine.billing.close import CloseSummary, close_due_cycles
from togai_engine.billing.current import current_plan_and_cycle, load_schedule, unclosed_periods
from togai_engine.billing.models import AccountBillingRow
from togai_engine.billing.schedule import Association
from togai_engine.errors import EngineError
from togai_engine.invoices import late_usage
from togai_engine.invoices import service as invoices
from togai_engine.invoices.models import InvoiceRow
from togai_engine.plans.overrides import UnresolvedPlan
from togai_engine.pricing import round_money
from togai_engine.wallets import service as wallets
from togai_engine.wallets.schemas import GrantCreditInput, GrantCreditResult, PayableCards, WalletBalance, WalletLedger


async def accrued_charges(session: AsyncSession, account_id: str, currency: str, now: datetime,
                          plan_in_effect: bool) -> Decimal | None:
    """Charges of the started, not yet DUE periods; None when there are none and no plan is in effect."""
    accrued = await invoices.accrued_charges(session, account_id, currency, now)
    if accrued is None and plan_in_effect:
        return round_money(Decimal(0), currency)
    return accrued


async def _accrued_or_problem(session: AsyncSession, account_id: str, currency: str, now: datetime,
                              summary: CloseSummary, in_effect: Association | None
                              ) -> tuple[Decimal | None, EngineError | None]:
    """(accrued charges, None), or (None, why they are unknown), the association `in_effect` at `now` given:
    get_account and get_wallet_balance say the same."""
    try:
        accrued = await accrued_charges(session, account_id, currency, now, in_effect is not None)
    except EngineError as exc:
        return None, exc
    failure = failure_of(summary, account_id)
    if failure is not None and in_effect is not None and await invoices.current_draft(session, account_id, now) is None:
        # no DRAFT because the run cannot open its plan's first one: its charges are unknown, not 0.00 (get_invoice
        # names the same problem)
        return None, EngineError(missing_draft_problem(account_id, in_effect, failure))
    return accrued, None


async def _billing_problem(session: AsyncSession, account_id: str, now: datetime, summary: CloseSummary) -> str | None:
    """Why the bill run cannot bill the account, when this read's run (which retries it, as every run does) failed
    on it and left it due; None when it bills (a failure that only left its late usage pending closed its invoices:
    pendingLateUsage names that one)."""
    failure = failure_of(summary, account_id)
    if failure is None:
        return None
    due_since = await session.scalar(select(AccountBillingRow.next_run_at)
                                     .where(AccountBillingRow.account_id == account_id))
    if due_since is None or due_since > now:
        return None
    return (f"account {account_id!r} cannot be billed: its bill run has been due since {due_since.isoformat()} and "
            f"fails (every bill run and read retries it; the other accounts are billed): {failure.reason}. Until "
            "that is fixed nothing of it is invoiced: no period becomes DUE and no new period opens its DRAFT")


async def account_financials(session: AsyncSession, account_id: str, currency: str, now: datetime) -> AccountFinancial:
    """get_account's financial section: plan, current cycle, accrued charges, wallet, outstanding, and why the
    account cannot be billed when its bill run fails."""
    summary = await close_due_cycles(session, now, [account_id])
    financial = AccountFinancial(currency=currency, billingProblem=await _billing_problem(
        session, account_id, now, summary))
    # loaded once, after closing: the plan in effect, and the periods a wallet's expired grant may be held for
    schedule = await load_schedule(session, account_id)
    # a deal that no longer validates leaves the plan, its period and the rest known: only the charges are not
    current, unresolved = await schedule.in_effect(session, now)
    if current is not None:
        plan, cycle, association = current
        financial.pricePlan = PlanRef(id=plan.id, name=plan.name, effectiveFrom=association.effective_from,
                                      effectiveUntil=association.effective_until, version=association.version,
                                      isOverridden=association.overridden)
        financial.currentCycle = Period(start=cycle.start, end=cycle.end)
    problem: EngineError | None = unresolved
    if unresolved is None:
        financial.accruedCharges, problem = await _accrued_or_problem(
            session, account_id, currency, now, summary, None if current is None else current[2])
    financial.problem = None if problem is None else problem.message
    has_invoices = await session.scalar(select(exists().where(InvoiceRow.account_id == account_id)))
    owed = await invoices.outstanding_by_currency(session, account_id)
    financial.outstandingByCurrency = [CurrencyAmount(currency=c, amount=amount) for c, amount in owed.items()]
    if current is not None or unresolved is not None or has_invoices:
        financial.outstanding = owed.get(currency, round_money(Decimal(0), currency))
    try:
        wallet = await wallets.wallet_summary(session, account_id, now, financial.accruedCharges,
                                              unclosed=schedule.unclosed_periods)
    except UnresolvedPlan as exc:
        # a grant expired unrecorded, and whether it is held for a period not invoiced yet needs the plan that
        # cannot be resolved: its balance is unknown (the ledger without its EXPIRY would count the whole grant)
        wallet = None
        if financial.problem is None:
            financial.problem = exc.message
    if wallet is not None and financial.problem is not None:  # the charges are unknown, so what credit is left is too
        wallet.availableBalance = None
    financial.wallet = wallet
    # owed and not invoiced yet: a DRAFT that would have carried it may be gone (a plan end), or none may come
    financial.pendingLateUsage = await late_usage.pending_for_account(session, account_id, currency, now)
    return financial


async def wallet_balance(session: AsyncSession, account_id: str, now: datetime) -> WalletBalance:
    account = await accounts.get_row(session, await accounts.account_id_of(session, account_id))
    account_id = account.id
    summary = await close_due_cycles(session, now, [account_id])
    schedule = await load_schedule(session, account_id)  # once, after closing (as account_financials)
    current = schedule.plan_and_cycle(now)
    accrued, problem = await _accrued_or_problem(session, account_id, account.invoice_currency, now, summary,
                                                 None if current is None else current[2])
    if problem is not None:  # refused, as get_invoice is: an availableBalance the charges were left out of misleads
        raise problem
    return await wallets.get_wallet_balance(session, account_id, now, accrued, unclosed=schedule.unclosed_periods)


async def wallet_entries(session: AsyncSession, account_id: str, now: datetime, *, page_size: int | None,
                         next_token: str | None) -> WalletLedger:
    account_id = await accounts.account_id_of(session, account_id)
    await close_due_cycles(session, now, [account_id])
    return await wallets.list_wallet_entries(session, account_id, now, unclosed=unclosed_periods, page_size=page_size,
                                             next_token=next_token)


async def grant_credit(session: AsyncSession, data: GrantCreditInput, now: datetime) -> GrantCreditResult:
    # by its id, whatever the caller named it by: a retry through an alias is the same grant
    data = data.model_copy(update={"accountId": await accounts.account_id_of(session, data.accountId)})
    return await wallets.grant_credit(session, data, now, unclosed=unclosed_periods, payable=payable_cards)


async def payable_cards(session: AsyncSession, account_id: str, now: datetime) -> PayableCards | None:
    """The cards a grant limited to rate cards may name: those of the plan the account is on now (None: no plan).
    Read only for a new grant: a retry of a committed one replays it without resolving the plan again."""
    current = await current_plan_and_cycle(session, account_id, now)
    if current is None:
        return None
    plan = current[0]
    return PayableCards(f"price plan {plan.name!r} ({plan.id})", tuple(plan.rateCards.payable_names()))
