"""Whole-plan checks an agent can get wrong, each naming the exact field, and name defaults.

`normalize_plan` returns the content that is stored: currencies upper-case, every rate card named,
the pricing cycle in canonical form. Meter existence is checked by the service (it needs the DB).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from dateutil.relativedelta import relativedelta

from togai_engine.common.durations import parse_duration
from togai_engine.common.json_logic import json_logic_text, normalize_expression
from togai_engine.common.validation import LATEST_INSTANT, check_card_names, check_currency, check_id
from togai_engine.cycles import Cycle, CycleConfig, cycle_containing, resolve_offsets
from togai_engine.errors import InvalidInput
from togai_engine.plans.schemas import (
    BillingEntitlementRateCard,
    CreditAmount,
    CreditGrantRateCard,
    CurrencyRate,
    EntitlementOverageRateCard,
    FixedFeeRateCard,
    LicenseRateCard,
    PricePlan,
    PricePlanCreate,
    PricingCycleConfigInput,
    PricingRule,
    PricingRuleAction,
    RateCards,
    UsageRateCard,
    compile_rule,
    metered_limit_problem,
    overage_feature_problem,
    rule_scope,
    to_rate_plan,
    to_rate_value,
)
from togai_engine.pricing import rate_usage, validate_rate_plan
from togai_engine.pricing.money import round_money
from togai_engine.pricing.rating import validate_slabs
from togai_engine.pricing.rules import RuleScope


def normalize_plan(data: PricePlanCreate) -> PricePlanCreate:
    """The plan as it will be stored, or InvalidInput naming the first wrong field."""
    name = data.name.strip()
    if not name:
        raise InvalidInput("name", "must not be blank; give the plan a name such as 'Growth monthly'")
    cycle = CycleConfig.parse(data.pricingCycleConfig.model_dump(exclude_none=True), "pricingCycleConfig")
    currencies = _currencies(data.supportedCurrencies)
    cards = data.rateCards
    names = _CardNames()
    usage = [_usage_card(card, i, currencies, names) for i, card in enumerate(cards.usageRateCards)]
    licenses = [_license_card(card, i, currencies, names, cards.licenseRateCards[:i])
                for i, card in enumerate(cards.licenseRateCards)]
    fixed = [_fixed_fee_card(card, i, currencies, names) for i, card in enumerate(cards.fixedFeeRateCards)]
    entitlements = [_entitlement_card(card, i, names) for i, card in enumerate(cards.billingEntitlementRateCards)]
    grants = [_credit_grant_card(card, i, currencies, names, cycle)
              for i, card in enumerate(cards.creditGrantRateCards)]
    overages: list[EntitlementOverageRateCard] = []
    for i, card in enumerate(cards.entitlementOverageRateCards):
        overages.append(_overage_card(card, i, currencies, names, entitlements, overages))
    commitment = cards.minimumCommitment
    normalized = RateCards(
        usageRateCards=usage, licenseRateCards=licenses, fixedFeeRateCards=fixed,
        billingEntitlementRateCards=entitlements, creditGrantRateCards=grants, minimumCommitment=commitment,
        entitlementOverageRateCards=overages,
    )
    _applicable_entities(grants, normalized.payable_names())
    if commitment is not None:
        _currency_rates(commitment.rateValues, currencies, "rateCards.minimumCommitment.rateValues", "rate")
    return PricePlanCreate(
        name=name,
        description=data.description,
        pricingCycleConfig=PricingCycleConfigInput.model_validate(cycle.to_dict()),
        supportedCurrencies=currencies,
        rateCards=normalized,
        lateUsage=data.lateUsage,
        pricingRules=_pricing_rules(data.pricingRules, rule_scope(normalized), fixed),
    )


class _CardNames:
    """Rate card names are unique across all cards of a plan (Togai: unique identifier in a plan)."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def claim(self, given: str | None, default: str, path: str) -> str:
        name = given.strip() if given is not None else default
        if given is not None:
            check_id(name, f"{path}.name")
        elif name in self.seen:
            suffix = 2
            while f"{default}_{suffix}" in self.seen:
                suffix += 1
            name = f"{default}_{suffix}"
        if name in self.seen:
            raise InvalidInput(
                f"{path}.name", f"{name!r} is already the name of {self.seen[name]}; rate card names must be "
                "unique within a plan")
        self.seen[name] = path
        return name


def _pricing_rules(rules: Sequence[PricingRule], scope: RuleScope,
                   fixed: Sequence[FixedFeeRateCard] = ()) -> list[PricingRule]:
    """Each rule compiled against the plan's meters and cards; stored in the order they run, with their JSON
    Logic as canonical text."""
    names: dict[str, int] = {}
    orders: dict[int, int] = {}
    result: list[PricingRule] = []
    for i, rule in enumerate(rules):
        path = f"pricingRules[{i}]"
        name = rule.name.strip()
        if not name:
            raise InvalidInput(f"{path}.name", "must not be blank; name the rule, e.g. 'volume discount'")
        if name in names:
            raise InvalidInput(f"{path}.name", f"{name!r} is already the name of pricingRules[{names[name]}]; "
                                               "rule names are unique within a plan")
        if rule.order in orders:
            raise InvalidInput(f"{path}.order", f"{rule.order} is already the order of pricingRules"
                                                f"[{orders[rule.order]}]; give each rule its own order")
        names[name], orders[rule.order] = i, i
        if rule.invoiceTiming != "IN_ARREARS":
            raise InvalidInput(f"{path}.invoiceTiming", "only IN_ARREARS is supported: a rule prices the invoice "
                                                        "of the period it covers; remove invoiceTiming or send "
                                                        "IN_ARREARS")
        _rule_action(rule.action, scope, f"{path}.action")
        if rule.action.type == "UPDATE" and rule.action.target in {f.name for f in fixed if f.invoiceTiming == "IN_ADVANCE"}:
            # its invoice carries the next cycle's fee (two cycles' on the first): which line, and which
            # cycleIndex, an UPDATE meant is not clear; an ADD line says it without ambiguity
            raise InvalidInput(f"{path}.action.target", (
                f"{rule.action.target!r} is an IN_ADVANCE fixed fee, whose lines pay for later cycles than the "
                "invoice's own; UPDATE cards billed in arrears, or ADD a line (e.g. a negative amount) instead"))
        compile_rule(rule, scope, path)  # raises naming the part at fault
        condition = None if rule.condition is None else json_logic_text(normalize_expression(rule.condition))
        result.append(rule.model_copy(update={
            "name": name, "condition": condition,
            "computation": json_logic_text(normalize_expression(rule.computation))}))
    return sorted(result, key=lambda rule: rule.order)


def _rule_action(action: PricingRuleAction, scope: RuleScope, path: str) -> None:
    if action.type == "ADD":
        if action.target is not None:
            raise InvalidInput(f"{path}.target", "ADD adds a line of its own and takes no target; remove target "
                                                 "(UPDATE sets a rate card's line and names it in target)")
        return
    if action.target is None:
        raise InvalidInput(f"{path}.target", "UPDATE needs the name of the rate card whose line it sets")
    if action.target not in scope.rate_cards:
        cards = ", ".join(sorted(scope.rate_cards)) or "none"
        raise InvalidInput(f"{path}.target", f"{action.target!r} is not a rate card of this plan that bills a "
                                             f"line; its cards: {cards}")


def _currencies(codes: Sequence[str]) -> list[str]:
    result: list[str] = []
    for i, code in enumerate(codes):
        code = check_currency(code, f"supportedCurrencies[{i}]")
        if code in result:
            raise InvalidInput(f"supportedCurrencies[{i}]", f"{code} is listed twice; list each currency once")
        result.append(code)
    return result


def _usage_card(card: UsageRateCard, i: int, currencies: list[str], names: _CardNames) -> UsageRateCard:
    path = f"rateCards.usageRateCards[{i}]"
    check_id(card.usageMeterId, f"{path}.usageMeterId")
    for j, value in enumerate(card.rateValues):
        check_currency(value.currency, f"{path}.rateValues[{j}].currency")
    validate_rate_plan(
        to_rate_plan(card.ratePlan), [to_rate_value(v) for v in card.rateValues], currencies, path
    )
    name = names.claim(card.name, card.usageMeterId, path)
    return card.model_copy(update={"name": name, "displayName": card.displayName or name})


def _license_card(card: LicenseRateCard, i: int, currencies: list[str], names: _CardNames,
                  before: Sequence[LicenseRateCard]) -> LicenseRateCard:
    path = f"rateCards.licenseRateCards[{i}]"
    license_id = check_id(card.id, f"{path}.id")
    earlier = next((j for j, other in enumerate(before) if other.id == license_id), None)
    if earlier is not None:
        raise InvalidInput(f"{path}.id", f"{license_id!r} is already the id of licenseRateCards[{earlier}]; "
                                         "update_license names a card by its id, so each id appears once per plan")
    if card.invoiceTiming != "IN_ARREARS":
        raise InvalidInput(f"{path}.invoiceTiming", f"{card.invoiceTiming} is not supported for license rate cards: "
                                                    "seats are billed IN_ARREARS, on the invoice of the period they "
                                                    "were held; use IN_ARREARS or omit it")
    for j, value in enumerate(card.rateValues):
        check_currency(value.currency, f"{path}.rateValues[{j}].currency")
    validate_rate_plan(
        to_rate_plan(card.ratePlan), [to_rate_value(v) for v in card.rateValues], currencies, path
    )
    name = names.claim(card.name, license_id, path)
    return card.model_copy(update={"id": license_id, "name": name, "displayName": card.displayName or name})


def _fixed_fee_card(card: FixedFeeRateCard, i: int, currencies: list[str], names: _CardNames) -> FixedFeeRateCard:
    path = f"rateCards.fixedFeeRateCards[{i}]"
    if card.id is not None:
        check_id(card.id, f"{path}.id")
    name = names.claim(card.name, card.id or "fixed_fee", path)
    _currency_rates(card.rateValues, currencies, f"{path}.rateValues", "rate")
    recurrence = card.recurrenceConfig
    if recurrence is not None:
        if card.type == "ONE_TIME":
            raise InvalidInput(f"{path}.recurrenceConfig", "a ONE_TIME fee is charged once, on the association's "
                                                          "first invoice; remove recurrenceConfig or make the fee "
                                                          "RECURRING")
        if recurrence.interval < 1:
            raise InvalidInput(f"{path}.recurrenceConfig.interval",
                               f"must be 1 or more (charge every N cycles); got {recurrence.interval}")
        if recurrence.offset < 0:
            raise InvalidInput(f"{path}.recurrenceConfig.offset",
                               f"must be 0 or more (cycles to skip before the first charge); got {recurrence.offset}")
    return card.model_copy(update={"name": name, "displayName": card.displayName or name})


def _entitlement_card(card: BillingEntitlementRateCard, i: int, names: _CardNames) -> BillingEntitlementRateCard:
    path = f"rateCards.billingEntitlementRateCards[{i}]"
    check_id(card.featureId, f"{path}.featureId")
    if card.usageMeterId is not None:
        check_id(card.usageMeterId, f"{path}.usageMeterId")
    if (problem := metered_limit_problem(card, i)) is not None:
        raise problem
    for j, config in enumerate(card.featureConfigs or []):
        _non_negative(config.featureCreditLimit, f"{path}.featureConfigs[{j}].featureCreditLimit")
    name = names.claim(card.name, card.featureId, path)
    return card.model_copy(update={"name": name, "displayName": card.displayName or name})


def _overage_card(
    card: EntitlementOverageRateCard, i: int, currencies: list[str], names: _CardNames,
    entitlements: list[BillingEntitlementRateCard], overages: list[EntitlementOverageRateCard],
) -> EntitlementOverageRateCard:
    """An overage card prices usage past the limit of a metered feature of the same plan, once per feature."""
    path = f"rateCards.entitlementOverageRateCards[{i}]"
    check_id(card.featureId, f"{path}.featureId")
    earlier = next((j for j, c in enumerate(overages) if c.featureId == card.featureId), None)
    if earlier is not None:
        raise InvalidInput(f"{path}.featureId", f"feature {card.featureId!r} already has an overage card at "
                                                f"rateCards.entitlementOverageRateCards[{earlier}]; keep one per "
                                                "feature")
    if (problem := overage_feature_problem(card, i, entitlements)) is not None:
        raise problem
    if card.billingConfig is not None:
        raise InvalidInput(f"{path}.billingConfig", "is not supported: overage is billed on the invoice of every "
                                                    "period (each pricing cycle); remove billingConfig")
    if card.maxQuantity is not None:
        _non_negative(card.maxQuantity, f"{path}.maxQuantity")
    for j, value in enumerate(card.rateValues):
        check_currency(value.currency, f"{path}.rateValues[{j}].currency")
    validate_rate_plan(to_rate_plan(card.ratePlan), [to_rate_value(v) for v in card.rateValues], currencies, path)
    name = names.claim(card.name, f"{card.featureId}_overage", path)
    return card.model_copy(update={"name": name, "displayName": card.displayName or name})


def _applicable_entities(grants: list[CreditGrantRateCard], payable: list[str]) -> None:
    """grantDetails.applicableEntityIds name cards that put lines on an invoice (by their name)."""
    for i, grant in enumerate(grants):
        check_card_names(grant.grantDetails.applicableEntityIds or [],
                         f"rateCards.creditGrantRateCards[{i}].grantDetails.applicableEntityIds", payable)


def _credit_grant_card(
    card: CreditGrantRateCard, i: int, currencies: list[str], names: _CardNames, cycle: CycleConfig
) -> CreditGrantRateCard:
    path = f"rateCards.creditGrantRateCards[{i}]"
    if card.id is not None:
        check_id(card.id, f"{path}.id")
    details = card.grantDetails
    if details.priority is not None and details.priority < 0:
        raise InvalidInput(f"{path}.grantDetails.priority", f"must be 0 or more (lower is used first); got "
                                                            f"{details.priority}")
    duration = details.expiryDuration
    if details.expiryType == "CUSTOM":
        if not duration:
            raise InvalidInput(f"{path}.grantDetails.expiryDuration",
                               "a CUSTOM expiry needs an ISO 8601 duration such as P45D or P2M, at least as long as "
                               "every cycle of the plan")
        _grant_expiry(duration, f"{path}.grantDetails.expiryDuration")
        _expiry_covers_cycles(duration, cycle, f"{path}.grantDetails.expiryDuration")
    elif duration is not None:
        raise InvalidInput(f"{path}.grantDetails.expiryDuration",
                           f"only applies when expiryType is CUSTOM (it is {details.expiryType}); remove it")
    prepaid = card.invoiceTiming is not None
    if prepaid and card.invoiceTiming.strip().upper() != "PREPAID":  # type: ignore[union-attr]
        raise InvalidInput(f"{path}.invoiceTiming", f"{card.invoiceTiming!r} does not apply to a credit-grant card: "
                                                    "omit it (the credits are granted free as each period starts) or "
                                                    "send PREPAID (the credits are sold, priced by slabDetails, and "
                                                    "granted once the invoice selling them is PAID)")
    _credit_prices(card, prepaid, path)
    check_card_names(details.applicableEntityIds or [], f"{path}.grantDetails.applicableEntityIds")
    name = names.claim(card.name, card.id or "credit_grant", path)
    _currency_rates(card.rateDetails.currencySlabRateDetails, currencies,
                    f"{path}.rateDetails.currencySlabRateDetails", "creditAmount")
    return card.model_copy(update={"name": name, "displayName": card.displayName or name})


# A CUSTOM expiry ends that long after the start of the period that grants it, at most: a period may start as late
# as LATEST_INSTANT and its grant's expiry must still be an instant billing computes with (datetime ends in 9999;
# a longer one failed every bill run of its accounts). Credits meant to last forever are NO_EXPIRY.
MAX_GRANT_EXPIRY_YEARS = 100


def _grant_expiry(text: str, field: str) -> None:
    duration = parse_duration(text, field)
    try:
        fits = LATEST_INSTANT + duration <= LATEST_INSTANT + relativedelta(years=MAX_GRANT_EXPIRY_YEARS)
    except (OverflowError, ValueError):  # past the year 9999
        fits = False
    if not fits:
        raise InvalidInput(field, (
            f"{text!r} is too long: a CUSTOM expiry is at most {MAX_GRANT_EXPIRY_YEARS} years (P{MAX_GRANT_EXPIRY_YEARS}Y"
            f", counted from {LATEST_INSTANT.date().isoformat()}, the latest instant billing computes with, as a "
            "period may start that late); for credits that never expire send expiryType NO_EXPIRY without "
            "expiryDuration"))


# An expiryDuration this long covers every cycle of its interval, whatever the offsets (a month ends at most 31 days
# after it starts, a quarter 92, half a year 184, a year 366, a week 7): what a refusal suggests.
COVERING_EXPIRY = {"WEEKLY": "P7D", "MONTHLY": "P31D", "QUARTERLY": "P92D", "HALF_YEARLY": "P184D",
                   "ANNUALLY": "P366D"}
# Eight years from 2000 hold every run of month lengths a cycle of a year or less can span (a leap year before and
# after a common one, common years in a row, as around 2100): every cycle's length is one of theirs.
_SAMPLE_START, _SAMPLE_END = datetime(2000, 1, 1, tzinfo=UTC), datetime(2008, 1, 1, tzinfo=UTC)


def check_grant_expiries(plan: PricePlan, field: str) -> None:
    """A plan attached to an account (`field`: the call's pricePlanId) whose credit-grant card has a CUSTOM expiry that
    ends before some cycle does is refused, as create_price_plan refuses it now: a plan stored before that rule."""
    config = CycleConfig.parse(plan.pricingCycleConfig.model_dump(exclude_none=True))
    for i, card in enumerate(plan.rateCards.creditGrantRateCards):
        duration = card.grantDetails.expiryDuration
        if card.grantDetails.expiryType != "CUSTOM" or not duration:
            continue
        try:
            _expiry_covers_cycles(duration, config, f"rateCards.creditGrantRateCards[{i}].grantDetails.expiryDuration")
        except InvalidInput as short:
            raise InvalidInput(field, (
                f"version {plan.version} of price plan {plan.id!r} has {short.field} {short.reason}; correct it in a "
                "new version (update_price_plan, then finalize_price_plan) before attaching the plan")) from None


def _expiry_covers_cycles(text: str, config: CycleConfig, field: str) -> None:
    """A card's grant pays the invoice of the cycle it is issued for, when that becomes DUE, only if valid then or
    through the cycle's end (wallets/README.md, "Which grants pay an invoice"): a CUSTOM expiry that ends before some
    cycle of the plan does would make that cycle's credits expire unused, free or PREPAID, so it is refused. Checked
    against every cycle the schedule can have: an anniversary cycle's offsets come from the day an account joins, any
    day of a year; a period cut short starts later or ends earlier than its cycle, so it is covered when that is."""
    parse_duration(text, field)
    short = _short_cycle(text, config)
    if short is not None:
        _refuse_short_expiry(text, config, short, field)


@lru_cache(maxsize=256)
def _short_cycle(text: str, config: CycleConfig) -> Cycle | None:
    """A cycle of `config`'s schedules that the valid duration `text` from its start ends before, if any. Cached: an
    anniversary schedule walks every join day's cycles (~0.1 s), and every attach of the plan checks it again."""
    duration = parse_duration(text, "")
    anchors = [_SAMPLE_START + timedelta(days=d) for d in range(366)] if config.anniversary else [_SAMPLE_START]
    for schedule in dict.fromkeys(resolve_offsets(config, anchor) for anchor in anchors):
        cycle = cycle_containing(schedule, _SAMPLE_START, _SAMPLE_START)
        while cycle.start < _SAMPLE_END:
            try:
                short = cycle.start + duration < cycle.end
            except (OverflowError, ValueError):  # past the year 9999 (a plan stored before _grant_expiry): long enough
                return None
            if short:
                return cycle
            cycle = Cycle(cycle.end, cycle_containing(schedule, _SAMPLE_START, cycle.end).end)
    return None


def _refuse_short_expiry(text: str, config: CycleConfig, cycle: Cycle, field: str) -> None:
    schedule = "an anniversary " if config.anniversary else "a "
    raise InvalidInput(field, (
        f"{text!r} from a cycle's start ends before that cycle does (on {schedule}{config.interval} schedule like this "
        f"plan's, the cycle {cycle.start.date().isoformat()} – {cycle.end.date().isoformat()} ends "
        f"{cycle.end.date().isoformat()}, its credits expire on {(cycle.start + parse_duration(text, field)).date().isoformat()}"
        f"): a credit-grant card's credits pay the invoice of their cycle when it becomes DUE, only if still valid "
        f"through the cycle's end, so they would expire unused. Send an expiryDuration of at least "
        f"{COVERING_EXPIRY[config.interval]} (it covers every {config.interval} cycle), or expiryType PRICING_CYCLE "
        "(credits expire as their cycle ends) or NO_EXPIRY"))


def _credit_prices(card: CreditGrantRateCard, prepaid: bool, path: str) -> None:
    """A PREPAID card prices its credits in every currency; a free card has no price, which would be ignored."""
    if not prepaid and card.rateDetails.pricingModel != "TIERED":
        raise InvalidInput(f"{path}.rateDetails.pricingModel", "prices credits sold: it applies with invoiceTiming "
                                                               "PREPAID only; remove it or send invoiceTiming PREPAID")
    for j, row in enumerate(card.rateDetails.currencySlabRateDetails):
        slabs_path = f"{path}.rateDetails.currencySlabRateDetails[{j}].slabDetails"
        if not prepaid:
            if row.slabDetails:
                raise InvalidInput(slabs_path, "a price applies to credits sold: send invoiceTiming PREPAID (granted "
                                               "once the invoice selling them is paid) or remove slabDetails (granted "
                                               "free as each period starts)")
            continue
        if not row.slabDetails:
            raise InvalidInput(slabs_path, "a PREPAID card sells its credits: price them, e.g. "
                                           '[{"startAfter": 0, "priceType": "PER_UNIT", "rate": "0.9"}]')
        # the rating core's checks of the slabs (as for usage cards), and each slab's rate
        plan, rates = row.rate_plan(card.rateDetails.pricingModel)
        validate_slabs(plan, slabs_path.removesuffix(".slabDetails"), slabs="slabDetails")
        for k, slab in enumerate(row.slabDetails):
            _non_negative(slab.rate, f"{slabs_path}[{k}].rate")
        # A sale for nothing could never be credited back (a note credits an amount), so replacing it would leave
        # its credits granted twice: free credits are a free card's (no invoiceTiming PREPAID, no slabDetails).
        # Priced as billing prices it: the credits the grant gives, to the currency's minor unit.
        if rate_usage(plan, rates, round_money(row.creditAmount, row.currency)).amount <= 0:
            raise InvalidInput(slabs_path, f"the {row.creditAmount} credits would sell for 0: give the slabs a rate "
                                           "above 0, or grant the credits free (remove invoiceTiming PREPAID and "
                                           "slabDetails: granted as each period starts)")


def _currency_rates(
    values: Sequence[CurrencyRate | CreditAmount], currencies: list[str], path: str, amount_field: str
) -> None:
    """Exactly one non-negative amount per supported currency."""
    seen: dict[str, int] = {}
    for j, value in enumerate(values):
        currency = check_currency(value.currency, f"{path}[{j}].currency")
        if currency in seen:
            raise InvalidInput(f"{path}[{j}].currency",
                               f"{currency} already has a value at [{seen[currency]}]; keep one per currency")
        if currency not in currencies:
            raise InvalidInput(f"{path}[{j}].currency",
                               f"{currency} is not a supported currency of the plan ({', '.join(currencies)}); "
                               f"remove it or add it to supportedCurrencies")
        seen[currency] = j
        _non_negative(getattr(value, amount_field), f"{path}[{j}].{amount_field}")
    missing = [c for c in currencies if c not in seen]
    if missing:
        raise InvalidInput(path, f"no value for supported currency {', '.join(missing)}; add "
                                 f"{{currency, {amount_field}}} for every currency in supportedCurrencies")


def refuse_ignored_fields(cards: RateCards) -> None:
    """Fields a caller sends that nothing would read in the combination they come in: refused, naming the field
    and the fix (a field accepted and then ignored is worse than a refusal). Run on what a caller sends (a plan,
    a version, a deal's cards, an inline plan: plans.service.validate_plan and create_plan), not in normalize_plan:
    that also re-checks the plan a new deal is applied to, whose stored cards the caller did not send and which
    must keep validating when they were stored before a check here existed."""
    for i, fee in enumerate(cards.fixedFeeRateCards):
        if fee.type == "ONE_TIME" and fee.enableProration:
            raise InvalidInput(f"rateCards.fixedFeeRateCards[{i}].enableProration", (
                "a ONE_TIME fee is charged in full on the association's first invoice and never prorated, so "
                "enableProration would change nothing; remove it, or make the fee RECURRING (prorated in an "
                "account's first partial period)"))
    for i, feature in enumerate(cards.billingEntitlementRateCards):
        if feature.usageMeterId is None and feature.featureConfigs is not None:
            raise InvalidInput(f"rateCards.billingEntitlementRateCards[{i}].featureConfigs", (
                f"feature {feature.featureId!r} has no usageMeterId, so it is BOOLEAN (granted by the plan having "
                "this card) and no usage counts against a featureCreditLimit; remove featureConfigs, or give the "
                "card the usageMeterId whose usage the limit counts"))


def _non_negative(value: Decimal, path: str) -> None:
    if value < 0:
        raise InvalidInput(path, f"must be 0 or more; got {value}")
