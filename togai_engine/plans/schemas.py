"""Price plan shapes (Togai field names). One set of models serves as input and as stored content.

Numbers arrive as JSON numbers or decimal strings and become `Decimal` (never float); they are
returned as decimal strings. Structural checks live here; rules that need the whole plan (slab
order, a rate per supported currency, meters that exist, unique card names) live in validation.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PrivateAttr, WithJsonSchema, model_validator

from togai_engine.common.json_logic import json_logic_text, normalize_expression
from togai_engine.common.numbers import WholeNumber, not_a_boolean
from togai_engine.common.schemas import Model
from togai_engine.cycles import CycleConfig
from togai_engine.errors import InvalidInput
from togai_engine.pricing import RatePlan, RateValue, Slab, SlabRate, parse_decimal
from togai_engine.pricing.rules import Expression, RuleScope, compile_rule_expression


def _to_decimal(value: Any) -> Decimal:
    try:
        return parse_decimal(value, "")
    except InvalidInput as exc:
        raise ValueError(exc.reason) from None


def _to_code(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


DecimalValue = Annotated[Decimal, BeforeValidator(_to_decimal)]
CurrencyCode = Annotated[str, BeforeValidator(_to_code), Field(description="ISO 4217 code, e.g. USD")]
CardName = Annotated[str | None, Field(
    default=None, max_length=50,
    description="unique within the plan; generated from the meter, feature or id when omitted")]
InvoiceTiming = Literal["IN_ADVANCE", "IN_ARREARS"]
RateCardType = Literal["USAGE", "FIXED_FEE", "BILLING_ENTITLEMENT", "CREDIT_GRANT", "MINIMUM_COMMITMENT", "LICENSE",
                      "ENTITLEMENT_OVERAGE"]
LateUsagePolicy = Literal["IGNORE", "BILL_ON_NEXT_INVOICE"]
MAX_PRICING_RULES = 50
LATE_USAGE_DESCRIPTION = (
    "what happens to usage that arrives after its period's invoice became DUE (after the gracePeriod): IGNORE "
    "(default) stores it as NOT_BILLED_CYCLE_CLOSED and never bills it; BILL_ON_NEXT_INVOICE stores it "
    "ACCEPTED_LATE and bills it on the account's next invoice, one line per late period ('usage of period X "
    "received after it closed') charging what the period's invoice would have grown by")


# --- pricing cycle ------------------------------------------------------------------------------


class StartOffset(Model):
    dayOffset: Annotated[str | int | None, BeforeValidator(not_a_boolean)] = Field(
        default=None, description='"1"-"31" or "LAST" ("1"-"7" for WEEKLY, 1 = Monday); default "1"')
    monthOffset: Annotated[str | int | None, BeforeValidator(not_a_boolean)] = Field(
        default=None, description='month of the quarter/half/year the cycle starts in ("1".., FIRST, LAST); '
                                  'omit or "NIL" for MONTHLY and WEEKLY')


class PricingCycleConfigInput(Model):
    interval: Literal["WEEKLY", "MONTHLY", "QUARTERLY", "HALF_YEARLY", "ANNUALLY"] = "MONTHLY"
    startOffset: StartOffset | None = None
    gracePeriod: WholeNumber = Field(default=0, description="days after the cycle end during which late events still "
                                                    "count; the invoice becomes DUE when it ends")
    anniversaryCycle: bool = Field(default=False, description="cycles start on the day the plan was attached")


# --- usage rate cards ---------------------------------------------------------------------------


class SlabConfig(Model):
    packageSize: DecimalValue | None = Field(default=None, description="units per package (PACKAGE slabs)")


class SlabInput(Model):
    order: WholeNumber = Field(description="1, 2, 3 ... in ascending order; joins the slab to its slabRates")
    startAfter: DecimalValue = Field(description="the slab covers quantities above this, up to the next "
                                                 "slab's startAfter; the first slab starts after 0")
    priceType: Literal["PER_UNIT", "FLAT", "PACKAGE"]
    slabConfig: SlabConfig | None = None


class RatePlanInput(Model):
    pricingModel: Literal["TIERED", "VOLUME"] = Field(
        description="TIERED charges each slab for its own part; VOLUME charges all units at the slab holding the total")
    slabs: list[SlabInput] = Field(min_length=1, max_length=100)


class SlabRateInput(Model):
    order: WholeNumber
    rate: DecimalValue = Field(description="per unit (PER_UNIT), per package (PACKAGE) or once (FLAT)")
    flatRate: DecimalValue | None = Field(default=None, description="charged once when usage enters the slab")


class RateConfig(Model):
    minimumRate: DecimalValue | None = Field(default=None, description="the card's amount per cycle is at least this")
    maximumRate: DecimalValue | None = Field(default=None, description="the card's amount per cycle is at most this")


class UsageRateValue(Model):
    currency: CurrencyCode
    slabRates: list[SlabRateInput] = Field(min_length=1)
    rateConfig: RateConfig | None = None


class UsageRateCard(Model):
    name: CardName = None
    displayName: str | None = Field(default=None, max_length=255)
    usageMeterId: str
    ratePlan: RatePlanInput
    rateValues: list[UsageRateValue] = Field(min_length=1, description="one per supported currency")


# --- other rate cards ---------------------------------------------------------------------------


class CurrencyRate(Model):
    currency: CurrencyCode
    rate: DecimalValue


class RecurrenceConfig(Model):
    interval: WholeNumber = Field(
        default=1, description="charge every `interval` cycles (1 = every cycle); an integer >= 1")
    offset: WholeNumber = Field(
        default=0, description="cycles to skip before the first charge; an integer >= 0 (cycle 0 is the "
                               "association's first, possibly partial, period)")


class FixedFeeRateCard(Model):
    id: str | None = Field(default=None, max_length=50, description="your id for the fee (Togai's addon id)")
    name: CardName = None
    displayName: str | None = Field(default=None, max_length=255)
    rateValues: list[CurrencyRate] = Field(min_length=1, description="the fee per cycle, one per supported currency")
    type: Literal["RECURRING", "ONE_TIME"] = Field(
        default="RECURRING",
        description="RECURRING (default) charges the cycles recurrenceConfig picks (every cycle without it); ONE_TIME "
                    "is a setup fee: charged in full, never prorated, on the first invoice of each plan association "
                    "and never again on it")
    invoiceTiming: InvoiceTiming = Field(
        default="IN_ARREARS",
        description="IN_ARREARS (default): on the invoice of the cycle it pays for. IN_ADVANCE (Togai: invoiced in "
                    "the previous billing cycle): a cycle's fee is on the invoice of the period before it, and the "
                    "association's first cycle's on its first invoice; a fee cut short after it became DUE is "
                    "credited for the unused share with a credit note")
    enableProration: bool = Field(default=False, description="RECURRING only: charge the association's first partial "
                                                             "period by its share of the cycle (a plan change always "
                                                             "prorates); true on a ONE_TIME fee is refused")
    recurrenceConfig: RecurrenceConfig | None = Field(
        default=None, description="RECURRING only: charge cycle i (0 = the association's first period) when "
                                  "i >= offset and (i - offset) % interval == 0; e.g. {interval: 3, offset: 1} "
                                  "charges cycles 1, 4, 7, ...")


class FeatureConfig(Model):
    featureCreditLimit: DecimalValue = Field(description="units of the feature allowed per cycle")


class BillingEntitlementRateCard(Model):
    name: CardName = None
    featureId: str = Field(max_length=50)
    displayName: str | None = Field(default=None, max_length=255)
    usageMeterId: str | None = Field(default=None, description="meter whose usage consumes the feature; without one "
                                                                "the feature is BOOLEAN (granted by the plan having it)")
    featureConfigs: list[FeatureConfig] | None = Field(
        default=None, min_length=1, max_length=1,
        description="[{featureCreditLimit}]: required with usageMeterId (the limit its usage counts against per "
                    "cycle); refused without one (a BOOLEAN feature has no limit)")


class EntitlementOverageRateCard(Model):
    """Usage of a metered feature past its featureCreditLimit in a period, priced by this card's slabs."""

    name: CardName = None
    displayName: str | None = Field(default=None, max_length=255)
    featureId: str = Field(max_length=50, description="a featureId of a billingEntitlementRateCard of this plan that "
                                                      "has a usageMeterId")
    ratePlan: RatePlanInput = Field(description="slabs over the overage units (usage past the limit)")
    rateValues: list[UsageRateValue] = Field(min_length=1, description="one per supported currency")
    maxQuantity: DecimalValue | None = Field(
        default=None, description="overage units billed (and allowed by check_entitlement) per cycle at most; "
                                  "omit for unlimited")
    billingConfig: dict[str, Any] | None = Field(
        default=None, description="not supported: overage is billed on every period's invoice; omit it")


class GrantDetails(Model):
    priority: WholeNumber | None = Field(default=None, description="lower numbers are used first (wallet default 100)")
    expiryType: Literal["PRICING_CYCLE", "NO_EXPIRY", "CUSTOM"] = "PRICING_CYCLE"
    expiryDuration: str | None = Field(default=None, description=(
        "ISO 8601 duration such as P45D; CUSTOM only; at least as long as every pricing cycle (P31D covers any "
        "MONTHLY one)"))
    applicableEntityIds: list[str] | None = Field(
        default=None, min_length=1, max_length=50,
        description="names of this plan's usage, fixed-fee or overage rate cards: the grant pays only their lines "
                    "of an invoice; omit to pay any line")


class CreditPriceSlab(Model):
    """One slab of the price of PREPAID credits (Togai's slabDetails), over the number of credits bought."""

    startAfter: DecimalValue = Field(description="credits after which this slab applies (0 for the first)")
    priceType: Literal["PER_UNIT", "FLAT", "PACKAGE"] = Field(
        description="PER_UNIT: rate per credit; FLAT: rate once for the slab; PACKAGE: rate per packageSize credits")
    rate: DecimalValue = Field(description="the price in this currency (0 or more)")
    slabConfig: SlabConfig | None = Field(default=None, description='PACKAGE only: {"packageSize": "100"}')


class CreditAmount(Model):
    currency: CurrencyCode
    creditAmount: DecimalValue = Field(description="credits granted each cycle in this currency")
    slabDetails: list[CreditPriceSlab] | None = Field(
        default=None, min_length=1, max_length=10,
        description="invoiceTiming PREPAID only: the price of the creditAmount credits, slabs over the credits "
                    "priced by rateDetails.pricingModel (e.g. [{startAfter 0, priceType PER_UNIT, rate 0.9}]: "
                    "1000 credits sell for 900.00); omit for credits granted free")

    def rate_plan(self, pricing_model: str) -> tuple[RatePlan, RateValue]:
        """Togai's slabDetails (shape and rate in one object) as the rating core's rate plan and rates."""
        slabs = self.slabDetails or []
        return (RatePlan(pricing_model, tuple(
                    Slab(order, slab.startAfter, slab.priceType,
                         slab.slabConfig.packageSize if slab.slabConfig else None)
                    for order, slab in enumerate(slabs, start=1))),
                RateValue(self.currency, tuple(SlabRate(order, slab.rate) for order, slab in enumerate(slabs, start=1))))


class CreditRateDetails(Model):
    pricingModel: Literal["TIERED", "VOLUME"] = Field(
        default="TIERED", description="how slabDetails price the credits bought (PREPAID only)")
    currencySlabRateDetails: list[CreditAmount] = Field(min_length=1, description="one per supported currency")


class CreditGrantRateCard(Model):
    id: str | None = Field(default=None, max_length=50)
    name: CardName = None
    displayName: str | None = Field(default=None, max_length=255)
    type: Literal["RECURRING", "ONE_TIME"] = Field(
        default="RECURRING", description="RECURRING grants every cycle; ONE_TIME once per account and plan")
    grantDetails: GrantDetails = Field(default_factory=GrantDetails)
    rateDetails: CreditRateDetails
    invoiceTiming: str | None = Field(
        default=None, description="omit: the credits are granted free as each period starts. PREPAID: the credits "
                                  "are sold (priced by rateDetails' slabDetails) on the invoice that carries the "
                                  "period's in-advance charges (the advance invoice for the first period, else the "
                                  "previous period's) and granted once that invoice is PAID (update_invoice_status). "
                                  "IN_ADVANCE and IN_ARREARS are refused")


class MinimumCommitment(Model):
    displayName: str = Field(default="Minimum commitment", max_length=255)
    rateValues: list[CurrencyRate] = Field(min_length=1, description="the committed amount per cycle, per currency")


class LicenseConfig(Model):
    maxQuantity: WholeNumber | None = Field(
        default=None, description="the most seats update_license may set (a change beyond it is refused); "
                                  "omit for no limit")


class LicenseRateCard(Model):
    """Seats: priced by `ratePlan` over the account's seat count (update_license), per billing period."""

    id: str = Field(max_length=50, description="the license id update_license names (Togai's addon id)")
    name: CardName = None
    displayName: str | None = Field(default=None, max_length=255)
    ratePlan: RatePlanInput = Field(description="slabs over the seat count (TIERED or VOLUME)")
    rateValues: list[UsageRateValue] = Field(min_length=1, description="one per supported currency")
    enableProration: bool = Field(
        default=False, description="true: each span of constant seats is charged by its share of the cycle; "
                                   "false: the period is charged at its highest seat count")
    config: LicenseConfig | None = None
    invoiceTiming: InvoiceTiming = Field(
        default="IN_ARREARS", description="IN_ARREARS: billed on the invoice of the period the seats were held "
                                          "(IN_ADVANCE is refused: seats are not billed ahead)")


class RateCards(Model):
    usageRateCards: list[UsageRateCard] = Field(default_factory=list)
    licenseRateCards: list[LicenseRateCard] = Field(default_factory=list)
    fixedFeeRateCards: list[FixedFeeRateCard] = Field(default_factory=list)
    billingEntitlementRateCards: list[BillingEntitlementRateCard] = Field(default_factory=list)
    creditGrantRateCards: list[CreditGrantRateCard] = Field(default_factory=list)
    minimumCommitment: MinimumCommitment | None = None
    entitlementOverageRateCards: list[EntitlementOverageRateCard] = Field(default_factory=list)

    def payable_names(self) -> list[str]:
        """Names of the cards that put lines on an invoice (usage, license, fixed fee, entitlement overage), in
        that order: what a credit grant's applicableEntityIds may name."""
        cards = (*self.usageRateCards, *self.licenseRateCards, *self.fixedFeeRateCards,
                 *self.entitlementOverageRateCards)
        return [card.name for card in cards if card.name]


# --- pricing rules ------------------------------------------------------------------------------


def _logic_text(value: Any) -> Any:
    """A JSON Logic object (or number, boolean) becomes its exact JSON text, the form that is stored."""
    if value is None or isinstance(value, str):
        return value
    try:
        return json_logic_text(normalize_expression(value, field=""))
    except InvalidInput as exc:
        raise ValueError(exc.reason) from None


JsonLogicText = Annotated[str, BeforeValidator(_logic_text), WithJsonSchema({
    "anyOf": [{"type": "object"}, {"type": "string"}, {"type": "number"}, {"type": "boolean"}],
    "description": "JSON Logic as an object or as its JSON text; stored as JSON text"})]


class PricingRuleAction(Model):
    type: Literal["ADD", "UPDATE"] = Field(
        description="ADD: a line of the computed amount (negative for a discount); UPDATE: set the target rate "
                    "card's line to the computed amount")
    target: str | None = Field(default=None, max_length=50, description="UPDATE only: the rate card's name")
    description: str | None = Field(default=None, max_length=255, description="the line's text (default the rule's name)")


class PricingRule(Model):
    name: str = Field(min_length=1, max_length=50, description="unique within the plan; names the rule in the log")
    order: WholeNumber = Field(description="rules run in ascending order, each seeing the lines after the previous")
    invoiceTiming: Literal["IN_ADVANCE", "IN_ARREARS"] = Field(
        default="IN_ARREARS", description="IN_ARREARS only: rules price the invoice of the period they cover")
    condition: JsonLogicText | None = Field(
        default=None, description='JSON Logic giving true or false, e.g. {">": [{"var": "subTotal"}, 1000]}; '
                                  "absent: the rule always runs")
    computation: JsonLogicText = Field(
        description='JSON Logic giving the amount, e.g. {"*": [{"var": "subTotal"}, -0.1]}')
    action: PricingRuleAction


PRICING_RULES_DESCRIPTION = (
    "rules run in `order` after the rate-card lines and before the minimum-commitment true-up: "
    "{name, order, condition (JSON Logic, optional), computation (JSON Logic: the amount), action {type ADD|UPDATE, "
    "target (UPDATE: a rate card name), description}}. Variables: subTotal (the lines before any rule), total "
    "(after the rules before this one), cycleIndex (0 for the plan's first period on the account), "
    "usage.<meterId>, rateCards.<rate card name>. Operators: var == != < <= > >= and or ! if in + - * / min max; "
    "numbers are exact decimals. Amounts round half-up to the currency's minor unit; the total never goes below 0")
NON_BILLING_CARDS = ("billingEntitlementRateCards", "creditGrantRateCards")


def billed_card_names(cards: RateCards) -> frozenset[str]:
    """Names of the rate cards that bill a line of their own (a rule may read and UPDATE them)."""
    names: set[str] = set()
    for field in type(cards).model_fields:
        value = getattr(cards, field)
        if field not in NON_BILLING_CARDS and isinstance(value, list):
            names.update(card.name for card in value if getattr(card, "name", None))
    return frozenset(names)


def rule_scope(cards: RateCards) -> RuleScope:
    features = {card.featureId: card.usageMeterId for card in cards.billingEntitlementRateCards}
    overage_meters = {features.get(card.featureId) for card in cards.entitlementOverageRateCards}
    return RuleScope(meters=frozenset(card.usageMeterId for card in cards.usageRateCards)
                     | frozenset(m for m in overage_meters if m),
                     rate_cards=billed_card_names(cards))


@dataclass(frozen=True)
class CompiledRule:
    rule: PricingRule
    condition: Expression | None
    computation: Expression


def compile_rule(rule: PricingRule, scope: RuleScope, path: str) -> CompiledRule:
    condition = None if rule.condition is None else compile_rule_expression(
        rule.condition, f"{path}.condition", scope, "bool")
    return CompiledRule(rule, condition, compile_rule_expression(rule.computation, f"{path}.computation", scope,
                                                                 "number"))


# --- plans --------------------------------------------------------------------------------------


class PricePlanCreate(Model):
    name: str = Field(min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=255)
    pricingCycleConfig: PricingCycleConfigInput
    supportedCurrencies: list[CurrencyCode] = Field(default_factory=lambda: ["USD"], min_length=1, max_length=20)
    rateCards: RateCards = Field(default_factory=RateCards)
    lateUsage: LateUsagePolicy = Field(default="IGNORE", description=LATE_USAGE_DESCRIPTION)
    pricingRules: list[PricingRule] = Field(default_factory=list, max_length=MAX_PRICING_RULES,
                                            description=PRICING_RULES_DESCRIPTION)


class UsagePricing:
    """A usage, license or entitlement overage rate card in the rating core's terms: the slab shape and the
    rates per currency."""

    __slots__ = ("card", "rate_plan", "rate_values")

    def __init__(self, card: UsageRateCard | LicenseRateCard | EntitlementOverageRateCard) -> None:
        self.card = card
        self.rate_plan = to_rate_plan(card.ratePlan)
        self.rate_values = {value.currency: to_rate_value(value) for value in card.rateValues}

    @property
    def meter_id(self) -> str:
        """The usage meter the card prices."""
        assert isinstance(self.card, UsageRateCard)
        return self.card.usageMeterId


def metered_limit_problem(card: BillingEntitlementRateCard, i: int) -> InvalidInput | None:
    """Why billingEntitlementRateCards[i], metered, has no limit to count its usage against; None when it has one or
    is BOOLEAN."""
    if card.usageMeterId is None or card.featureConfigs is not None:
        return None
    return InvalidInput(f"rateCards.billingEntitlementRateCards[{i}].featureConfigs", (
        f"feature {card.featureId!r} is metered (usageMeterId {card.usageMeterId!r}): give the units of its usage "
        'allowed per cycle, e.g. [{"featureCreditLimit": "1000"}]'))


def overage_feature_problem(card: EntitlementOverageRateCard, i: int,
                            entitlements: list[BillingEntitlementRateCard]) -> InvalidInput | None:
    """Why entitlementOverageRateCards[i] has no usage past a limit to price: its feature has no card in
    `entitlements`, or that card no meter or no limit (what OveragePricing reads); None when it can price it."""
    path = f"rateCards.entitlementOverageRateCards[{i}]"
    found = next(((j, e) for j, e in enumerate(entitlements) if e.featureId == card.featureId), None)
    if found is None:
        known = ", ".join(repr(e.featureId) for e in entitlements) or "none"
        return InvalidInput(f"{path}.featureId", f"{card.featureId!r} is not the featureId of a "
                                                 f"billingEntitlementRateCard of this plan (features: {known}); add "
                                                 "the feature's billingEntitlementRateCard with its featureCreditLimit")
    j, feature = found
    if feature.usageMeterId is None:
        return InvalidInput(f"{path}.featureId", f"feature {card.featureId!r} has no usageMeterId on its "
                                                 "billingEntitlementRateCard, so it counts no usage to bill past its "
                                                 "limit; give that card a usageMeterId")
    return metered_limit_problem(feature, j)


class OveragePricing(UsagePricing):
    """An entitlement overage card with the meter and featureCreditLimit of its feature's entitlement card."""

    __slots__ = ("limit", "max_quantity", "usage_meter_id")

    def __init__(self, card: EntitlementOverageRateCard, entitlement: BillingEntitlementRateCard) -> None:
        super().__init__(card)
        # PricePlan refuses an overage card of a boolean feature, and a metered feature without its limit
        assert entitlement.usageMeterId is not None and entitlement.featureConfigs is not None
        self.usage_meter_id: str = entitlement.usageMeterId
        self.limit: Decimal = entitlement.featureConfigs[0].featureCreditLimit
        self.max_quantity: Decimal | None = card.maxQuantity

    @property
    def meter_id(self) -> str:
        return self.usage_meter_id


class PlanHeader(Model):
    """What every view of a stored plan shows."""

    id: str
    name: str
    description: str | None = None
    status: Literal["ACTIVE", "DRAFT"] = Field(
        default="ACTIVE", description="of this version: DRAFT (update_price_plan) until finalize_price_plan")
    version: int = Field(default=1, description="1 is what create_price_plan made; update_price_plan drafts the next")
    pricingCycleConfig: PricingCycleConfigInput
    supportedCurrencies: list[str]
    lateUsage: LateUsagePolicy = Field(default="IGNORE", description=LATE_USAGE_DESCRIPTION)
    createdAt: datetime


class PricePlan(PlanHeader):
    """A stored plan version, immutable once ACTIVE: a new version (update_price_plan + finalize_price_plan) or
    another plan (update_account) changes an account's pricing."""

    rateCards: RateCards
    pricingRules: list[PricingRule] = Field(default_factory=list, description=PRICING_RULES_DESCRIPTION)

    _cycle: CycleConfig | None = PrivateAttr(default=None)
    _usage: list[UsagePricing] | None = PrivateAttr(default=None)
    _licenses: list[UsagePricing] | None = PrivateAttr(default=None)
    _overridden: bool = PrivateAttr(default=False)

    @property
    def overridden(self) -> bool:
        """An account's effective plan: the version with the association's rateCardOverrides (plans.overrides)."""
        return self._overridden
    _overage: list[OveragePricing] | None = PrivateAttr(default=None)
    _rules: list[CompiledRule] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _overage_features_metered(self) -> PricePlan:
        """create_price_plan refuses an overage card whose feature has no meter or no limit (overage_feature_problem);
        a stored version or deal edited since still parses, so it is checked on every read of one. InvalidInput (not
        a ValueError, so pydantic passes it on as raised) makes it a plan that no longer validates, failing only
        its accounts' readers (plans.overrides.ResolvedPlans), never a read or a bill run over many."""
        entitlements = self.rateCards.billingEntitlementRateCards
        for i, card in enumerate(self.rateCards.entitlementOverageRateCards):
            problem = overage_feature_problem(card, i, entitlements)
            if problem is not None:
                raise problem
        return self

    @property
    def compiled_rules(self) -> list[CompiledRule]:
        """The pricing rules compiled once, in the order they run (stored plans were validated)."""
        if self._rules is None:
            scope = rule_scope(self.rateCards)
            self._rules = [compile_rule(rule, scope, f"pricingRules[{i}]") for i, rule in
                           sorted(enumerate(self.pricingRules), key=lambda item: item[1].order)]
        return self._rules

    @property
    def cycle_config(self) -> CycleConfig:
        if self._cycle is None:
            self._cycle = CycleConfig.parse(self.pricingCycleConfig.model_dump(exclude_none=True))
        return self._cycle

    @property
    def usage_pricing(self) -> list[UsagePricing]:
        """The usage rate cards converted once for the rating core (plans never change)."""
        if self._usage is None:
            self._usage = [UsagePricing(card) for card in self.rateCards.usageRateCards]
        return self._usage

    @property
    def license_pricing(self) -> list[UsagePricing]:
        """The license rate cards converted once for the rating core."""
        if self._licenses is None:
            self._licenses = [UsagePricing(card) for card in self.rateCards.licenseRateCards]
        return self._licenses

    def license_card(self, license_id: str) -> LicenseRateCard | None:
        return next((card for card in self.rateCards.licenseRateCards if card.id == license_id), None)

    @property
    def overage_pricing(self) -> list[OveragePricing]:
        """The entitlement overage cards with their feature's meter and limit, converted once."""
        if self._overage is None:
            features = {card.featureId: card for card in self.rateCards.billingEntitlementRateCards}
            self._overage = [OveragePricing(card, features[card.featureId])
                             for card in self.rateCards.entitlementOverageRateCards]
        return self._overage

    @property
    def billed_meter_ids(self) -> list[str]:
        """Every meter whose usage an invoice of this plan prices: usage cards' and overage cards' features'."""
        meters = [card.usageMeterId for card in self.rateCards.usageRateCards]
        return meters + [o.usage_meter_id for o in self.overage_pricing if o.usage_meter_id not in meters]

    # Shortcuts so other domains can write plan.creditGrantRateCards etc.
    @property
    def usageRateCards(self) -> list[UsageRateCard]:
        return self.rateCards.usageRateCards

    @property
    def fixedFeeRateCards(self) -> list[FixedFeeRateCard]:
        return self.rateCards.fixedFeeRateCards

    @property
    def billingEntitlementRateCards(self) -> list[BillingEntitlementRateCard]:
        return self.rateCards.billingEntitlementRateCards

    @property
    def creditGrantRateCards(self) -> list[CreditGrantRateCard]:
        return self.rateCards.creditGrantRateCards

    @property
    def minimumCommitment(self) -> MinimumCommitment | None:
        return self.rateCards.minimumCommitment


class PricePlanSummary(PlanHeader):
    rateCardCount: int


class RateCardInfo(Model):
    """One rate card of a plan, as list_rate_cards shows it."""

    name: str
    type: RateCardType
    displayName: str
    pricePlanId: str
    usageMeterId: str | None = None
    featureId: str | None = None
    licenseId: str | None = None
    currencies: list[str]
    rateCard: dict[str, Any] = Field(description="the card exactly as stored")


# --- conversion to the rating core --------------------------------------------------------------


def to_rate_plan(plan: RatePlanInput) -> RatePlan:
    return RatePlan(
        pricing_model=plan.pricingModel,
        slabs=tuple(
            Slab(
                order=slab.order,
                start_after=slab.startAfter,
                price_type=slab.priceType,
                package_size=slab.slabConfig.packageSize if slab.slabConfig else None,
            )
            for slab in plan.slabs
        ),
    )


def to_rate_value(value: UsageRateValue) -> RateValue:
    config = value.rateConfig
    return RateValue(
        currency=value.currency,
        slab_rates=tuple(SlabRate(order=r.order, rate=r.rate, flat_rate=r.flatRate) for r in value.slabRates),
        minimum_rate=config.minimumRate if config else None,
        maximum_rate=config.maximumRate if config else None,
    )
