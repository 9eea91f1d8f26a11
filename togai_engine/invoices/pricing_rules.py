"""Applying a plan's pricing rules to an invoice's lines: pure (no I/O, no clock).

Rules run in `order` after the rate-card lines and before the minimum-commitment true-up (Togai's true-up
tops up SUB_TOTAL, and a rule's line is part of it: a commitment stays a floor that a discount cannot go
under). Each rule sees the lines as the rules before it left them:
- variables: subTotal (the lines before any rule), total (after the previous rules), cycleIndex (0 for the
  association's first period), usage.<meterId> (the quantity billed), rateCards.<name> (that card's line now;
  0 when it has none on this invoice).
- a condition that is false skips the rule (SKIPPED); an evaluation that fails (division by zero, a result
  beyond 60 digits, an UPDATE whose card has no line here) leaves the invoice as it was (FAILED, with why).
- the computed amount is rounded once, half-up, to the currency's minor unit. ADD adds a line of it
  (negative for a discount); UPDATE sets the target card's line to it (never below 0). Either is limited so
  the total never goes below 0 (`clamped` in the log says it was).
Every rule, fired or not, has an entry in the invoice's log (`pricingRuleLogs`), money as decimal strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from togai_engine.common.numbers import EXACT_MONEY_CONTEXT, exact_sum
from togai_engine.errors import InvalidInput
from togai_engine.plans.schemas import CompiledRule
from togai_engine.pricing import round_money
from togai_engine.pricing.rules import CYCLE_INDEX, RATE_CARD_PREFIX, SUB_TOTAL, TOTAL, USAGE_PREFIX, EvaluationError

PRICING_RULE_LINE = "PRICING_RULE_AMOUNT"
ZERO = Decimal(0)


class _Line(Protocol):
    line_type: str
    description: str
    value: Decimal
    rate_card_name: str | None
    details: dict[str, Any] | None


L = TypeVar("L", bound=_Line)
NewLine = Callable[[str, Decimal, dict[str, Any]], L]


def apply_pricing_rules(
    rules: Sequence[CompiledRule], lines: Sequence[L], currency: str, quantities: Mapping[str, Decimal],
    cycle_index: int, new_line: NewLine[L],
) -> tuple[list[L], tuple[dict[str, Any], ...]]:
    """The lines after the rules, and one log entry per rule. `new_line(description, value, details)` makes
    an ADD line."""
    result = list(lines)
    sub_total = exact_sum(line.value for line in result)
    base = {SUB_TOTAL: sub_total, CYCLE_INDEX: Decimal(cycle_index),
            **{USAGE_PREFIX + meter: quantity for meter, quantity in quantities.items()}}
    logs: list[dict[str, Any]] = []

    def money(value: Decimal) -> str:
        return str(round_money(value, currency))  # already rounded: this writes 0 as 0.00
    for compiled in rules:
        total = exact_sum(line.value for line in result)
        env = base | {TOTAL: total} | {
            RATE_CARD_PREFIX + name: ZERO for name in _card_names(compiled)} | _card_amounts(result)
        rule, action = compiled.rule, compiled.rule.action
        log: dict[str, Any] = {"name": rule.name, "order": rule.order, "action": action.type,
                               "target": action.target, "totalBefore": money(total)}
        logs.append(log)
        try:
            if compiled.condition is not None and not compiled.condition.evaluate(env):
                log |= {"status": "SKIPPED", "reason": "its condition is false", "totalAfter": money(total)}
                continue
            computed = round_money(compiled.computation.evaluate(env), currency)  # type: ignore[arg-type]
            index = _target(result, action.target) if action.type == "UPDATE" else None
        except (EvaluationError, InvalidInput) as exc:
            reason = exc.reason
            log |= {"status": "FAILED", "reason": f"{reason}; the rule was not applied", "totalAfter": money(total)}
            continue
        if index is None:
            # a discount takes the total down to 0, not below; minus, not copy_negate: -(0.00) is 0.00, never -0.00
            amount = max(computed, EXACT_MONEY_CONTEXT.minus(total))
            result.append(new_line(action.description or rule.name, amount, {
                "pricingRule": rule.name, "order": rule.order, "computedAmount": str(computed),
                "clamped": amount != computed}))
            previous = None
        else:
            line = result[index]
            previous = line.value
            # a card's line is a charge: 0 at least
            amount = max(computed, ZERO, EXACT_MONEY_CONTEXT.subtract(previous, total))
            note = f"set by pricing rule {rule.name!r} (was {previous})"
            result[index] = replace(line, value=amount, description=f"{line.description} — {note}",  # type: ignore[type-var]
                                    details={**(line.details or {}), "pricingRule": rule.name,
                                             "valueBeforeRule": str(previous)})
        change = EXACT_MONEY_CONTEXT.subtract(amount, previous or ZERO)
        log |= {"status": "APPLIED", "computedAmount": str(computed), "amount": str(amount),
                "previousAmount": None if previous is None else str(previous), "change": str(change),
                "clamped": amount != computed, "totalAfter": money(EXACT_MONEY_CONTEXT.add(total, change))}
    return result, tuple(logs)


def _card_amounts(lines: Sequence[_Line]) -> dict[str, Decimal]:
    """rateCards.<name>: the sum of the card's top-level lines (a fixed fee's first invoice may carry two
    cycles of it)."""
    amounts: dict[str, Decimal] = {}
    for line in lines:
        if line.rate_card_name and line.line_type != PRICING_RULE_LINE:
            key = RATE_CARD_PREFIX + line.rate_card_name
            amounts[key] = EXACT_MONEY_CONTEXT.add(amounts.get(key, ZERO), line.value)
    return amounts


def _card_names(compiled: CompiledRule) -> list[str]:
    """Rate cards the rule reads: 0 unless their line is on the invoice."""
    found = set()
    for expression in (compiled.condition, compiled.computation):
        if expression is not None:
            found |= {name[len(RATE_CARD_PREFIX):] for name in expression.variables
                      if name.startswith(RATE_CARD_PREFIX)}
    return sorted(found)


def _target(lines: Sequence[_Line], name: str | None) -> int:
    for i, line in enumerate(lines):
        if line.rate_card_name == name and line.line_type != PRICING_RULE_LINE:
            return i
    raise EvaluationError(f"rate card {name!r} has no line on this invoice to UPDATE")
