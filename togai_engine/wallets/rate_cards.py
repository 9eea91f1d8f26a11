"""Credit-grant rate cards -> the grant each issues for a cycle. Pure: no I/O, no clock.

Togai's shape: {id, name, type ONE_TIME|RECURRING, grantDetails {priority, expiryType
PRICING_CYCLE|NO_EXPIRY|CUSTOM, expiryDuration}, rateDetails {currencySlabRateDetails
[{currency, creditAmount}]}}. The grant starts at the cycle start; it expires at the cycle end
(PRICING_CYCLE), never (NO_EXPIRY), or at cycle start + expiryDuration (CUSTOM). With
grantDetails.applicableEntityIds it pays only the invoice lines of those rate cards (burn.plan_burn).

A card with invoiceTiming PREPAID issues nothing as the cycle starts: its credits are sold on an invoice
(invoices/compose.py prices them by the row's slabDetails) and granted once it is PAID: with the window they
were bought for while it can still pay an invoice, else from the payment (granted_when_paid; wallets README).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from togai_engine.common.durations import parse_duration
from togai_engine.cycles.cycles import Cycle
from togai_engine.errors import InvalidInput
from togai_engine.pricing.money import parse_decimal, round_money

PRICING_CYCLE = "PRICING_CYCLE"
NO_EXPIRY = "NO_EXPIRY"
CUSTOM = "CUSTOM"
DEFAULT_PRIORITY = 100
PREPAID = "PREPAID"


@dataclass(frozen=True)
class RateCardGrant:
    grantor_id: str  # "<pricePlanId>:<card name or id>", unique per plan
    amount: Decimal
    priority: int
    effective_from: datetime
    effective_until: datetime | None
    one_time: bool
    purpose: str
    applicable_entity_ids: tuple[str, ...] | None = None  # the rate cards whose invoice lines it may pay


def grants_for_cycle(
    cards: Sequence[Mapping[str, Any]], plan_id: str, currency: str, cycle: Cycle
) -> list[RateCardGrant]:
    """The grants the plan's credit-grant cards issue for `cycle` in `currency` (cards without an
    amount in that currency, or with 0, issue nothing)."""
    grants = []
    for i, card in enumerate(cards):
        if is_prepaid(card.get("invoiceTiming")):
            continue  # granted when the invoice selling it is paid
        grant = card_grant(card, plan_id, currency, cycle, f"creditGrantRateCards[{i}]")
        if grant is not None:
            grants.append(grant)
    return grants


def is_prepaid(invoice_timing: object) -> bool:
    """A credit-grant card's `invoiceTiming` sells its credits (PREPAID) rather than granting them free."""
    return str(invoice_timing or "").strip().upper() == PREPAID


def card_grant(card: Mapping[str, Any], plan_id: str, currency: str, cycle: Cycle, path: str) -> RateCardGrant | None:
    """The grant `card` makes for `cycle` in `currency`: None when it has no amount (or 0) in that currency."""
    card_key = card.get("name") or card.get("id")
    if not card_key:
        raise InvalidInput(f"{path}.id", "a credit-grant rate card needs an id or a name")
    amount = _credit_amount(card, currency, path)
    if amount is None or amount <= 0:
        return None
    details = card.get("grantDetails") or {}
    priority = details.get("priority")
    priority = DEFAULT_PRIORITY if priority is None else int(priority)
    expiry_type = details.get("expiryType") or PRICING_CYCLE
    if expiry_type == PRICING_CYCLE:
        until: datetime | None = cycle.end
    elif expiry_type == NO_EXPIRY:
        until = None
    elif expiry_type == CUSTOM:
        field = f"{path}.grantDetails.expiryDuration"
        duration = details.get("expiryDuration")
        try:
            until = cycle.start + parse_duration(duration, field)
        except (OverflowError, ValueError):
            raise InvalidInput(field, (
                f"{duration!r} from the cycle starting {cycle.start.isoformat()} ends after the year 9999, so price "
                f"plan {plan_id!r} cannot grant it; give the card a shorter expiryDuration, or expiryType NO_EXPIRY "
                "for credits that never expire, in a new version of the plan")) from None
    else:
        raise InvalidInput(
            f"{path}.grantDetails.expiryType", f"{expiry_type!r} is not PRICING_CYCLE, NO_EXPIRY or CUSTOM"
        )
    return RateCardGrant(
        grantor_id=f"{plan_id}:{card_key}",
        amount=amount,
        priority=priority,
        effective_from=cycle.start,
        effective_until=until,
        one_time=(card.get("type") or "RECURRING") == "ONE_TIME",
        purpose=str(card.get("displayName") or card_key),
        applicable_entity_ids=tuple(entities) if (entities := details.get("applicableEntityIds")) else None,
    )


def _credit_amount(card: Mapping[str, Any], currency: str, path: str) -> Decimal | None:
    rows = (card.get("rateDetails") or {}).get("currencySlabRateDetails") or []
    for j, row in enumerate(rows):
        if row.get("currency") == currency and row.get("creditAmount") is not None:
            field = f"{path}.rateDetails.currencySlabRateDetails[{j}].creditAmount"
            return round_money(parse_decimal(row["creditAmount"], field), currency)
    return None


def sold_grant(details: Mapping[str, Any]) -> RateCardGrant:
    """The grant a PREPAID purchase line sold, from the line's details (as composed when it was invoiced, so a
    later change of the plan does not change what was bought)."""
    until = details.get("effectiveUntil")
    entities = details.get("applicableEntityIds")
    return RateCardGrant(
        grantor_id=str(details["grantorId"]), amount=Decimal(str(details["creditAmount"])),
        priority=int(details["priority"]), effective_from=datetime.fromisoformat(details["effectiveFrom"]),
        effective_until=datetime.fromisoformat(until) if until else None, one_time=bool(details["oneTime"]),
        purpose=str(details["purpose"]), applicable_entity_ids=tuple(entities) if entities else None)


def granted_when_paid(grant: RateCardGrant, paid_at: datetime,
                      pending: Sequence[tuple[datetime, datetime]]) -> RateCardGrant:
    """The grant a PREPAID sale issues when its invoice is PAID at `paid_at`: the window it was bought for while that
    window may still pay an invoice (`pending`: (end, due instant) of the account's periods whose invoice is not DUE
    yet, ended or under way; or a later period: it ends after them, or, with none, has not ended), else the same
    length from the payment, at least to the end of the period under way, so credit paid for late is never left to
    expire unused (invoices/README.md, "PREPAID credits"). A window may pay a period's invoice (wallets README, "Which
    grants pay an invoice") when it starts before the period ends and is valid when the invoice becomes DUE or
    through the period's end."""
    start, until = grant.effective_from, grant.effective_until
    if until is None or any(start < end and (until > due or until >= end) for end, due in pending):
        return grant
    if until > max((end for end, _ in pending), default=paid_at):
        return grant  # it reaches a period after those known (not started yet), or there is none to pay
    moved = paid_at + (until - start)
    under_way = min((end for end, _ in pending if end > paid_at), default=None)  # the period paid in ends then
    if under_way is not None and moved < under_way:
        moved = under_way  # a shorter window could not pay its invoice (February's 28 days paid on 2 March)
    return replace(grant, effective_from=paid_at, effective_until=moved, purpose=(
        f"{grant.purpose} (bought for {start.date().isoformat()} – {until.date().isoformat()}, paid once it could "
        f"pay no invoice: granted {paid_at.date().isoformat()} – {moved.date().isoformat()})"))
