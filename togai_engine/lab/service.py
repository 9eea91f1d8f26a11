"""The pricing lab: quote a plan for given usage, price real usage under candidate plans, apply plan files.

`calculate_revenue` and `simulate_price_plans` only read: they switch their transaction to READ ONLY
first, so PostgreSQL itself refuses any write (inline plans are validated, never stored). Both
price through `compose_invoice` on billing's own periods and quantities (see compare.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.models import AccountHandleRow, AccountRow
from togai_engine.accounts.service import account_id_of
from togai_engine.accounts.service import get_row as get_account_row
from togai_engine.billing.current import current_plan_and_cycle
from togai_engine.billing.schedule import BillingPeriod, account_timeline
from togai_engine.billing.state import AccountState, load_states
from togai_engine.common.numbers import EXACT_MONEY_CONTEXT
from togai_engine.common.progress import ProgressCallback
from togai_engine.common.validation import utc_instant
from togai_engine.customers.service import get_row as get_customer_row
from togai_engine.errors import Conflict, EngineError, InvalidInput
from togai_engine.invoices.change_credits import change_credited
from togai_engine.invoices.compose import CycleUsage
from togai_engine.invoices.late_usage import late_adjustments
from togai_engine.invoices.models import ADVANCED, InvoiceRow
from togai_engine.invoices.periods import cycle_usage
from togai_engine.lab.candidates import (
    Candidate,
    parse_inline,
    priced_for,
    resolve,
    resolve_candidates,
    validation_path,
)
from togai_engine.lab.compare import AccountUsage, InvoiceFact, compare_account, summarize
from togai_engine.lab.quote import quote
from togai_engine.lab.schemas import (
    AccountComparison,
    AppliedMeter,
    AppliedPlan,
    CandidateInfo,
    RevenueQuote,
    SimulationResult,
    SkippedAccount,
)
from togai_engine.licenses.service import Seats, seats_by_window
from togai_engine.meters import service as meters
from togai_engine.meters.schemas import UsageMeterCreate
from togai_engine.meters.usage import QuantitySource, Window, meter_quantities, quantities_by_window
from togai_engine.plans import service as plans
from togai_engine.plans.models import PricePlanRow
from togai_engine.plans.schemas import PricePlan
from togai_engine.plans.validation import normalize_plan
from togai_engine.pricing import parse_decimal
from togai_engine.store.arrays import any_of

MAX_CANDIDATES = 5
DEFAULT_LAST_CYCLES = 3
MAX_LAST_CYCLES = 120
# Accounts priced per step of a simulation: their quantities and invoices are read together, and progress
# is reported after each step (a caller can also stop the work there).
SIMULATION_STEP_ACCOUNTS = 50

ALIGNMENT_NOTE = (
    "Candidates are priced on each account's own billing periods (from its price plan history), so amounts "
    "compare period by period; a candidate whose pricingCycleConfig cuts other cycles there (another interval or "
    "billing day) is not priced on those periods and is listed as unsupported for the account, with the reason. "
    "Fixed fees and minimum commitments of a partial period are prorated against the account's cycle, as on its "
    "invoices.")
ACTUAL_NOTE = (
    "actual is the invoice's totalAmount before wallet credits (status DUE, PAID or VOID), with the advance invoice "
    "of an association's first period, less the credit notes billing issued itself when a plan change or end cut "
    "what they charged ahead (unused in-advance fees, PREPAID credits of cycles the plan no longer reached); credit "
    "notes issued by hand are not deducted. For a period not invoiced yet (DRAFT) it is what the account's plan "
    "charges for the usage recorded so far. Candidates' credit grants and entitlements are not simulated.")

ZERO = Decimal(0)
_T = TypeVar("_T")


async def read_only(session: AsyncSession) -> None:
    """From here on PostgreSQL refuses every write in this transaction."""
    await session.execute(text("SET TRANSACTION READ ONLY"))


# --- quote --------------------------------------------------------------------------------------


async def calculate_revenue(
    session: AsyncSession,
    *,
    plan: str | Mapping[str, Any] | None,
    usage: Mapping[str, object],
    currency: str | None,
    now: datetime,
    plan_field: str = "pricePlanId",
    inline_field: str = "pricePlan",
    licenses: Mapping[str, object] | None = None,
    cycle_index: int = 0,
    account: str | None = None,
    account_field: str = "accountId",
) -> RevenueQuote:
    """What `plan` (a plan id, or an inline plan) charges for one full cycle with `usage` per meter and
    `licenses` seats per license id. For `account` (an id or alias; Togai's pricePlanDetailsConfig ACCOUNT):
    without a plan, the plan it is on now; its own plan version is priced with its deal (lab.candidates.priced_for,
    as simulate_price_plan does), and the currency defaults to its invoiceCurrency."""
    await read_only(session)
    own: PricePlan | None = None
    account_id = account_currency = None
    if account is not None:
        account_id, account_currency, own = await _account_plan(session, account, now)
    if plan is None:
        if own is not None:
            priced, stored = own, True
        elif account_id is not None:
            raise InvalidInput(account_field, f"account {account_id!r} has no price plan in effect at {now.isoformat()}; "
                                              "pass pricePlanId or pricePlan to quote one for it, or attach a plan "
                                              "(update_account pricePlanId)")
        else:
            raise InvalidInput(plan_field, f"pass pricePlanId (a stored plan) or {inline_field} (an inline plan in "
                                           "create_price_plan's shape)")
    else:
        field = plan_field if isinstance(plan, str) else inline_field
        priced, stored = await resolve(session, plan, field, now)
        priced = priced_for(priced, stored, own)
    quantities = {meter: _quantity(value, f"usage.{meter}") for meter, value in usage.items()}
    currency = (account_currency or priced.supportedCurrencies[0]) if currency is None else currency.strip().upper()
    if currency not in priced.supportedCurrencies:
        whose = " (the account's invoiceCurrency)" if currency == account_currency else ""
        raise InvalidInput("currency", f"{priced.name!r} does not price {currency}{whose}; it supports "
                                       f"{', '.join(priced.supportedCurrencies)}")
    result = quote(priced, currency, quantities, at=now, stored=stored,
                   seats=_seats_held(priced, licenses or {}), cycle_index=cycle_index)
    return result.model_copy(update={"accountId": account_id}) if account_id is not None else result


async def _account_plan(session: AsyncSession, handle: str, now: datetime
                        ) -> tuple[str, str, PricePlan | None]:
    """(account id, invoiceCurrency, the plan that prices it now with its deal, or None), as billing reads it."""
    account_id = await account_id_of(session, handle)
    currency = (await get_account_row(session, account_id)).invoice_currency
    current = await current_plan_and_cycle(session, account_id, now)
    return account_id, currency, None if current is None else current[0]


def _seats_held(plan: PricePlan, licenses: Mapping[str, object]) -> dict[str, int]:
    seats: dict[str, int] = {}
    for license_id, value in licenses.items():
        field = f"licenses.{license_id}"
        card = plan.license_card(license_id)
        if card is None:
            ids = ", ".join(c.id for c in plan.rateCards.licenseRateCards) or "none"
            raise InvalidInput(field, f"{plan.name!r} has no license rate card {license_id!r} (its license ids: {ids})")
        count = _quantity(value, field)
        if count != count.to_integral_value():
            raise InvalidInput(field, f"seats are whole numbers; got {count}")
        maximum = card.config.maxQuantity if card.config is not None else None
        if maximum is not None and count > maximum:
            # update_license refuses more, so no invoice of this plan ever prices them
            raise InvalidInput(field, f"{count} seats is above the card's config.maxQuantity {maximum}, the most "
                                      f"update_license lets an account hold; quote at most {maximum}")
        seats[license_id] = int(count)
    return seats


def _quantity(value: object, field: str) -> Decimal:
    quantity = parse_decimal(value, field)
    if quantity < 0:
        raise InvalidInput(field, f"must be 0 or more; got {quantity}")
    return quantity


# --- simulation ---------------------------------------------------------------------------------


async def simulate_price_plans(
    session: AsyncSession,
    candidates: Sequence[str | Mapping[str, Any]],
    *,
    now: datetime,
    account_ids: Sequence[str] | None = None,
    customer_id: str | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    last_cycles: int | None = None,
    top: int = 5,
    candidates_field: str = "candidates",
    usage: QuantitySource = meter_quantities,
    progress: ProgressCallback | None = None,
) -> SimulationResult:
    """Per account and billing period: what it was (or, for a DRAFT, would be) charged, and what each
    candidate plan charges for the same period and usage. `progress(accounts priced, accounts to price,
    message)` follows each step of SIMULATION_STEP_ACCOUNTS accounts."""
    await read_only(session)
    notes = [ALIGNMENT_NOTE, ACTUAL_NOTE]
    if start_time is None and end_time is None and last_cycles is None:
        last_cycles = DEFAULT_LAST_CYCLES
        notes.append(f"No range given: each account's last {DEFAULT_LAST_CYCLES} billing periods, the open one "
                     "included.")
    _check_range(start_time, end_time, last_cycles)
    chosen = await resolve_candidates(session, candidates, now, field=candidates_field, limit=MAX_CANDIDATES)
    if any(not c.stored for c in chosen):
        notes.append("Inline plans were validated like create_price_plan and priced in memory; nothing was stored.")
    ids = await _account_ids(session, account_ids, customer_id)
    states, plans_by_id = await load_states(session, ids)

    skipped: list[SkippedAccount] = []
    selected: dict[str, list[BillingPeriod]] = {}
    for account_id in ids:
        state = states[account_id]
        try:
            periods, reason = _periods_in_range(state, plans_by_id, now, start_time, end_time, last_cycles)
        except EngineError as exc:  # e.g. its stored deal no longer validates: its bill runs report it too
            periods, reason = [], exc.message
        if reason is not None:
            skipped.append(SkippedAccount(accountId=account_id, reason=reason))
        else:
            selected[account_id] = periods

    meter_ids = {meter_id for c in chosen for meter_id in c.plan.billed_meter_ids}
    compared: list[AccountComparison] = []
    to_price = list(selected.items())
    if progress is not None and to_price:
        await progress(0, len(to_price), f"pricing {len(to_price)} account(s) under {len(chosen)} candidate(s)")
    for first in range(0, len(to_price), SIMULATION_STEP_ACCOUNTS):
        step = dict(to_price[first:first + SIMULATION_STEP_ACCOUNTS])
        quantities, around = await _quantities(session, usage, step, meter_ids)
        seats = await _seats(session, step)
        invoices = await _invoices(session, step)
        for account_id, periods in step.items():
            state = states[account_id]
            account = AccountUsage(
                account_id=account_id, customer_id=state.customer_id, currency=state.currency, periods=periods,
                invoices=invoices.get(account_id, {}), quantities=quantities.get(account_id, {}),
                seats=seats.get(account_id, {}), cycle_usage=around.get(account_id, {}))
            try:
                compared.append(compare_account(account, chosen))
            except EngineError as exc:  # e.g. its own plan no longer prices its currency: it cannot be billed either
                skipped.append(SkippedAccount(accountId=account_id, reason=exc.message))
        if progress is not None:
            done = first + len(step)
            await progress(done, len(to_price), f"priced {done} of {len(to_price)} account(s)")
    skipped.sort(key=lambda s: s.accountId)
    return SimulationResult(
        asOf=now, startTime=start_time, endTime=end_time, lastCycles=last_cycles,
        candidates=_candidate_infos(chosen, compared), totals=summarize(compared, chosen, top),
        accountsSimulated=len(compared), accounts=compared, accountsShown=len(compared),
        skipped=skipped, skippedCount=len(skipped), notes=notes,
    )


def _check_range(start: datetime | None, end: datetime | None, last_cycles: int | None) -> None:
    if last_cycles is not None:
        if start is not None or end is not None:
            raise InvalidInput("lastCycles", "give either lastCycles or startTime and endTime, not both")
        if not 1 <= last_cycles <= MAX_LAST_CYCLES:
            raise InvalidInput("lastCycles", f"must be 1 to {MAX_LAST_CYCLES}; got {last_cycles}")
        return
    if start is None or end is None:
        missing = "startTime" if start is None else "endTime"
        raise InvalidInput(missing, "give startTime and endTime together (or lastCycles instead)")
    for name, value in (("startTime", start), ("endTime", end)):
        utc_instant(value, name)
    if end <= start:
        raise InvalidInput("endTime", f"must be after startTime ({start.isoformat()}); the range is [start, end)")


async def _account_ids(session: AsyncSession, account_ids: Sequence[str] | None, customer_id: str | None) -> list[str]:
    if account_ids is not None and customer_id is not None:
        raise InvalidInput("customerId", "give accountIds or customerId (or neither, for every account), not both")
    if customer_id is not None:
        await get_customer_row(session, customer_id)
        return list(await session.scalars(
            select(AccountRow.id).where(AccountRow.customer_id == customer_id).order_by(AccountRow.id)))
    if account_ids is None:
        return list(await session.scalars(select(AccountRow.id).order_by(AccountRow.id)))
    if not account_ids:
        raise InvalidInput("accountIds", "is empty; list account ids, or omit it to simulate every account")
    rows = await session.execute(
        select(AccountHandleRow.handle, AccountHandleRow.account_id).where(any_of(AccountHandleRow.handle, account_ids)))
    found = dict(rows.tuples().all())
    for i, handle in enumerate(account_ids):
        if handle not in found:
            raise InvalidInput(f"accountIds[{i}]", f"account {handle!r} does not exist; list_accounts shows the ids")
    return sorted({found[h] for h in account_ids})


def _periods_in_range(
    state: AccountState, plans_by_id: Mapping[str, PricePlan], now: datetime, start: datetime | None,
    end: datetime | None, last_cycles: int | None,
) -> tuple[list[BillingPeriod], str | None]:
    """The account's billing periods to compare, or the reason it has none."""
    if not state.associations:
        return [], ("no price plan attached, so it has no billing periods to compare on; attach one with "
                    "update_account(pricePlanId, effectiveFrom)")
    # Invoicing's own schedule from the account's first plan on: the periods its invoices have (periods
    # before billed_until never change, so the full timeline agrees with the invoiced one).
    timeline = account_timeline(state.associations, plans_by_id, None, now)
    started = timeline.due + timeline.open
    if not started:
        return [], f"its price plan starts after {now.isoformat()}: no billing period has started yet"
    if last_cycles is not None:
        return started[-last_cycles:], None
    assert start is not None and end is not None
    periods = [p for p in started if p.period.end > start and p.period.start < end]
    if not periods:
        return [], f"no billing period overlaps [{start.isoformat()}, {end.isoformat()}) by {now.isoformat()}"
    return periods, None


async def _quantities(
    session: AsyncSession, usage: QuantitySource, selected: Mapping[str, Sequence[BillingPeriod]], meter_ids: set[str]
) -> tuple[dict[str, dict[datetime, dict[str, Decimal]]], dict[str, dict[datetime, CycleUsage | None]]]:
    """account -> period start -> {meter: quantity}: the account's own plan's meters and the candidates'; and
    account -> period start -> the quota's cycle usage around the period (its overage's base, as billing reads it)."""
    wanted = []
    for account_id, periods in selected.items():
        for bp in periods:
            meters = sorted(meter_ids | set(bp.plan.billed_meter_ids))
            wanted.append((account_id, bp.period.start, bp.period.end, meters))
            wanted += [(a, start, end, meters) for a, start, end in bp.quota_windows or ()]
    found = await quantities_by_window(session, wanted, source=usage)
    around: dict[str, dict[datetime, CycleUsage | None]] = defaultdict(dict)
    for account_id, periods in selected.items():
        for bp in periods:
            around[account_id][bp.period.start] = cycle_usage(found, bp.quota_windows)
    # the quota windows start where an earlier period may: only the periods' own windows are keyed by their start
    own = {(a, bp.period.start, bp.period.end) for a, periods in selected.items() for bp in periods}
    return _by_account({window: value for window, value in found.items() if window in own}), around


async def _seats(
    session: AsyncSession, selected: Mapping[str, Sequence[BillingPeriod]]
) -> dict[str, dict[datetime, Seats]]:
    """account -> period start -> license id -> its seat spans (every candidate prices the same seats)."""
    found = await seats_by_window(session, [(account_id, bp.period.start, bp.period.end)
                                            for account_id, periods in selected.items() for bp in periods])
    return _by_account(found)


def _by_account(found: Mapping[Window, _T]) -> dict[str, dict[datetime, _T]]:
    """Values per (account, period start, period end) window, as account -> period start -> value."""
    by_account: dict[str, dict[datetime, _T]] = defaultdict(dict)
    for (account_id, start, _), value in found.items():
        by_account[account_id][start] = value
    return by_account


async def _invoices(
    session: AsyncSession, selected: Mapping[str, Sequence[BillingPeriod]]
) -> dict[str, dict[datetime, InvoiceFact]]:
    """The invoices past DRAFT of the selected periods: account -> period start -> fact, each invoice net of what the
    changes' credit notes left uncharged (invoices.change_credits: the unused time of in-advance fees and PREPAID
    credits a plan change or end cut, an advance invoice replaced whole), as the plan would have charged had the
    change come before the invoice. An association's first period counts its advance invoices too (its in-advance
    charges, charged as it started; compare.price prices both)."""
    if not selected:
        return {}
    earliest = min(p.period.start for periods in selected.values() for p in periods)
    rows = list(await session.execute(
        select(InvoiceRow.account_id, InvoiceRow.period_start, InvoiceRow.id, InvoiceRow.status, InvoiceRow.currency,
               InvoiceRow.total_amount, InvoiceRow.invoice_type, InvoiceRow.association_id)
        .where(any_of(InvoiceRow.account_id, selected), InvoiceRow.period_start >= earliest,
               or_(and_(InvoiceRow.invoice_type != ADVANCED, InvoiceRow.status != "DRAFT"),
                   and_(InvoiceRow.invoice_type == ADVANCED, InvoiceRow.status != "VOID")))
        .order_by(InvoiceRow.seq)))
    standard = [r for r in rows if r.invoice_type != ADVANCED]
    # What was charged for the period itself, as the candidates are priced on all its usage, late usage included.
    late = await late_adjustments(session, [r.id for r in standard])
    credited = await change_credited(session, [r.id for r in rows])
    charged = {r.id: EXACT_MONEY_CONTEXT.subtract(r.total_amount or ZERO, credited.get(r.id, ZERO)) for r in rows}
    facts: dict[str, dict[datetime, InvoiceFact]] = defaultdict(dict)
    for r in standard:
        facts[r.account_id][r.period_start] = InvoiceFact(r.id, r.status, r.currency,
                                                          EXACT_MONEY_CONTEXT.add(charged[r.id], late.get(r.id, ZERO)))
    # A version moved in place re-issues the advance invoice and credits the one it replaces: that one counts what
    # its note left (nothing, unless its PREPAID credits were used: those stay paid for).
    opening: dict[tuple[str, datetime, int | None], Decimal] = defaultdict(lambda: ZERO)
    for r in rows:
        if r.invoice_type == ADVANCED:
            key = (r.account_id, r.period_start, r.association_id)
            opening[key] = EXACT_MONEY_CONTEXT.add(opening[key], charged[r.id])
    for account_id, periods in selected.items():
        for bp in periods:
            fact = facts[account_id].get(bp.period.start)
            key = (account_id, bp.period.start, bp.association.id)
            if fact is not None and key in opening:
                facts[account_id][bp.period.start] = replace(fact, total=EXACT_MONEY_CONTEXT.add(fact.total,
                                                                                                 opening[key]))
    return facts


def _candidate_infos(chosen: Sequence[Candidate], compared: Sequence[AccountComparison]) -> list[CandidateInfo]:
    unsupported: dict[int, set[str]] = defaultdict(set)
    for account in compared:
        for entry in account.unsupported:
            unsupported[entry.candidate].add(account.accountId)
    return [
        CandidateInfo(candidate=c.index, pricePlanId=c.price_plan_id, name=c.plan.name,
                      supportedCurrencies=c.plan.supportedCurrencies, unsupportedAccounts=len(unsupported[c.index]))
        for c in chosen
    ]


# --- plan files ---------------------------------------------------------------------------------


async def apply_plans(session: AsyncSession, specs: Sequence[object], *, field: str = "plans") -> list[AppliedPlan]:
    """Creates the plans whose name does not exist yet; a plan of the same name is reported as `exists` when the
    file holds its latest ACTIVE version's content (what attaching it gives; a plan changes through versions, so
    the file follows update_price_plan + finalize_price_plan), else `differs` and is left as stored. All or
    nothing: an invalid plan stores none."""
    applied: list[AppliedPlan] = []
    for i, spec in enumerate(specs):
        prefix = f"{field}[{i}]"
        if not isinstance(spec, Mapping):
            raise InvalidInput(prefix, "must be a plan object in create_price_plan's shape "
                                       "{name, pricingCycleConfig, supportedCurrencies, rateCards}")
        data = parse_inline(spec, f"{prefix}.")
        try:
            plan, created = await plans.create_plan(session, data)
        except InvalidInput as exc:
            raise InvalidInput(f"{prefix}.{exc.field}", exc.reason) from None
        except Conflict:
            created = False  # its version 1 has other content; the latest version decides below
        if created:
            applied.append(AppliedPlan(name=plan.name, pricePlanId=plan.id, status="created"))
            continue
        name = data.name.strip()
        plan_id = await session.scalar(select(PricePlanRow.id).where(PricePlanRow.name == name))
        assert plan_id is not None  # create_plan found it
        latest = await plans.get_plan(session, plan_id)
        if plans.same_content(latest, normalize_plan(data)):
            applied.append(AppliedPlan(name=name, pricePlanId=plan_id, status="exists"))
            continue
        applied.append(AppliedPlan(name=name, pricePlanId=plan_id, status="differs", message=(
            f"price plan {name!r} ({plan_id}) is at version {latest.version}, whose content differs from the file's; "
            "nothing was changed. To make the file's content the plan's next version: update_price_plan, then "
            "finalize_price_plan (its migrationMode says which accounts move); or give the file's plan another name")))
    return applied


async def apply_meters(session: AsyncSession, specs: Sequence[object], now: datetime, *,
                       field: str = "meters") -> list[AppliedMeter]:
    """Creates the usage meters of a pricing file (idempotent on id and name, like create_usage_meter)."""
    applied: list[AppliedMeter] = []
    for i, spec in enumerate(specs):
        prefix = f"{field}[{i}]"
        if not isinstance(spec, Mapping):
            raise InvalidInput(prefix, "must be a usage meter object in create_usage_meter's shape "
                                       "{name, eventSchemaName, aggregation, computations}")
        try:
            data = UsageMeterCreate.model_validate(spec)
        except ValidationError as exc:
            where, message = validation_path(exc, spec)
            raise InvalidInput(f"{prefix}.{where}" if where else prefix, message) from None
        try:
            meter, created = await meters.create_usage_meter(session, data, now)
        except InvalidInput as exc:
            raise InvalidInput(f"{prefix}.{exc.field}", exc.reason) from None
        except Conflict as exc:  # a meter edited in the file: which entry, as for an invalid one
            raise Conflict(f"{prefix}: {exc.message}") from None
        applied.append(AppliedMeter(name=meter.name, usageMeterId=meter.id, status="created" if created else "exists"))
    return applied
