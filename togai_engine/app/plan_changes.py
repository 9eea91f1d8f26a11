"""Putting an account on a price plan from an instant on, and ending its plan (Togai's plan association).

Attaching plan P at instant T means: from T on, the account is on P (open-ended). The association in
effect at T ends at T (its partial period closes there); associations that started at or after T are
replaced. Attaching at T the plan that ends exactly at T continues that association instead: undoing a
scheduled change restores the original exactly (same anchor, one period, one fee).

The account is put on the plan's latest ACTIVE version (a DRAFT version is never attached), with the
association's `rateCardOverrides` (the account's deal, plans/overrides.py) when given. Attaching the plan
already in effect is a no-op only when version and overrides are the same too; otherwise it is a change at T
like any other (a new deal, or moving one account to the latest version), except that the plan's cycles go on from
the same anchor (an anniversary plan keeps its billing day); another plan starts its cycles at T.

Ending the plan at T (`effectiveUntil`) ends the association in effect at T there and drops the ones
scheduled after it; nothing is billed after T. T may be in the past, but never inside a period already
invoiced DUE. An IN_ADVANCE fee already invoiced DUE for the cycle T cuts short is credited for the unused
part with a credit note issued in the same call (advance_credits.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.models import AccountRow
from togai_engine.accounts.service import lock_accounts
from togai_engine.app.advance_credits import (
    credit_replaced_advance_invoices,
    credit_unused_advance_fees,
    credited_from,
)
from togai_engine.app.seat_limits import check_plan_allows_seats
from togai_engine.billing.close import CloseSummary, close_due_cycles
from togai_engine.billing.models import AccountBillingRow
from togai_engine.common.validation import utc_instant
from togai_engine.errors import InvalidInput
from togai_engine.events.models import BillingWatermarkRow
from togai_engine.invoices.models import InvoiceRow
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.overrides import deal_difference, validate_overrides
from togai_engine.plans.schemas import PricingRule, RateCards
from togai_engine.plans.service import get_plan
from togai_engine.plans.validation import check_grant_expiries
from togai_engine.store.arrays import rows_of


async def add_billing_rows(session: AsyncSession, account_ids: Sequence[str]) -> None:
    """The accounts' billing row and watermark, written when missing (nothing due: next_run_at NULL)."""
    if account_ids:
        for table in (AccountBillingRow, BillingWatermarkRow):
            await session.execute(insert(table).from_select(["account_id"], rows_of(account_ids))
                                  .on_conflict_do_nothing())


async def locked_billing_row(session: AsyncSession, account_id: str, now: datetime) -> AccountBillingRow:
    """The account's billing row, locked, after invoicing what is due (so every final period is known)."""
    await add_billing_rows(session, [account_id])
    # the account's lock, not a row lock on account_billing (a reference table on Citus: lock_accounts)
    await lock_accounts(session, [account_id])
    await close_due_cycles(session, now, [account_id])
    billing = await session.scalar(
        select(AccountBillingRow).where(AccountBillingRow.account_id == account_id)
        .execution_options(populate_existing=True))
    assert billing is not None
    return billing


def check_not_invoiced(billing: AccountBillingRow, instant: datetime, account_id: str, field: str) -> None:
    if billing.billed_until is not None and instant < billing.billed_until:
        raise InvalidInput(
            field, f"{instant.isoformat()} falls in a period already invoiced (DUE) for account {account_id!r}; "
                   f"invoices are final up to {billing.billed_until.isoformat()}, so choose an instant at or after "
                   "that (a DUE invoice is corrected with a credit note)")


async def _associations(session: AsyncSession, account_id: str) -> list[PlanAssociationRow]:
    """The account's associations; the caller holds the account's lock (exclusive), as every writer of them."""
    return list(await session.scalars(
        select(PlanAssociationRow).where(PlanAssociationRow.account_id == account_id)
        .order_by(PlanAssociationRow.effective_from).execution_options(populate_existing=True)))


async def _recut_from(session: AsyncSession, account_id: str, instant: datetime,
                      associations: list[PlanAssociationRow], now: datetime) -> PlanAssociationRow | None:
    """Drops what starts at or after `instant` (associations, DRAFTs; their advance invoices are credited whole)
    and ends the association in effect at `instant` there; returns that association (None when none was)."""
    await session.execute(delete(InvoiceRow).where(
        InvoiceRow.account_id == account_id, InvoiceRow.status == "DRAFT", InvoiceRow.period_start >= instant))
    replaced = [a.id for a in associations if a.effective_from >= instant]
    if replaced:
        await credit_replaced_advance_invoices(session, replaced, now)
        await session.execute(delete(PlanAssociationRow).where(PlanAssociationRow.id.in_(replaced)))
    current = next((a for a in associations if a.effective_from < instant
                    and (a.effective_until is None or instant < a.effective_until)), None)
    if current is not None:
        await session.execute(update(PlanAssociationRow).where(PlanAssociationRow.id == current.id)
                              .values(effective_until=instant))
    return current


def _just_before(ended: PlanAssociationRow | None, associations: list[PlanAssociationRow], instant: datetime,
                 match: Callable[[PlanAssociationRow], bool]) -> PlanAssociationRow | None:
    """The association in effect right before `instant` that `match`es: the one cut there (`ended`), else one that
    ended there."""
    if ended is not None and match(ended):
        return ended
    return next((a for a in associations if a.effective_until == instant and match(a)), None)


async def rebill(session: AsyncSession, billing: AccountBillingRow, account_id: str, now: datetime) -> CloseSummary:
    """Reruns the account's bill run at `now`, after a change to what it bills. A run already due before `now` keeps
    that instant: an account whose run fails stays due since it first was, which billingProblem says (billing
    README), not since the change."""
    if billing.next_run_at is None or billing.next_run_at > now:
        billing.next_run_at = now
    await session.flush()
    return await close_due_cycles(session, now, [account_id])


async def attach_plan(
    session: AsyncSession,
    account: AccountRow,
    plan_id: str,
    effective_from: datetime,
    now: datetime,
    *,
    field: str = "pricePlanId",
    overrides: RateCards | None = None,
    rules: list[PricingRule] | None = None,
    by_account_creation: bool = False,
) -> None:
    """Puts the account on `plan_id` (its latest ACTIVE version, with `overrides` and `rules`, the account's
    pricingRulesOverride) from `effective_from` on;
    attaching what is already in effect there (for example, a retried call) changes nothing. The caller holds
    the plan's lock shared (plans.versions.hold_plan), taken before the account's lock exclusive (accounts.service.
    get_row with lock): a finalize of the plan under way then either sees this account on the plan or made its
    new version ACTIVE before the version is read here (billing README, "Lock order"). `by_account_creation`: the
    account was created in this transaction, on no plan yet, so the association written is the creation's (a
    replay of the creation compares with it)."""
    prefix = field.removesuffix("pricePlanId")
    from_field = prefix + "effectiveFrom"
    effective_from = utc_instant(effective_from, from_field)
    plan = await get_plan(session, plan_id, field=field)
    deal = None if overrides is None and rules is None else await validate_overrides(
        session, plan, overrides, f"{prefix}rateCardOverrides", rules=rules, rules_field=f"{prefix}pricingRulesOverride")

    def same(association: PlanAssociationRow) -> bool:
        # the same deal as a create_account replay judges it: values compared parsed, cards matched by name
        return (association.price_plan_id == plan_id and association.version == plan.version
                and deal_difference(association.rate_card_overrides, deal) is None)

    if account.invoice_currency not in plan.supportedCurrencies:
        raise InvalidInput(
            field, f"price plan {plan.name!r} ({plan.id}) does not support {account.invoice_currency}, the "
                   f"account's invoiceCurrency; it supports {', '.join(plan.supportedCurrencies)}. Pick a plan "
                   f"that supports {account.invoice_currency} or change the account's invoiceCurrency first")
    billing = await locked_billing_row(session, account.id, now)
    check_not_invoiced(billing, effective_from, account.id, from_field)
    associations = await _associations(session, account.id)
    current = next((a for a in associations if a.effective_from <= effective_from
                    and (a.effective_until is None or effective_from < a.effective_until)), None)
    later = [a for a in associations if a.effective_from > effective_from]
    if current is not None and same(current) and current.effective_until is None and not later:
        return  # already on this plan from before effective_from, open-ended
    # a plan stored before the expiry rule is refused only when attached anew: a retry of its attach changes nothing
    check_grant_expiries(plan, field)
    await check_plan_allows_seats(session, account.id, plan, effective_from, field)

    ended = await _recut_from(session, account.id, effective_from, associations, now)
    # The same plan continues across effective_from (it was in effect just before, or it ended exactly there):
    # extend that association rather than start a new one, keeping its anchor and its single period. Not once
    # the end is invoiced: its last period was billed as cut short, so the plan starts again, cut the same way
    # (on the same anchor, so an anniversary plan keeps its billing day).
    end_invoiced = billing.billed_until is not None and billing.billed_until >= effective_from
    same_before = _just_before(ended, associations, effective_from, same)
    continued = None if end_invoiced and same_before is not ended else same_before
    # Nor once a cut of it (the end or change undone now) credited time from effective_from on as unused (an
    # in-advance fee, PREPAID credits): continuing would use that time unpaid, so the association ends at
    # effective_from (the unused rest credited) and a new one invoices the rest in advance again.
    if continued is not None and await credited_from(session, continued.id, effective_from):
        continued = None
    if ended is not None and continued is not ended:
        await credit_unused_advance_fees(session, account.id, effective_from, now)
    if continued is not None:
        await session.execute(update(PlanAssociationRow).where(PlanAssociationRow.id == continued.id)
                              .values(effective_until=None))
    else:
        # The same plan right before effective_from (whatever its deal or version: the account's run on the plan
        # goes on, cycles.run_starts) keeps its anchor, so an anniversary plan keeps its billing day, as a version
        # migration does; another plan, or the plan after a gap, starts its cycles at effective_from (billing README, "Plan change mid-cycle").
        follows = _just_before(ended, associations, effective_from, lambda a: a.price_plan_id == plan_id)
        await session.execute(insert(PlanAssociationRow).values(
            account_id=account.id, price_plan_id=plan_id, effective_from=effective_from,
            effective_until=None, anchor=effective_from if follows is None else follows.anchor,
            version=plan.version, rate_card_overrides=deal, by_account_creation=by_account_creation))
    await rebill(session, billing, account.id, now)


async def end_plan(session: AsyncSession, account: AccountRow, effective_until: datetime, now: datetime,
                   *, field: str = "effectiveUntil") -> bool:
    """Ends the account's plan at `effective_until`: the association in effect then ends there, later ones
    are dropped. Returns False when there was nothing to end (no plan in effect then or after: a retry)."""
    effective_until = utc_instant(effective_until, field)
    billing = await locked_billing_row(session, account.id, now)
    associations = await _associations(session, account.id)
    affected = [a for a in associations if a.effective_until is None or a.effective_until > effective_until]
    if not affected:
        return False
    check_not_invoiced(billing, effective_until, account.id, field)
    await _recut_from(session, account.id, effective_until, associations, now)
    await credit_unused_advance_fees(session, account.id, effective_until, now)
    await rebill(session, billing, account.id, now)
    return True
