"""Whole-plan checks an agent can get wrong, each naming the exact field, and name defaults.

`normalize_plan` returns the content that is stored: currencies upper-case, every rate card named,
the pricing cycle in canonical form. Meter existence is checked by the service (it needs the DB).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from togai_engine.common.durations import parse_duration
from togai_engine.common.validation import check_currency, check_id
from togai_engine.cycles import CycleConfig
from togai_engine.errors import InvalidInput
from togai_engine.plans.schemas import (
    BillingEntitlementRateCard,
    CreditAmount,
    CreditGrantRateCard,
    CurrencyRate,
    FixedFeeRateCard,
    PricePlanCreate,
    PricingCycleConfigInput,
    RateCards,
    UsageRateCard,
    to_rate_plan,
    to_rate_value,
)
from togai_engine.pricing import validate_rate_plan


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
    fixed = [_fixed_fee_card(card, i, currencies, names) for i, card in enumerate(cards.fixedFeeRateCards)]
    entitlements = [_entitlement_card(card, i, names) for i, card in enumerate(cards.billingEntitlementRateCards)]
    grants = [_credit_grant_card(card, i, currencies, names) for i, card in enumerate(cards.creditGrantRateCards)]
    commitment = cards.minimumCommitment
    if commitment is not None:
        _currency_rates(commitment.rateValues, currencies, "rateCards.minimumCommitment.rateValues", "rate")
    return PricePlanCreate(
        name=name,
        description=data.description,
        pricingCycleConfig=PricingCycleConfigInput.model_validate(cycle.to_dict()),
        supportedCurrencies=currencies,
        rateCards=RateCards(
            usageRateCards=usage, fixedFeeRateCards=fixed, billingEntitlementRateCards=entitlements,
            creditGrantRateCards=grants, minimumCommitment=commitment,
        ),
        lateUsage=data.lateUsage,
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
    for j, config in enumerate(card.featureConfigs):
        _non_negative(config.featureCreditLimit, f"{path}.featureConfigs[{j}].featureCreditLimit")
    name = names.claim(card.name, card.featureId, path)
    return card.model_copy(update={"name": name, "displayName": card.displayName or name})


def _credit_grant_card(
    card: CreditGrantRateCard, i: int, currencies: list[str], names: _CardNames
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
                               "a CUSTOM expiry needs an ISO 8601 duration such as P30D or P1M")
        parse_duration(duration, f"{path}.grantDetails.expiryDuration")
    elif duration is not None:
        raise InvalidInput(f"{path}.grantDetails.expiryDuration",
                           f"only applies when expiryType is CUSTOM (it is {details.expiryType}); remove it")
    name = names.claim(card.name, card.id or "credit_grant", path)
    _currency_rates(card.rateDetails.currencySlabRateDetails, currencies,
                    f"{path}.rateDetails.currencySlabRateDetails", "creditAmount")
    return card.model_copy(update={"name": name, "displayName": card.displayName or name})


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


def _non_negative(value: Decimal, path: str) -> None:
    if value < 0:
        raise InvalidInput(path, f"must be 0 or more; got {value}")
