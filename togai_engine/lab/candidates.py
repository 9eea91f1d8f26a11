"""Plans to price: a stored plan by id, or an inline plan in create_price_plan's shape.

Inline plans go through the same validation as create_price_plan (plans.service.validate_plan), so
their errors name the same fields, prefixed with where the plan sits in the request
(`candidates[1].rateCards.usageRateCards[0]...`). They are never stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.common.messages import describe_errors
from togai_engine.errors import InvalidInput
from togai_engine.plans import service as plans
from togai_engine.plans.schemas import PricePlan, PricePlanCreate

INLINE_ID = "inline"
PlanSpec = str | Mapping[str, Any]


@dataclass(frozen=True)
class Candidate:
    index: int
    plan: PricePlan
    stored: bool  # given by id (pricePlanId) rather than inline

    @property
    def price_plan_id(self) -> str | None:
        return self.plan.id if self.stored else None


def validation_path(exc: ValidationError, root: object) -> tuple[str, str]:
    """(field path, message) of the first field a pydantic error finds at fault in `root`, in the engine's
    path style (a.b[0].c) and words."""
    return describe_errors(exc, root)[0]


def parse_inline(raw: Mapping[str, Any], prefix: str) -> PricePlanCreate:
    """create_price_plan's arguments as one object (top-level minimumCommitment included)."""
    values = dict(raw)
    commitment = values.pop("minimumCommitment", None)
    if commitment is not None:
        cards = values.get("rateCards")
        cards = dict(cards) if isinstance(cards, Mapping) else ({} if cards is None else cards)
        if isinstance(cards, dict):
            if cards.get("minimumCommitment") is not None:
                raise InvalidInput(f"{prefix}minimumCommitment",
                                   "is also given in rateCards.minimumCommitment; give it once")
            cards["minimumCommitment"] = commitment
        values["rateCards"] = cards
    for key in ("supportedCurrencies", "rateCards", "description"):
        if key in values and values[key] is None:
            del values[key]  # the tool's "omitted" is null; the defaults apply as in create_price_plan
    try:
        return PricePlanCreate.model_validate(values)
    except ValidationError as exc:
        described = []
        for path, message in describe_errors(exc, values):
            if commitment is not None and path.startswith("rateCards.minimumCommitment"):
                path = path.removeprefix("rateCards.")  # where the caller put it
            described.append((f"{prefix}{path}", message))
        if len(described) == 1:
            raise InvalidInput(*described[0]) from None
        raise InvalidInput("", "; ".join(f"{path}: {message}" for path, message in described)) from None


async def inline_plan(session: AsyncSession, raw: Mapping[str, Any], prefix: str, now: datetime) -> PricePlan:
    """The plan as create_price_plan would store it, validated the same way, held in memory only."""
    data = parse_inline(raw, prefix)
    try:
        plan = await plans.validate_plan(session, data)
    except InvalidInput as exc:
        raise InvalidInput(f"{prefix}{exc.field}", exc.reason) from None
    return PricePlan.model_validate({**plan.model_dump(), "id": INLINE_ID, "createdAt": now})


def priced_for(plan: PricePlan, stored: bool, own: PricePlan | None) -> PricePlan:
    """What prices an account's usage under `plan`: a stored plan that is the account's own plan version is
    priced with the account's deal (`own`: that version with its rateCardOverrides), anything else as it is.
    The one rule of simulate_price_plan and of calculate_revenue for an account, so both reproduce its invoices."""
    if own is not None and stored and (plan.id, plan.version) == (own.id, own.version):
        return own
    return plan


async def resolve(session: AsyncSession, spec: object, field: str, now: datetime) -> tuple[PricePlan, bool]:
    """(plan, stored) for a plan id or an inline plan found at `field` of the request."""
    if isinstance(spec, str):
        return await plans.get_plan(session, spec, field=field), True
    if isinstance(spec, Mapping):
        return await inline_plan(session, spec, f"{field}.", now), False
    raise InvalidInput(field, "must be a price plan id (pp_...) or a plan object in create_price_plan's shape "
                              "{name, pricingCycleConfig, supportedCurrencies, rateCards}")


async def resolve_candidates(
    session: AsyncSession, specs: Sequence[object], now: datetime, *, field: str = "candidates", limit: int = 5
) -> list[Candidate]:
    if not isinstance(specs, Sequence) or isinstance(specs, str) or not 1 <= len(specs) <= limit:
        raise InvalidInput(field, f"give 1 to {limit} plans: price plan ids and/or inline plans")
    candidates: list[Candidate] = []
    names: dict[str, int] = {}
    for i, spec in enumerate(specs):
        plan, stored = await resolve(session, spec, f"{field}[{i}]", now)
        if plan.name in names:
            where = f"{field}[{i}]" + ("" if stored else ".name")
            raise InvalidInput(where, f"{plan.name!r} is also the name of {field}[{names[plan.name]}]; give each "
                                      "candidate its own name (results are labelled by name)")
        names[plan.name] = i
        candidates.append(Candidate(i, plan, stored))
    return candidates
