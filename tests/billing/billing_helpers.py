"""A tiered monthly plan on a SUM meter of `tokens`, built straight through the services (no MCP client)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from togai_engine.meters.schemas import UsageMeterCreate
from togai_engine.meters.service import create_usage_meter
from togai_engine.plans.schemas import PricePlanCreate
from togai_engine.plans.service import create_plan
from togai_engine.store.database import Database

CREATED_AT = datetime(2026, 1, 1, tzinfo=UTC)


async def setup_plan(db: Database, grace: int = 2, name: str = "Growth", *, late_usage: str | None = None,
                     minimum_commitment: str | None = None) -> tuple[str, str]:
    """A monthly plan: usage 0.10/unit for the first 1000, 0.05 after; a 20.00 fixed fee; with `late_usage`
    its lateUsage policy, with `minimum_commitment` a USD minimum commitment. -> (plan, meter)."""
    rate_cards: dict[str, Any] = {
        "usageRateCards": [{"usageMeterId": None, "ratePlan": {"pricingModel": "TIERED", "slabs": [
            {"order": 1, "startAfter": 0, "priceType": "PER_UNIT"},
            {"order": 2, "startAfter": 1000, "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.10"},
                                                             {"order": 2, "rate": "0.05"}]}]}],
        "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "20"}]}],
    }
    if minimum_commitment is not None:
        rate_cards["minimumCommitment"] = {"rateValues": [{"currency": "USD", "rate": minimum_commitment}]}
    plan_fields: dict[str, Any] = {"name": name, "pricingCycleConfig": {"interval": "MONTHLY", "gracePeriod": grace},
                                   "rateCards": rate_cards}
    if late_usage is not None:
        plan_fields["lateUsage"] = late_usage
    async with db.unit_of_work() as s:
        meter, _ = await create_usage_meter(s, UsageMeterCreate(
            name=f"tokens_{name}", eventSchemaName="llm", aggregation="SUM",
            computations=[{"computation": "tokens"}]), CREATED_AT)
        rate_cards["usageRateCards"][0]["usageMeterId"] = meter.id
        plan, _ = await create_plan(s, PricePlanCreate.model_validate(plan_fields))
    return plan.id, meter.id
