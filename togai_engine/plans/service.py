"""Price plan operations. Plans are immutable, so parsed plans are cached by id for the process."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.common.ids import new_id
from togai_engine.common.pagination import (
    check_page_size,
    decode_token,
    encode_token,
    fetch_page,
    not_a_token,
    token_int,
)
from togai_engine.common.schemas import Page
from togai_engine.errors import Conflict, InvalidInput, NotFound
from togai_engine.meters.service import meter_exists
from togai_engine.plans.models import PricePlanRow
from togai_engine.plans.schemas import PricePlan, PricePlanCreate, PricePlanSummary, RateCardInfo
from togai_engine.plans.validation import normalize_plan

_CACHE: dict[str, PricePlan] = {}
_CACHE_LIMIT = 10_000


def _to_plan(row: PricePlanRow) -> PricePlan:
    cached = _CACHE.get(row.id)
    if cached is not None:
        return cached
    plan = PricePlan.model_validate({**row.definition, "id": row.id, "createdAt": row.created_at})
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.clear()
    _CACHE[row.id] = plan
    return plan


def _content(data: PricePlanCreate) -> dict[str, Any]:
    return data.model_dump(mode="json", exclude_none=True)


def _same_content(stored: PricePlan, wanted: PricePlanCreate) -> bool:
    # Compare parsed models, so 1.0 and 1 are the same rate; currency order does not matter.
    mine = PricePlanCreate.model_validate(stored.model_dump(include=set(PricePlanCreate.model_fields)))
    return (
        mine.model_copy(update={"supportedCurrencies": sorted(mine.supportedCurrencies)})
        == wanted.model_copy(update={"supportedCurrencies": sorted(wanted.supportedCurrencies)})
    )


async def _check_meters_exist(session: AsyncSession, plan: PricePlanCreate) -> None:
    cards = plan.rateCards
    wanted = [(f"rateCards.usageRateCards[{i}].usageMeterId", c.usageMeterId) for i, c in enumerate(cards.usageRateCards)]
    wanted += [
        (f"rateCards.billingEntitlementRateCards[{i}].usageMeterId", c.usageMeterId)
        for i, c in enumerate(cards.billingEntitlementRateCards)
        if c.usageMeterId is not None
    ]
    if not wanted:
        return
    for path, meter_id in wanted:
        if not await meter_exists(session, meter_id):
            raise InvalidInput(path, f"usage meter {meter_id!r} does not exist; create it with create_usage_meter "
                                     "or pick one from list_usage_meters")


async def validate_plan(session: AsyncSession, data: PricePlanCreate) -> PricePlanCreate:
    """The plan exactly as create_plan would store it (same checks, same field paths), without storing it:
    the pricing lab prices inline plans it never writes."""
    plan = normalize_plan(data)
    await _check_meters_exist(session, plan)
    return plan


async def create_plan(session: AsyncSession, data: PricePlanCreate) -> tuple[PricePlan, bool]:
    """The plan and whether it was created now. Same name + same content returns the stored plan."""
    plan = normalize_plan(data)
    existing = await session.scalar(select(PricePlanRow).where(PricePlanRow.name == plan.name))
    if existing is None:
        await _check_meters_exist(session, plan)
        plan_id = new_id("pp")
        inserted = await session.scalar(
            insert(PricePlanRow)
            .values(id=plan_id, name=plan.name, definition=_content(plan))
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(PricePlanRow.id)
        )
        existing = await session.scalar(select(PricePlanRow).where(PricePlanRow.name == plan.name))
        assert existing is not None
        if inserted is not None:
            return _to_plan(existing), True
    stored = _to_plan(existing)
    if not _same_content(stored, plan):
        raise Conflict(
            f"a price plan named {plan.name!r} already exists ({stored.id}) with different content; plans are "
            "immutable: create the new version under another name (e.g. with a version suffix) and attach it "
            "to accounts with update_account(pricePlanId, effectiveFrom)"
        )
    return stored, False


async def get_plan(session: AsyncSession, plan_id: str, *, field: str = "pricePlanId") -> PricePlan:
    cached = _CACHE.get(plan_id)
    if cached is not None:
        return cached
    row = await session.get(PricePlanRow, plan_id)
    if row is None:
        raise NotFound(f"{field}: price plan {plan_id!r} does not exist; list_price_plans shows the ids")
    return _to_plan(row)


async def get_plans(session: AsyncSession, plan_ids: Iterable[str]) -> dict[str, PricePlan]:
    """Several plans at once (for bill runs); unknown ids are left out."""
    wanted = set(plan_ids)
    plans = {pid: _CACHE[pid] for pid in wanted if pid in _CACHE}
    missing = wanted - plans.keys()
    if missing:
        for row in await session.scalars(select(PricePlanRow).where(PricePlanRow.id.in_(missing))):
            plans[row.id] = _to_plan(row)
    return plans


def _summary(plan: PricePlan) -> PricePlanSummary:
    cards = plan.rateCards
    count = (len(cards.usageRateCards) + len(cards.fixedFeeRateCards) + len(cards.billingEntitlementRateCards)
             + len(cards.creditGrantRateCards) + (cards.minimumCommitment is not None)
             + len(cards.entitlementOverageRateCards))
    return PricePlanSummary(
        id=plan.id, name=plan.name, description=plan.description, pricingCycleConfig=plan.pricingCycleConfig,
        supportedCurrencies=plan.supportedCurrencies, lateUsage=plan.lateUsage, rateCardCount=count,
        createdAt=plan.createdAt,
    )


async def list_plans(session: AsyncSession, page_size: int | None, next_token: str | None) -> Page[PricePlanSummary]:
    rows, token = await fetch_page(session, select(PricePlanRow), PricePlanRow.seq, "price_plans", page_size,
                                   next_token)
    return Page[PricePlanSummary](data=[_summary(_to_plan(r)) for r in rows], nextToken=token)


def rate_cards_of(plan: PricePlan) -> list[RateCardInfo]:
    """Every rate card of the plan with its type and name, in a stable order."""
    cards = plan.rateCards
    infos: list[RateCardInfo] = []

    def add(card: Any, kind: str, name: str, display: str, **extra: Any) -> None:
        infos.append(RateCardInfo(
            name=name, type=kind, displayName=display, pricePlanId=plan.id,  # type: ignore[arg-type]
            currencies=[v.currency for v in card.rateValues],
            rateCard=card.model_dump(mode="json", exclude_none=True), **extra,
        ))

    for usage in cards.usageRateCards:
        add(usage, "USAGE", usage.name or "", usage.displayName or "", usageMeterId=usage.usageMeterId)
    for fee in cards.fixedFeeRateCards:
        add(fee, "FIXED_FEE", fee.name or "", fee.displayName or "")
    for entitlement in cards.billingEntitlementRateCards:
        infos.append(RateCardInfo(
            name=entitlement.name or "", type="BILLING_ENTITLEMENT", displayName=entitlement.displayName or "",
            pricePlanId=plan.id, usageMeterId=entitlement.usageMeterId, featureId=entitlement.featureId,
            currencies=[], rateCard=entitlement.model_dump(mode="json", exclude_none=True),
        ))
    for grant in cards.creditGrantRateCards:
        infos.append(RateCardInfo(
            name=grant.name or "", type="CREDIT_GRANT", displayName=grant.displayName or "", pricePlanId=plan.id,
            currencies=[v.currency for v in grant.rateDetails.currencySlabRateDetails],
            rateCard=grant.model_dump(mode="json", exclude_none=True),
        ))
    if cards.minimumCommitment is not None:
        commitment = cards.minimumCommitment
        add(commitment, "MINIMUM_COMMITMENT", "minimum_commitment", commitment.displayName)
    for card, overage in zip(cards.entitlementOverageRateCards, plan.overage_pricing, strict=True):
        add(card, "ENTITLEMENT_OVERAGE", card.name or "", card.displayName or "", usageMeterId=overage.usage_meter_id,
            featureId=card.featureId)
    return infos


async def list_rate_cards(
    session: AsyncSession, plan_id: str, page_size: int | None, next_token: str | None
) -> Page[RateCardInfo]:
    size = check_page_size(page_size)
    after = decode_token("rate_cards", next_token)
    plan = await get_plan(session, plan_id)
    start = 0
    if after:
        if len(after) != 2 or after[0] != plan_id or token_int("rate_cards", after[1]) < 0:
            raise not_a_token("rate_cards")  # of another plan's list, or edited
        start = after[1]
    cards = rate_cards_of(plan)
    page = cards[start:start + size]
    more = start + size < len(cards)
    token = encode_token("rate_cards", [plan_id, start + size]) if more else None
    return Page[RateCardInfo](data=page, nextToken=token)
