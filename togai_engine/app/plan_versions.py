"""Plan versions over time: drafting the next version of a plan and finalizing it, moving accounts per
`migrationMode` (Togai's finalize). Policies: plans/README.md "Versions".

A migration is expressed as associations, so billing needs nothing new: the account's association is split
at the migration instant T (it ends at T; a new one with the same anchor, so cycles do not move, and the same
rateCardOverrides unless the mode ignores them, runs from T on the new version). An association that starts
at or after T is moved in place. T per mode, for an association in effect at `now`:

- NONE: no account moves; attaching the plan from now on gives the new version.
- IMMEDIATE: T = now, a mid-cycle change billed exactly like a plan change (both parts' fixed fees and
  minimums by time share; usage as metered in each part).
- NEXT_CYCLE: T = the end of the account's cycle containing now.
- START_OF_CURRENT_CYCLE: T = the start of that cycle (or the association's start when later): the open
  period is re-priced with the new version. A period already invoiced DUE is never re-priced: such an
  account is skipped and reported (it cannot happen for a cycle containing now, whose end is still ahead).
- *_IGNORE_OVERRIDE: as above, and the account's rateCardOverrides are dropped (it gets the plain version).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.models import AccountRow
from togai_engine.accounts.service import lock_accounts
from togai_engine.app.advance_credits import credit_replaced_advance_invoices, credit_unused_advance_fees
from togai_engine.app.invoices import failure_of
from togai_engine.app.plan_changes import add_billing_rows, rebill
from togai_engine.app.seat_limits import check_seats_allowed, has_seat_limits
from togai_engine.billing.close import LATE_USAGE_PENDING, close_due_cycles, one_connection_per_node
from togai_engine.billing.fence import hold_fences
from togai_engine.billing.models import AccountBillingRow
from togai_engine.billing.state import transaction_connection
from togai_engine.common.schemas import CloseFailure
from togai_engine.cycles import cycle_containing
from togai_engine.errors import InvalidInput
from togai_engine.invoices.models import InvoiceRow
from togai_engine.licenses import service as licenses
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.overrides import PlanRef, check_overrides_fit, deal_problem, version_problem
from togai_engine.plans.schemas import PricePlan, PricePlanCreate
from togai_engine.plans.service import get_plan, get_versions, validate_plan, version_plan
from togai_engine.plans.versions import (
    FinalizeResult,
    MigratedAccount,
    MigrationMode,
    PlanVersionUpdate,
    SkippedAccount,
    activate_draft,
    lock_plan,
    next_content,
    require_draft,
    save_draft,
)
from togai_engine.store.arrays import any_of

# Cycle fields a version may not change while accounts are on the plan: their cycles (anchors, invoices
# already cut) would no longer line up. gracePeriod may change (it moves only when periods become DUE).
_CYCLE_FIELDS = ("interval", "startOffset", "anniversaryCycle")


async def update_price_plan(session: AsyncSession, plan_id: str, update: PlanVersionUpdate,
                            now: datetime) -> PricePlan:
    """The plan's DRAFT next version with `update` (validated like create_price_plan)."""
    await lock_plan(session, plan_id)
    base = await get_plan(session, plan_id)
    content = await validate_plan(session, next_content(base, update))
    await _check_fits_accounts(session, base, content, now)
    return await save_draft(session, plan_id, content, now)


async def _attached(session: AsyncSession, plan_id: str, now: datetime) -> list[tuple[str, str]]:
    """(account id, invoiceCurrency) of the accounts on the plan now or later."""
    rows = await session.execute(
        select(AccountRow.id, AccountRow.invoice_currency).distinct()
        .join(PlanAssociationRow, PlanAssociationRow.account_id == AccountRow.id)
        .where(PlanAssociationRow.price_plan_id == plan_id,
               (PlanAssociationRow.effective_until.is_(None)) | (PlanAssociationRow.effective_until > now))
        .order_by(AccountRow.id))
    return list(rows.tuples().all())


async def _check_fits_accounts(session: AsyncSession, base: PricePlan, content: PricePlanCreate | PricePlan,
                               now: datetime) -> None:
    """Refuses a version that would break the accounts attached to the plan, naming the field."""
    attached = await _attached(session, base.id, now)
    if not attached:
        return
    dropped = [(account, currency) for account, currency in attached if currency not in content.supportedCurrencies]
    if dropped:
        listed = ", ".join(f"{account} ({currency})" for account, currency in dropped[:5])
        raise InvalidInput("supportedCurrencies", (
            f"drops the invoiceCurrency of account(s) on price plan {base.id!r}: {listed}; keep "
            f"{', '.join(sorted({c for _, c in dropped}))} in supportedCurrencies, or move those accounts to "
            "another plan first"))
    old = base.pricingCycleConfig.model_dump(mode="json")
    new = content.pricingCycleConfig.model_dump(mode="json")
    for name in _CYCLE_FIELDS:
        if old.get(name) != new.get(name):
            raise InvalidInput(f"pricingCycleConfig.{name}", (
                f"is {old.get(name)!r} in the plan's version {base.version} and {len(attached)} account(s) are on "
                f"the plan (e.g. {attached[0][0]}); a version keeps the billing cycle (gracePeriod may change). "
                "Create a new plan for another cycle and attach it with update_account"))


async def finalize_price_plan(session: AsyncSession, plan_id: str, mode: MigrationMode,
                              now: datetime) -> FinalizeResult:
    """Activates the plan's DRAFT and moves the accounts on the plan per `mode`."""
    # it reads the accounts on the plan (distributed on Citus) before writing plan_associations (a reference table):
    # over one connection per node from the start, as a close does (billing.close)
    await one_connection_per_node(await transaction_connection(session))
    await lock_plan(session, plan_id)
    draft = await require_draft(session, plan_id)
    base = await get_plan(session, plan_id)
    # every refusal comes before the DRAFT turns ACTIVE: a version read while ACTIVE is cached for the process,
    # and a refused call's would outlive its rollback (the corrected DRAFT would not be what bills)
    drafted = version_plan(draft)
    if mode == "NONE":
        await _check_fits_accounts(session, base, drafted, now)  # accounts attached since the draft
        new = await activate_draft(session, plan_id, mode, now)
        return FinalizeResult(pricePlanId=plan_id, version=new.version, migrationMode=mode)
    keep = not mode.endswith("_IGNORE_OVERRIDE")
    on_plan = (select(PlanAssociationRow).where(
        PlanAssociationRow.price_plan_id == plan_id, PlanAssociationRow.version != drafted.version,
        (PlanAssociationRow.effective_until.is_(None)) | (PlanAssociationRow.effective_until > now))
        .order_by(PlanAssociationRow.account_id, PlanAssociationRow.effective_from)
        .execution_options(populate_existing=True))
    # the accounts' locks (not row locks on plan_associations, a reference table on Citus: lock_accounts), then
    # the associations again, under them: a plan change that committed meanwhile is what is read. No account joins
    # the plan meanwhile: attaching it holds the plan's lock (hold_plan), which lock_plan waited for above
    locked = sorted({a.account_id for a in await session.scalars(on_plan)})
    await lock_accounts(session, locked)
    # the version checked against the accounts attached since the draft under their locks: a currency change
    # (update_account, which holds no plan lock) that committed before them was checked against the version the
    # account is on, not this one, and moving the account would leave it on a version that cannot price its
    # invoiceCurrency (every run fails on it)
    await _check_fits_accounts(session, base, drafted, now)
    await add_billing_rows(session, locked)
    # and their billing fences, all before the first close takes the invoice counter: closing them one by one
    # would wait for the next one's fence while holding the counter, which an ingest batch holding that fence
    # (shared) and closing another account may be waiting for (billing README, "Lock order")
    await hold_fences(await transaction_connection(session), locked, exclusive=True)
    # their due periods closed once, before any check reads what is invoiced (billed_until) and any move; nothing
    # else of theirs changes until their moves (each move touches its own account), so nothing is due again there
    closed = await close_due_cycles(session, now, locked)
    moving = list(await session.scalars(on_plan))
    joined = sorted({a.account_id for a in moving} - set(locked))
    if joined:  # every writer of an association on the plan holds its lock: unreachable, but never unlocked moves
        raise RuntimeError(f"account(s) {', '.join(joined)} joined price plan {plan_id!r} under its lock; the "
                           "finalize was rolled back")
    billings = {row.account_id: row for row in await session.scalars(
        select(AccountBillingRow).where(any_of(AccountBillingRow.account_id, locked))
        .execution_options(populate_existing=True))}
    broken: dict[tuple[str, int], ValidationError | InvalidInput] = {}
    olds = await get_versions(session, {(plan_id, a.version) for a in moving}, problems=broken)
    held = _held_back(plan_id, moving, olds, broken, keep)
    if keep:
        for association in moving:
            old = olds.get((plan_id, association.version))
            if association.id not in held and old is not None and _moves(mode, old, association, now):
                check_overrides_fit(drafted, association.rate_card_overrides, association.account_id, "migrationMode")
    await _check_seats_fit(session, drafted, mode, moving, olds, held, billings, now)
    new = await activate_draft(session, plan_id, mode, now)
    result = FinalizeResult(pricePlanId=plan_id, version=new.version, migrationMode=mode)
    by_account: dict[str, list[PlanAssociationRow]] = {}
    for association in moving:
        by_account.setdefault(association.account_id, []).append(association)
    for account_id, associations in by_account.items():
        billing = billings[account_id]
        # its run failed and left it due (not a failure that only left late usage pending): it moves on the billing
        # progress as stored, which the operator must be told (plans README)
        stuck = failure_of(closed, account_id) if billing.next_run_at is not None and billing.next_run_at <= now \
            else None
        progress = "no period invoiced" if billing.billed_until is None else \
            f"invoiced up to {billing.billed_until.isoformat()}"
        migrated: list[MigratedAccount] = []
        for association in associations:
            if association.id in held:
                result.skippedAccounts.append(SkippedAccount(accountId=account_id, reason=held[association.id]))
                continue
            old = olds[(plan_id, association.version)]
            if not _moves(mode, old, association, now):
                continue  # it ends before it would move
            instant = _instant(mode, old, association, now)
            if billing.billed_until is not None and instant < billing.billed_until:
                result.skippedAccounts.append(SkippedAccount(accountId=account_id, reason=(
                    f"its period from {instant.isoformat()} is already invoiced (DUE up to "
                    f"{billing.billed_until.isoformat()}); it stays on version {association.version}")))
                continue
            overrides = association.rate_card_overrides if keep else None
            await _move(session, association, instant, new.version, overrides, now)
            # an in-advance fee the old version already invoiced past `instant` is credited, as at a plan change
            await credit_unused_advance_fees(session, account_id, instant, now)
            migrated.append(MigratedAccount(accountId=account_id, fromVersion=old.version, effectiveFrom=instant))
        # likewise after the move: a failure that only left its late usage pending billed its invoices (it is not due)
        after = next((f for f in (await rebill(session, billing, account_id, now)).failed
                      if f.accountId == account_id and not f.reason.startswith(LATE_USAGE_PENDING)), None)
        problem = _billing_problem(stuck, after, progress)
        result.migratedAccounts += [m.model_copy(update={"billingProblem": problem}) for m in migrated]
    return result


def _billing_problem(before: CloseFailure | None, after: CloseFailure | None, progress: str) -> str | None:
    """What a migrated account's bill run failing (before its move: `before`, after it: `after`) means for it;
    `progress`: its billing progress as stored when it moved."""
    stands = "nothing more of it is invoiced until that is fixed, and get_account's billingProblem names it"
    if before is not None and after is not None:
        return (f"its bill run fails (before this move and after it): {after.reason}. It was moved as its stored "
                f"billing progress stands ({progress}); {stands}")
    if before is not None:
        return (f"its bill run failed before this move: {before.reason}. It was moved as its stored billing "
                f"progress stood ({progress}); the run after the move billed it")
    if after is not None:
        return f"its bill run fails after this move: {after.reason}; {stands}"
    return None


async def _check_seats_fit(session: AsyncSession, drafted: PricePlan, mode: MigrationMode,
                           moving: list[PlanAssociationRow], olds: dict[tuple[str, int], PricePlan],
                           held: dict[int, str], billings: dict[str, AccountBillingRow], now: datetime) -> None:
    """Refuses a version whose license cards allow fewer seats than an account it moves holds from its migration
    instant on (licenses README: a limit is enforced, never billed past). `billings`: the accounts' billing rows, read
    once their due periods are closed: an association whose instant falls in an invoiced period, which stays where it
    is, is not held to it."""
    if not has_seat_limits(drafted):
        return
    account_ids = sorted({a.account_id for a in moving})
    seats = await licenses.changes_of(session, account_ids)
    for association in moving:
        old = olds.get((drafted.id, association.version))
        if association.id in held or old is None or not _moves(mode, old, association, now):
            continue
        instant = _instant(mode, old, association, now)
        billed_until = billings[association.account_id].billed_until
        if billed_until is None or instant >= billed_until:
            check_seats_allowed(
                association.account_id, seats.get(association.account_id, {}), drafted, instant, "migrationMode",
                until=association.effective_until,
                way_out="or raise the card's config.maxQuantity in the DRAFT (update_price_plan), or finalize with "
                        "NONE")


def _held_back(plan_id: str, moving: list[PlanAssociationRow], olds: dict[tuple[str, int], PricePlan],
               broken: dict[tuple[str, int], ValidationError | InvalidInput], keep: bool) -> dict[int, str]:
    """association id -> why it cannot move: its stored version, or the deal the mode keeps on the version it is
    on, no longer validates (stricter checks since, or a hand edit). Such an account stays where it is and is
    reported, as its own reads report it; it never stops the finalize for the other accounts (plans README). A
    deal that validates on its version but not on the new one refuses the finalize (check_overrides_fit)."""
    held: dict[int, str] = {}
    for association in moving:
        ref = PlanRef(plan_id, association.version, association.id, association.account_id)
        key = (plan_id, association.version)
        if key in broken:
            problem = version_problem(ref, broken[key])
        else:
            problem = deal_problem(ref, association.rate_card_overrides, olds[key]) if keep else None
        if problem is not None:
            held[association.id] = f"it stays on version {association.version}: {problem.reason}"
    return held


def _moves(mode: MigrationMode, plan: PricePlan, association: PlanAssociationRow, now: datetime) -> bool:
    """Whether the association is still on the plan at its migration instant (one that ends first never moves,
    so its deal never meets the new version)."""
    until = association.effective_until
    return until is None or _instant(mode, plan, association, now) < until


def _instant(mode: MigrationMode, plan: PricePlan, association: PlanAssociationRow, now: datetime) -> datetime:
    if association.effective_from >= now:
        return association.effective_from  # not started: it starts on the new version
    if mode.startswith("IMMEDIATE"):
        return now
    cycle = cycle_containing(plan.cycle_config, association.anchor, now)
    if mode.startswith("NEXT_CYCLE"):
        return cycle.end
    return max(cycle.start, association.effective_from)  # START_OF_CURRENT_CYCLE


async def _move(session: AsyncSession, association: PlanAssociationRow, instant: datetime, version: int,
                overrides: dict[str, Any] | None, now: datetime) -> None:
    """From `instant` on the association prices with `version`: split there (same anchor), or moved in place
    when it starts there. DRAFTs from `instant` on are dropped; the caller's re-bill opens them again."""
    await session.execute(delete(InvoiceRow).where(
        InvoiceRow.account_id == association.account_id, InvoiceRow.status == "DRAFT",
        InvoiceRow.association_id == association.id, InvoiceRow.period_start >= instant))
    if instant <= association.effective_from:
        # re-priced from its first instant: its advance invoice is credited whole, the re-opened period gets anew
        await credit_replaced_advance_invoices(session, [association.id], now)
        association.version = version
        association.rate_card_overrides = overrides
        await session.flush()
        return
    until = association.effective_until
    association.effective_until = instant
    await session.flush()
    await session.execute(insert(PlanAssociationRow).values(
        account_id=association.account_id, price_plan_id=association.price_plan_id, effective_from=instant,
        effective_until=until, anchor=association.anchor, version=version, rate_card_overrides=overrides))
