"""Price plan operations. A plan's ACTIVE versions never change, so parsed versions are cached by (id, version)
for the process; `get_plan` is the latest ACTIVE version (what attaching the plan gives), version 1 is what
create_price_plan stored."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.common.ids import new_id
from togai_engine.common.pagination import (
    check_page_size,
    decode_token,
    encode_token,
    fetch_page,
    not_a_token,
)
from togai_engine.common.schemas import Page
from togai_engine.errors import Conflict, InvalidInput, NotFound
from togai_engine.meters.service import meter_exists
from togai_engine.plans.models import PricePlanRow, PricePlanVersionRow
from togai_engine.plans.schemas import PricePlan, PricePlanCreate, PricePlanSummary, RateCardInfo
from togai_engine.plans.validation import normalize_plan, refuse_ignored_fields
from togai_engine.store.arrays import any_of

_CACHE: dict[tuple[str, int], PricePlan] = {}
_CACHE_LIMIT = 10_000


def cache_plan(key: tuple[str, int], plan: PricePlan) -> PricePlan:
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.clear()
    _CACHE[key] = plan
    return plan


def _to_plan(row: PricePlanRow) -> PricePlan:
    """Version 1, as create_price_plan stored it."""
    cached = _CACHE.get((row.id, 1))
    if cached is not None:
        return cached
    return cache_plan((row.id, 1), PricePlan.model_validate(
        {**row.definition, "id": row.id, "createdAt": row.created_at}))


def version_plan(row: PricePlanVersionRow, *, fresh: bool = False) -> PricePlan:
    """One stored version; a DRAFT is never cached (update_price_plan replaces it). `fresh`: parsed from the row
    even when cached (and cached anew)."""
    key = (row.plan_id, row.version)
    cached = _CACHE.get(key) if row.status == "ACTIVE" and not fresh else None
    if cached is not None:
        return cached
    plan = PricePlan.model_validate({**row.definition, "id": row.plan_id, "createdAt": row.created_at,
                                     "version": row.version, "status": row.status})
    return cache_plan(key, plan) if row.status == "ACTIVE" else plan


def _content(data: PricePlanCreate) -> dict[str, Any]:
    return data.model_dump(mode="json", exclude_none=True)


def same_content(stored: PricePlan, wanted: PricePlanCreate) -> bool:
    """`wanted`, normalised as create_plan stores it (validation.normalize_plan), is `stored`'s content."""
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
    refuse_ignored_fields(plan.rateCards)
    await _check_meters_exist(session, plan)
    return plan


async def create_plan(session: AsyncSession, data: PricePlanCreate) -> tuple[PricePlan, bool]:
    """The plan and whether it was created now. Same name + same content returns the stored plan."""
    plan = normalize_plan(data)
    refuse_ignored_fields(plan.rateCards)
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
            await session.execute(insert(PricePlanVersionRow).values(
                plan_id=plan_id, version=1, status="ACTIVE", definition=_content(plan),
                created_at=existing.created_at, finalized_at=existing.created_at))
            return _to_plan(existing), True
    stored = _to_plan(existing)
    if not same_content(stored, plan):
        raise Conflict(
            f"a price plan named {plan.name!r} already exists ({stored.id}) with different content; to change "
            f"it, draft a new version with update_price_plan(pricePlanId={stored.id!r}, ...) and make it ACTIVE "
            "with finalize_price_plan (its migrationMode moves the accounts on it); for a separate plan, create "
            "it under another name and attach it with update_account(pricePlanId, effectiveFrom)"
        )
    return stored, False


async def active_versions(session: AsyncSession, plan_ids: Iterable[str]) -> dict[str, int]:
    """plan id -> its latest ACTIVE version; unknown ids are left out."""
    rows = await session.execute(
        select(PricePlanVersionRow.plan_id, func.max(PricePlanVersionRow.version))
        .where(any_of(PricePlanVersionRow.plan_id, set(plan_ids)), PricePlanVersionRow.status == "ACTIVE")
        .group_by(PricePlanVersionRow.plan_id))
    return dict(rows.tuples().all())


async def get_versions(session: AsyncSession, wanted: Iterable[tuple[str, int]], *,
                       problems: dict[tuple[str, int], ValidationError | InvalidInput] | None = None
                       ) -> dict[tuple[str, int], PricePlan]:
    """Several (plan id, version) at once (for bill runs and invoices); unknown ones are left out. With `problems`,
    a stored version that no longer validates is left out too, its error put there (one plan never fails the
    readers of others); without it, it raises."""
    keys = set(wanted)
    plans = {key: _CACHE[key] for key in keys if key in _CACHE}
    missing = keys - plans.keys()
    if missing:
        ids = {plan_id for plan_id, _ in missing}
        for row in await session.scalars(select(PricePlanVersionRow).where(any_of(PricePlanVersionRow.plan_id, ids))):
            if (row.plan_id, row.version) in missing:
                try:
                    plans[(row.plan_id, row.version)] = version_plan(row)
                except (ValidationError, InvalidInput) as exc:  # valid when stored: stricter checks since, or an edit
                    if problems is None:
                        raise
                    problems[(row.plan_id, row.version)] = exc
    return plans


async def get_version(session: AsyncSession, plan_id: str, version: int, *, field: str = "pricePlanId") -> PricePlan:
    found = (await get_versions(session, [(plan_id, version)])).get((plan_id, version))
    if found is None:
        await get_plan(session, plan_id, field=field)  # NotFound for an unknown plan
        raise NotFound(f"version: price plan {plan_id!r} has no version {version}; get_price_plan lists its versions")
    return found


async def get_plan(session: AsyncSession, plan_id: str, *, field: str = "pricePlanId") -> PricePlan:
    """The plan's latest ACTIVE version: what attaching the plan now puts an account on."""
    version = (await active_versions(session, [plan_id])).get(plan_id)
    if version is None:
        raise NotFound(f"{field}: price plan {plan_id!r} does not exist; list_price_plans shows the ids")
    return (await get_versions(session, [(plan_id, version)]))[(plan_id, version)]


async def get_plans(session: AsyncSession, plan_ids: Iterable[str]) -> dict[str, PricePlan]:
    """Several plans at once, each its latest ACTIVE version; unknown ids are left out. What an account or an
    invoice is priced with is its association's version: plans.overrides.plans_by_association."""
    versions = await active_versions(session, plan_ids)
    found = await get_versions(session, versions.items())
    return {plan_id: found[(plan_id, version)] for plan_id, version in versions.items()}


def _summary(plan: PricePlan) -> PricePlanSummary:
    count = len(rate_cards_of(plan))  # the cards list_rate_cards lists, every kind (a count kept apart missed one)
    return PricePlanSummary(
        id=plan.id, name=plan.name, description=plan.description, pricingCycleConfig=plan.pricingCycleConfig,
        supportedCurrencies=plan.supportedCurrencies, lateUsage=plan.lateUsage, rateCardCount=count,
        createdAt=plan.createdAt, version=plan.version,
    )


async def list_plans(session: AsyncSession, page_size: int | None, next_token: str | None) -> Page[PricePlanSummary]:
    rows, token = await fetch_page(session, select(PricePlanRow), PricePlanRow.seq, "price_plans", page_size,
                                   next_token)
    latest = await get_plans(session, [r.id for r in rows])
    return Page[PricePlanSummary](data=[_summary(latest.get(r.id) or _to_plan(r)) for r in rows], nextToken=token)


# list_rate_cards' order: by type in this order, then by name (names are unique in a plan), its keyset
_CARD_TYPES: tuple[str, ...] = ("USAGE", "LICENSE", "FIXED_FEE", "BILLING_ENTITLEMENT", "CREDIT_GRANT",
                                "MINIMUM_COMMITMENT", "ENTITLEMENT_OVERAGE")


def _card_key(card: RateCardInfo) -> tuple[int, str]:
    return _CARD_TYPES.index(card.type), card.name


def rate_cards_of(plan: PricePlan) -> list[RateCardInfo]:
    """Every rate card of the plan with its type and name, by type, then name (list_rate_cards' keyset)."""
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
    for seats in cards.licenseRateCards:
        add(seats, "LICENSE", seats.name or "", seats.displayName or "", licenseId=seats.id)
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
    return sorted(infos, key=_card_key)


async def list_rate_cards(
    session: AsyncSession, plan_id: str, page_size: int | None, next_token: str | None
) -> Page[RateCardInfo]:
    """One page of the plan's latest ACTIVE version's cards. The token holds the last card's type and name, not a
    position: a version finalized between two pages (cards dropped or added before it) neither skips nor repeats
    a card both versions have."""
    size = check_page_size(page_size)
    after = decode_token("rate_cards", next_token)
    plan = await get_plan(session, plan_id)
    cards = rate_cards_of(plan)
    if after:
        if len(after) != 3 or after[0] != plan_id or after[1] not in _CARD_TYPES or not isinstance(after[2], str):
            raise not_a_token("rate_cards")  # of another plan's list, or edited
        position = (_CARD_TYPES.index(after[1]), after[2])
        cards = [card for card in cards if _card_key(card) > position]
    page = cards[:size]
    token = encode_token("rate_cards", [plan_id, page[-1].type, page[-1].name]) if len(cards) > size else None
    return Page[RateCardInfo](data=page, nextToken=token)
