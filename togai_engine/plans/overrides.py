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
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.common.messages import brief, describe_errors, join_path
from togai_engine.errors import EngineError, InvalidInput
from togai_engine.plans.models import PlanAssociationRow
from togai_engine.plans.schemas import PricePlan, PricePlanCreate, PricingRule, RateCards
from togai_engine.plans.service import get_versions, validate_plan
from togai_engine.plans.validation import normalize_plan
from togai_engine.store.arrays import any_of

OVERRIDABLE = ("usageRateCards", "fixedFeeRateCards", "billingEntitlementRateCards", "creditGrantRateCards")
RULES = "pricingRules"  # the stored deal's pricingRulesOverride, beside its cards
_EFFECTIVE: dict[str, PricePlan] = {}
BROKEN_DEAL = "a deal that no longer validates"


@dataclass(frozen=True)
class PlanRef:
    """Which plan prices an association: (plan, version) and, when it has overrides, the association itself
    (overrides never change in place, so the key names one effective plan for good)."""

    plan_id: str
    version: int = 1
    association_id: int | None = None  # set only when the association carries overrides
    account_id: str = field(default="", compare=False)  # whose deal it is: named when the deal cannot be applied

    @property
    def key(self) -> str:
        """Version 1 without overrides is keyed by the plan id alone, as before versions existed."""
        if self.association_id is not None:
            return f"{self.plan_id}@{self.version}#{self.association_id}"
        return self.plan_id if self.version == 1 else f"{self.plan_id}@{self.version}"


def plan_ref(plan_id: str, version: int, association_id: int, overrides: Mapping[str, Any] | None,
             account_id: str = "") -> PlanRef:
    return PlanRef(plan_id, version, association_id if overrides else None, account_id if overrides else "")


class PlanProblem(InvalidInput):
    """Why a stored deal or plan version cannot be read: `what` names it and the field at fault, the message adds
    the way out (which a reader that needs the plan for another reason may replace with its own)."""

    def __init__(self, what: str, way_out: str) -> None:
        super().__init__("", f"{what}; {way_out}")
        self.what = what


class UnresolvedPlan(PlanProblem):
    """A plan looked up in ResolvedPlans that cannot be resolved: what it prices is unknown, not absent."""


class ResolvedPlans(dict[Any, PricePlan]):
    """Plans by key (a PlanRef key, or an association id). A key whose plan cannot be resolved (its stored deal or
    plan version no longer validates: an upgrade with stricter checks, a hand edit) is absent, and looking it up
    raises why: so it fails only the reader of the account it prices, inside that account's guard (a bill run's
    per-account guard, a DRAFT's `problem`), never a bill run or a read over many accounts."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: dict[Any, PlanProblem] = {}

    def __missing__(self, key: Any) -> PricePlan:
        problem = self.problems.get(key)
        if problem is None:
            raise KeyError(key)
        raise UnresolvedPlan(problem.what, problem.reason.removeprefix(f"{problem.what}; "))  # one per reader


class _StoredRules(BaseModel):
    """A stored deal's pricing rules, validated under their key: an error's path names them (_deal_path)."""

    pricingRules: list[PricingRule]


# Every call stores a deal as a JSON object; a hand edit may leave any JSON there, refused as a ValidationError like
# any deal that no longer validates (its account's reads and bill runs report it, the others never notice).
_STORED_DEAL = TypeAdapter(dict[str, Any])


def stored_parts(stored: Mapping[str, Any]) -> tuple[RateCards, list[PricingRule] | None]:
    """A stored deal as (its cards, its pricing rules or None when it keeps the plan's); ValidationError when it
    does not parse."""
    stored = _STORED_DEAL.validate_python(stored)
    rules = stored.get(RULES)
    cards = RateCards.model_validate({kind: value for kind, value in stored.items() if kind != RULES})
    return cards, None if rules is None else _StoredRules.model_validate({RULES: rules}).pricingRules


def apply_overrides(plan: PricePlan, overrides: RateCards, rules: list[PricingRule] | None = None) -> PricePlan:
    """The plan with the override cards in place of the cards of the same name, and `rules` in place of its
    pricingRules when given. A card naming none of the plan's is refused, naming it (InvalidInput): no call stores
    one (validate_overrides, check_overrides_fit), but a stored deal edited since would otherwise replace nothing
    and the account be billed the plan's price under its deal's name."""
    cards = plan.rateCards
    update: dict[str, Any] = {}
    for kind in OVERRIDABLE:
        known = [card.name for card in getattr(cards, kind)]
        for i, card in enumerate(getattr(overrides, kind)):
            if card.name not in known:
                raise InvalidInput(f"rateCardOverrides.{kind}[{i}].name", (
                    f"{card.name!r} names no {kind[:-1]} of version {plan.version} of price plan {plan.id!r} (its "
                    f"{kind}: {', '.join(str(k) for k in known) or 'none'}), so it would replace nothing"))
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
                          ) -> ResolvedPlans:
    """ref.key -> the plan that prices it; `refs` maps each ref to its association's stored overrides. A deal that
    cannot be applied is left out, its reason in `problems` (raised when its key is looked up)."""
    broken: dict[tuple[str, int], ValidationError | InvalidInput] = {}
    versions = await get_versions(session, {(r.plan_id, r.version) for r in refs}, problems=broken)
    plans = ResolvedPlans()
    for ref, overrides in refs.items():
        version = versions.get((ref.plan_id, ref.version))
        if (ref.plan_id, ref.version) in broken:
            plans.problems[ref.key] = version_problem(ref, broken[(ref.plan_id, ref.version)])
            continue
        if version is None:
            continue
        if ref.association_id is None or not overrides:
            plans[ref.key] = version
            continue
        cached = _EFFECTIVE.get(ref.key)
        if cached is None:
            try:
                cached = apply_overrides(version, *stored_parts(overrides))
            except (ValidationError, EngineError) as exc:  # validated when stored; stricter checks since, or edited
                plans.problems[ref.key] = _deal_problem(ref, exc)
                continue
            if len(_EFFECTIVE) >= 10_000:
                _EFFECTIVE.clear()
            _EFFECTIVE[ref.key] = cached
        plans[ref.key] = cached
    return plans


def _deal_problem(ref: PlanRef, exc: ValidationError | EngineError) -> PlanProblem:
    """Why an account's stored deal cannot be applied, naming the account, its plan and the field at fault."""
    if isinstance(exc, ValidationError):
        # stored_parts validates the deal's cards (paths inside the deal), apply_overrides the plan with them in
        described = "; ".join(f"{_deal_path(path)}: {message}" for path, message in describe_errors(exc))
    else:
        described = exc.message
    return PlanProblem(
        f"account {ref.account_id!r} has a deal (rateCardOverrides on price plan {ref.plan_id!r}, version "
        f"{ref.version}) that no longer validates: {described}",
        "give the account a valid deal with update_account(pricePlanId, effectiveFrom, rateCardOverrides) from the "
        "start of its first period not invoiced yet")


def version_problem(ref: PlanRef, exc: ValidationError | InvalidInput) -> PlanProblem:
    """Why a stored plan version cannot be read: every account on it is reported the same way."""
    described = exc.message if isinstance(exc, InvalidInput) else "; ".join(
        f"{path}: {message}" for path, message in describe_errors(exc))
    return PlanProblem(
        f"version {ref.version} of price plan {ref.plan_id!r} no longer validates (it did when it was stored): "
        f"{described}",
        "its accounts cannot be billed until it is corrected, or until they move to another plan "
        "with update_account(pricePlanId, effectiveFrom) from the start of their first period not invoiced yet")


def deal_problem(ref: PlanRef, stored: Mapping[str, Any] | None, plan: PricePlan) -> InvalidInput | None:
    """Why a stored deal no longer validates on `plan`, the version it is stored with: it no longer parses (worded
    as its account's own reads word it), or the plan with it in place fails create_price_plan's checks (an edit,
    or stricter checks since); None when it validates."""
    if not stored:
        return None
    try:
        cards, rules = stored_parts(stored)
    except ValidationError as exc:
        return _deal_problem(ref, exc)
    problem = _effective_problem(plan, cards, rules)
    return None if problem is None else _deal_problem(ref, problem)


def _effective_problem(plan: PricePlan, cards: RateCards, rules: list[PricingRule] | None) -> InvalidInput | None:
    """Why `plan` with the deal's cards and rules in place fails create_price_plan's checks (a path in that
    effective plan), or None. Billing reads the effective plan trusting them: an overage card needs its feature's
    meter, a rule the meters and cards it names."""
    try:
        _checked(apply_overrides(plan, cards, rules))
    except InvalidInput as exc:
        return exc
    return None


def _deal_path(path: str) -> str:
    """A path in the deal or in the plan with the deal in place, as the deal's fields name it."""
    if path.startswith(RULES):
        return f"pricingRulesOverride{path.removeprefix(RULES)}"
    return join_path("rateCardOverrides", path.removeprefix("rateCards").removeprefix("."))


async def plans_by_association(session: AsyncSession, association_ids: Iterable[int]) -> ResolvedPlans:
    """association id -> the plan that prices it (its version with its overrides); a deal that cannot be applied
    raises why when its association is looked up (ResolvedPlans)."""
    ids = set(association_ids)
    found = ResolvedPlans()
    if not ids:
        return found
    rows = (await session.execute(select(
        PlanAssociationRow.id, PlanAssociationRow.price_plan_id, PlanAssociationRow.version,
        PlanAssociationRow.rate_card_overrides, PlanAssociationRow.account_id)
        .where(any_of(PlanAssociationRow.id, ids)))).tuples().all()
    refs = {row[0]: plan_ref(row[1], row[2], row[0], row[3], row[4]) for row in rows}
    plans = await effective_plans(session, {refs[row[0]]: row[3] for row in rows})
    for association_id, ref in refs.items():
        if ref.key in plans:
            found[association_id] = plans[ref.key]
        elif ref.key in plans.problems:
            found.problems[association_id] = plans.problems[ref.key]
    return found


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
    """Refuses moving overrides onto a version that no longer has the cards they replace, or that with them in
    place fails create_price_plan's checks (what the account's reads would then trip on)."""
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
    problem = _effective_problem(plan, cards, rules)
    if problem is None:
        return
    if rules is not None and problem.field.startswith(RULES):
        raise InvalidInput(field, (
            f"account {account_id!r} has a pricingRulesOverride that does not fit version {plan.version} of "
            f"price plan {plan.id!r} ({problem.field}: {problem.reason}); keep what its rules read in the new version, "
            "finalize with an *_IGNORE_OVERRIDE mode (the account loses its deal), or NONE"))
    raise InvalidInput(field, (
        f"account {account_id!r} has rateCardOverrides that do not fit version {plan.version} of price plan "
        f"{plan.id!r}: with them in place, {problem.field}: {problem.reason}; change the new version so the deal "
        "fits, finalize with an *_IGNORE_OVERRIDE mode (the account loses its deal), or NONE"))


def deal_summary(stored: Mapping[str, Any] | None) -> str:
    """A deal as stored, in a few words: the cards it replaces (or none: the plan's own rates)."""
    if not stored:
        return "none (the plan's own rates)"
    try:
        cards, rules = stored_parts(stored)
    except ValidationError:  # stored before stricter checks, or edited: a new deal replaces it (update_account)
        return BROKEN_DEAL
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
    try:
        stored_cards, stored_rules = stored_parts(stored)
    except ValidationError:  # stored before stricter checks, or edited: never the deal sent, which validates
        return "", BROKEN_DEAL, deal_summary(sent)
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
