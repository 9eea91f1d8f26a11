"""What an account is priced with: its association's plan version plus the association's rateCardOverrides
(the account's deal; Togai's pricePlanDetailsOverride on a schedule).

An override card replaces the version's card of the same name in the same list (usageRateCards,
fixedFeeRateCards, billingEntitlementRateCards, creditGrantRateCards); a minimumCommitment replaces (or adds)
the plan's. The association's pricingRulesOverride (Togai's, `PUT /v2/schedules/{id}/pricing_rules`) replaces
the plan's pricingRules as a whole; it is stored beside the cards, under `pricingRules`, in the same column
(no key of RateCards has that name). The effective plan is validated as a whole, with the override's own
field paths (`rateCardOverrides.usageRateCards[0].rateValues[0].slabRates[0].rate`,
`pricingRulesOverride[0].computation`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.common.messages import brief
from togai_engine.errors import InvalidInput
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.schemas import PricePlan, PricePlanCreate, PricingRule, RateCards
from togai_engine.plans.service import get_versions, validate_plan
from togai_engine.plans.validation import normalize_plan

OVERRIDABLE = ("usageRateCards", "fixedFeeRateCards", "billingEntitlementRateCards", "creditGrantRateCards")
RULES = "pricingRules"  # the stored deal's pricingRulesOverride, beside its cards
_EFFECTIVE: dict[str, PricePlan] = {}


@dataclass(frozen=True)
class PlanRef:
    """Which plan prices an association: (plan, version) and, when it has overrides, the association itself
    (overrides never change in place, so the key names one effective plan for good)."""

    plan_id: str
    version: int = 1
    association_id: int | None = None  # set only when the association carries overrides

    @property
    def key(self) -> str:
        """Version 1 without overrides is keyed by the plan id alone, as before versions existed."""
        if self.association_id is not None:
            return f"{self.plan_id}@{self.version}#{self.association_id}"
        return self.plan_id if self.version == 1 else f"{self.plan_id}@{self.version}"


def plan_ref(plan_id: str, version: int, association_id: int, overrides: Mapping[str, Any] | None) -> PlanRef:
    return PlanRef(plan_id, version, association_id if overrides else None)


def stored_parts(stored: Mapping[str, Any]) -> tuple[RateCards, list[PricingRule] | None]:
    """A stored deal as (its cards, its pricing rules or None when it keeps the plan's)."""
    rules = stored.get(RULES)
    cards = RateCards.model_validate({kind: value for kind, value in stored.items() if kind != RULES})
    return cards, None if rules is None else [PricingRule.model_validate(rule) for rule in rules]


def apply_overrides(plan: PricePlan, overrides: RateCards, rules: list[PricingRule] | None = None) -> PricePlan:
    """The plan with the override cards in place of the cards of the same name (an unknown name is left out:
    validate_overrides refuses it first), and `rules` in place of its pricingRules when given."""
    cards = plan.rateCards
    update: dict[str, Any] = {}
    for kind in OVERRIDABLE:
        given = {card.name: card for card in getattr(overrides, kind)}
        if given:
            update[kind] = [given.get(card.name, card) for card in getattr(cards, kind)]
    if overrides.minimumCommitment is not None:
        update["minimumCommitment"] = overrides.minimumCommitment
    replaced = {} if rules is None else {"pricingRules": rules}
    merged = PricePlan.model_validate({**plan.model_dump(), "rateCards": cards.model_copy(update=update), **replaced})
    merged._overridden = True
    return merged


async def effective_plans(session: AsyncSession, refs: Mapping[PlanRef, Mapping[str, Any] | None]
                          ) -> dict[str, PricePlan]:
    """ref.key -> the plan that prices it; `refs` maps each ref to its association's stored overrides."""
    versions = await get_versions(session, {(r.plan_id, r.version) for r in refs})
    plans: dict[str, PricePlan] = {}
    for ref, overrides in refs.items():
        version = versions.get((ref.plan_id, ref.version))
        if version is None:
            continue
        if ref.association_id is None or not overrides:
            plans[ref.key] = version
            continue
        cached = _EFFECTIVE.get(ref.key)
        if cached is None:
            cached = apply_overrides(version, *stored_parts(overrides))
            if len(_EFFECTIVE) >= 10_000:
                _EFFECTIVE.clear()
            _EFFECTIVE[ref.key] = cached
        plans[ref.key] = cached
    return plans


async def plans_by_association(session: AsyncSession, association_ids: Iterable[int]) -> dict[int, PricePlan]:
    """association id -> the plan that prices it (its version with its overrides)."""
    ids = set(association_ids)
    if not ids:
        return {}
    rows = (await session.execute(select(
        PlanAssociationRow.id, PlanAssociationRow.price_plan_id, PlanAssociationRow.version,
        PlanAssociationRow.rate_card_overrides).where(PlanAssociationRow.id.in_(ids)))).tuples().all()
    refs = {row[0]: plan_ref(row[1], row[2], row[0], row[3]) for row in rows}
    plans = await effective_plans(session, {refs[row[0]]: row[3] for row in rows})
    return {association_id: plans[ref.key] for association_id, ref in refs.items() if ref.key in plans}


def _named(overrides: RateCards) -> RateCards:
    """The overrides with a fee's or grant's name defaulting to its id, as in create_price_plan (a copy: the
    caller's cards are left as given)."""
    update: dict[str, Any] = {}
    for kind in OVERRIDABLE:
        cards = getattr(overrides, kind)
        if any(card.name is None and getattr(card, "id", None) is not None for card in cards):
            update[kind] = [card.model_copy(update={"name": card.id}) if card.name is None
                            and getattr(card, "id", None) is not None else card for card in cards]
    return overrides.model_copy(update=update) if update else overrides


def _renamed(exc: InvalidInput, field: str, rules_field: str) -> InvalidInput:
    reason = exc.reason.replace("pricingRules[", f"{rules_field}[")  # a rule's message may name a sibling rule
    for prefix, named in (("rateCards", field), ("pricingRules", rules_field)):
        if exc.field.startswith(prefix):
            return InvalidInput(f"{named}{exc.field.removeprefix(prefix)}", reason)
    return InvalidInput(field, exc.reason)


async def validate_overrides(session: AsyncSession, plan: PricePlan, overrides: RateCards | None,
                             field: str = "rateCardOverrides", *, rules: list[PricingRule] | None = None,
                             rules_field: str = "pricingRulesOverride") -> dict[str, Any] | None:
    """The deal as stored (None when it overrides nothing), or InvalidInput naming the field: each card names
    a card of the same kind in `plan`, and the cards, the rules (`rules`, replacing the plan's pricingRules) and
    the effective plan pass create_price_plan's checks (a rate for every supported currency, slabs in order,
    meters that exist, rules over the effective plan's meters and cards)."""
    overrides = _named(overrides or RateCards())
    for kind in ("licenseRateCards", "entitlementOverageRateCards"):
        if getattr(overrides, kind):
            raise InvalidInput(f"{field}.{kind}", (
                f"{kind} cannot be overridden per account yet (only {', '.join(OVERRIDABLE)} and "
                "minimumCommitment); give the account a plan of its own for a different seat or overage price"))
    for kind in OVERRIDABLE:
        known = [card.name for card in getattr(plan.rateCards, kind)]
        for i, card in enumerate(getattr(overrides, kind)):
            if card.name is None or card.name not in known:
                raise InvalidInput(
                    f"{field}.{kind}[{i}].name",
                    f"must name the {kind[:-1]} of price plan {plan.id!r} (version {plan.version}) it replaces; "
                    f"its {kind} are named {', '.join(known) or '(none)'} (list_rate_cards shows them)")
    partial = PricePlanCreate(name=plan.name, pricingCycleConfig=plan.pricingCycleConfig,
                              supportedCurrencies=plan.supportedCurrencies, rateCards=overrides)
    try:
        normalized = (await validate_plan(session, partial)).rateCards
        whole = _checked(apply_overrides(plan, normalized, rules))
    except InvalidInput as exc:
        raise _renamed(exc, field, rules_field) from None
    stored = normalized.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    if rules is not None:
        stored[RULES] = [rule.model_dump(mode="json", exclude_none=True) for rule in whole.pricingRules]
    return stored or None


def _checked(plan: PricePlan) -> PricePlanCreate:
    """The effective plan through create_price_plan's checks (its rules normalized as stored)."""
    return normalize_plan(PricePlanCreate.model_validate(plan.model_dump(include=set(PricePlanCreate.model_fields))))


def check_overrides_fit(plan: PricePlan, overrides: Mapping[str, Any] | None, account_id: str, field: str) -> None:
    """Refuses moving overrides onto a version that no longer has the cards they replace."""
    if not overrides:
        return
    cards, rules = stored_parts(overrides)
    for kind in OVERRIDABLE:
        known = {card.name for card in getattr(plan.rateCards, kind)}
        for card in getattr(cards, kind):
            if card.name not in known:
                raise InvalidInput(field, (
                    f"account {account_id!r} has rateCardOverrides replacing {kind[:-1]} {card.name!r}, which "
                    f"version {plan.version} of price plan {plan.id!r} no longer has; keep that card in the new "
                    "version, finalize with an *_IGNORE_OVERRIDE mode (the account loses its deal), or NONE"))
    for currency in plan.supportedCurrencies:
        for kind in OVERRIDABLE:
            for card in getattr(cards, kind):
                values = getattr(card, "rateValues", None)
                if values is not None and currency not in {v.currency for v in values}:
                    raise InvalidInput(field, (
                        f"account {account_id!r} has rateCardOverrides for {card.name!r} without a rate in "
                        f"{currency}, which version {plan.version} of price plan {plan.id!r} supports"))
    if rules is not None:
        try:
            _checked(apply_overrides(plan, cards, rules))
        except InvalidInput as exc:
            raise InvalidInput(field, (
                f"account {account_id!r} has a pricingRulesOverride that does not fit version {plan.version} of "
                f"price plan {plan.id!r} ({exc.field}: {exc.reason}); keep what its rules read in the new version, "
                "finalize with an *_IGNORE_OVERRIDE mode (the account loses its deal), or NONE")) from None


def deal_summary(stored: Mapping[str, Any] | None) -> str:
    """A deal as stored, in a few words: the cards it replaces (or none: the plan's own rates)."""
    if not stored:
        return "none (the plan's own rates)"
    cards, rules = stored_parts(stored)
    replaced = [f"{kind} {card.name}" for kind in OVERRIDABLE for card in getattr(cards, kind)]
    if cards.minimumCommitment is not None:
        replaced.append("minimumCommitment")
    if rules is not None:
        replaced.append("pricingRules")
    return f"a deal replacing {', '.join(replaced)}"


def deal_difference(stored: Mapping[str, Any] | None, sent: Mapping[str, Any] | None
                    ) -> tuple[str, str, str] | None:
    """The first difference between two deals in validate_overrides' stored form, or None when they are the
    same deal: (the path inside rateCardOverrides, "" for the deal as a whole; the stored side; the sent side),
    each side short. Cards are matched by name, so their order in a list means nothing; every value compares
    parsed, so "0.05" and "0.050" are the same rate and the order of an object's keys means nothing."""
    if not stored or not sent:
        return None if not stored and not sent else ("", deal_summary(stored), deal_summary(sent))
    stored_cards, stored_rules = stored_parts(stored)
    sent_cards, sent_rules = stored_parts(sent)
    for kind in OVERRIDABLE:
        unmatched = {card.name: card for card in getattr(stored_cards, kind)}
        for i, card in enumerate(getattr(sent_cards, kind)):
            mine = unmatched.pop(card.name, None)
            if mine is None:
                return f".{kind}[{i}]", f"no {kind[:-1]} {card.name!r}", f"{kind[:-1]} {card.name!r}"
            found = _first_difference(mine.model_dump(), card.model_dump(), f".{kind}[{i}]")
            if found is not None:
                return found
        if unmatched:
            name = next(iter(unmatched))
            return f".{kind}", f"{kind[:-1]} {name!r}", f"no {kind[:-1]} {name!r}"
    found = _first_difference(
        None if stored_cards.minimumCommitment is None else stored_cards.minimumCommitment.model_dump(),
        None if sent_cards.minimumCommitment is None else sent_cards.minimumCommitment.model_dump(),
        ".minimumCommitment")
    if found is not None:
        return found
    if stored_rules != sent_rules:
        return "", deal_summary(stored), deal_summary(sent)
    return None


def _first_difference(stored: Any, sent: Any, path: str) -> tuple[str, str, str] | None:
    """Where two parsed values (model dumps: Decimals, not strings) first differ, depth first, in the sent
    value's order: (path, stored, sent) shown short."""
    if isinstance(stored, dict) and isinstance(sent, dict):
        for key in [*sent, *(k for k in stored if k not in sent)]:
            found = _first_difference(stored.get(key), sent.get(key), f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(stored, list) and isinstance(sent, list):
        for i, (mine, theirs) in enumerate(zip(stored, sent, strict=False)):
            found = _first_difference(mine, theirs, f"{path}[{i}]")
            if found is not None:
                return found
        if len(stored) != len(sent):
            return path, f"{len(stored)} items", f"{len(sent)} items"
        return None
    return None if stored == sent else (path, brief(stored), brief(sent))
