"""Features of a plan and the entitlement decision. Pure: no I/O, no clock.

A billing-entitlement rate card with a `usageMeterId` is METERED: usage of that meter in the
current cycle counts against `featureConfigs[0].featureCreditLimit` (no limit, in a plan stored before it was
required: unlimited). Without a meter it is BOOLEAN: the plan grants it by having the card (validation refuses a
limit on it).

An entitlementOverageRateCard on a metered feature makes usage past the limit purchasable (Togai §7.2:
"purchasable overage via entitlementOverageRateCards (maxQuantity)", GetFeatureCredits' overageLimit and
usedOverage): the check then allows used + quantity <= limit + maxQuantity (no maxQuantity: no ceiling),
and usedOverage is the overage the cycle's invoices bill (invoices.compose.overage_quantity): each unit judged
by the plan in effect when it was used (invoices README).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from togai_engine.common.numbers import EXACT_QUANTITY_CONTEXT
from togai_engine.entitlements.schemas import Entitlement
from togai_engine.invoices.compose import added_overage
from togai_engine.pricing.money import parse_decimal
from togai_engine.wallets.plan_view import rate_cards


@dataclass(frozen=True)
class Feature:
    feature_id: str
    display_name: str | None
    usage_meter_id: str | None
    limit: Decimal | None  # None: unlimited (metered) or not applicable (boolean)
    overage: bool = False  # an entitlement overage card bills usage past the limit
    overage_limit: Decimal | None = None  # its maxQuantity; None with `overage`: no ceiling

    @property
    def metered(self) -> bool:
        return self.usage_meter_id is not None


def plan_features(plan: Any) -> list[Feature]:
    features = []
    overage = {card["featureId"]: card for card in rate_cards(plan, "entitlementOverageRateCards")}
    for i, card in enumerate(rate_cards(plan, "billingEntitlementRateCards")):
        configs = card.get("featureConfigs") or []
        raw_limit = configs[0].get("featureCreditLimit") if configs else None
        limit = None if raw_limit is None else parse_decimal(
            raw_limit, f"billingEntitlementRateCards[{i}].featureConfigs[0].featureCreditLimit")
        extra = overage.get(card["featureId"])
        max_quantity = None if extra is None or extra.get("maxQuantity") is None else parse_decimal(
            extra["maxQuantity"], f"entitlementOverageRateCards[{card['featureId']}].maxQuantity")
        features.append(Feature(card["featureId"], card.get("displayName"), card.get("usageMeterId") or None, limit,
                                overage=extra is not None, overage_limit=max_quantity))
    return features


def evaluate(
    feature: Feature, *, used: Decimal | None, quantity: Decimal, cycle_start: datetime, cycle_end: datetime,
    used_overage: Decimal | None = None,
) -> Entitlement:
    """Entitled when the feature is boolean, unlimited, or used + quantity <= limit (+ the overage allowed).
    `used_overage`: the overage the cycle's invoices bill when a change cut the cycle (the parts before it judged
    by their own plans' limits, service._cut_overage); None: the cycle's overage under this plan."""
    common = {"featureId": feature.feature_id, "displayName": feature.display_name,
              "usageMeterId": feature.usage_meter_id, "cycleStart": cycle_start, "resetsAt": cycle_end}
    if not feature.metered:
        return Entitlement(**common, featureType="BOOLEAN", entitled=True, reason="ENTITLED")
    used = used if used is not None else Decimal(0)
    if feature.limit is None:
        return Entitlement(**common, featureType="METERED", entitled=True, reason="ENTITLED", used=used)
    # exact, as the meters' SQL adds: the default context (28 digits) could round a sum onto the limit
    with localcontext(EXACT_QUANTITY_CONTEXT):
        remaining = max(feature.limit - used, Decimal(0))
        if not feature.overage:
            entitled = used + quantity <= feature.limit
            return Entitlement(
                **common, featureType="METERED", entitled=entitled, reason="ENTITLED" if entitled else "LIMIT_REACHED",
                limit=feature.limit, used=used, remaining=remaining,
            )
        ceiling = None if feature.overage_limit is None else feature.limit + feature.overage_limit
        entitled = ceiling is None or used + quantity <= ceiling
        if used_overage is None:
            used_overage = feature_overage(feature, used)
        return Entitlement(
            **common, featureType="METERED", entitled=entitled, reason="ENTITLED" if entitled else "LIMIT_REACHED",
            limit=feature.limit, used=used, remaining=remaining, overage=True, overageLimit=feature.overage_limit,
            usedOverage=used_overage,
            overageRemaining=None if ceiling is None else max(ceiling - max(used, feature.limit), Decimal(0)),
        )


def feature_overage(feature: Feature, through: Decimal, before: Decimal = Decimal(0)) -> Decimal:
    """The overage the usage taking the feature's cycle from `before` to `through` adds, judged by the feature's
    limit and overage card, as invoices bill it (0 without an overage card or a limit); `before` 0: the overage of
    a cycle with `through` counted."""
    if feature.limit is None or not feature.overage:
        return Decimal(0)
    return added_overage(through, before, feature.limit, feature.overage_limit)
