"""The pricing-rule expression compiler: every operator on exact decimals, the refusals (each naming the part at
fault), and a property holding evaluation to Decimal arithmetic."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from togai_engine.errors import InvalidInput
from togai_engine.pricing.money import DECIMAL_CONTEXT, EXACT_CONTEXT
from togai_engine.pricing.rules import (
    MAX_RULE_DEPTH,
    MAX_RULE_NODES,
    RULE_OPERATORS,
    EvaluationError,
    RuleScope,
    compile_rule_expression,
)

D = Decimal
SCOPE = RuleScope(meters=frozenset({"api_calls", "tokens"}), rate_cards=frozenset({"api", "platform"}))
ENV = {"subTotal": D("1234.56"), "total": D("1000.00"), "cycleIndex": D(2), "usage.api_calls": D("1500"),
       "usage.tokens": D("0"), "rateCards.api": D("750.00"), "rateCards.platform": D("49.00")}
SUB = {"var": "subTotal"}


def number(expression: Any, env: dict[str, Decimal] = ENV) -> Decimal | bool:
    return compile_rule_expression(expression, "c", SCOPE, "number").evaluate(env)


def truth(expression: Any, env: dict[str, Decimal] = ENV) -> Decimal | bool:
    return compile_rule_expression(expression, "c", SCOPE, "bool").evaluate(env)


def refused(expression: Any, want: str = "number", field: str = "pricingRules[1].computation") -> str:
    with pytest.raises(InvalidInput) as caught:
        compile_rule_expression(expression, field, SCOPE, want)  # type: ignore[arg-type]
    return caught.value.message


@pytest.mark.parametrize(("expression", "expected"), [
    (SUB, D("1234.56")),
    ({"var": ["usage.api_calls"]}, D("1500")),
    ({"var": "rateCards.platform"}, D("49.00")),
    ({"var": "cycleIndex"}, D(2)),
    ({"+": [SUB, 0.01, 1]}, D("1235.57")),                           # 1234.56 + 0.01 + 1
    ({"*": [SUB, "-0.1"]}, D("-123.456")),                            # a decimal string is that decimal
    ({"-": [SUB, {"var": "total"}]}, D("234.56")),                    # 1234.56 - 1000.00
    ({"-": [SUB]}, D("-1234.56")),                                    # negation
    ({"*": [SUB, -0.1]}, D("-123.456")),                              # exact: no float 0.1
    ({"*": [0.1, 0.2, 3]}, D("0.06")),                                # 0.1 x 0.2 x 3, where floats give 0.06000000000000001
    ({"/": [SUB, 4]}, D("308.64")),                                   # 1234.56 / 4
    ({"/": [1, 3]}, D("0." + "3" * 60)),                              # 60 significant digits, half-up
    ({"/": [2, 3]}, D("0." + "6" * 59 + "7")),
    ({"min": [{"var": "rateCards.api"}, 500]}, D(500)),
    ({"max": [{"var": "usage.tokens"}, -5, -7]}, D(0)),
    ({"min": [3]}, D(3)),
    ({"if": [{">": [SUB, 1000]}, 1, 2]}, D(1)),
    ({"if": [{">": [SUB, 5000]}, 1, {"<": [SUB, 2000]}, 2, 3]}, D(2)),
    ({"if": [False, 1, False, 2, 3]}, D(3)),
    ("-50", D(-50)),                                                   # JSON text of a literal
    ('{"*": [{"var": "subTotal"}, 0.30000000000000004]}', D("370.3680000000000493824")),  # 370.368 + 1234.56 x 4e-17
])
def test_numbers(expression: Any, expected: Decimal) -> None:
    assert number(expression) == expected
    assert str(number(expression)) == str(expected)


@pytest.mark.parametrize(("expression", "expected"), [
    ({"==": [{"var": "cycleIndex"}, 2]}, True),
    ({"==": [SUB, 1234.560]}, True),                                  # numbers compare by value
    ({"==": [True, {"<": [1, 2]}]}, True),
    ({"!=": [SUB, 1234.56]}, False),
    ({"!=": [False, True]}, True),
    ({"<": [SUB, 1234.57]}, True),
    ({"<": [1000, SUB, 1234.56]}, False),                             # between, exclusive
    ({"<=": [1000, SUB, 1234.56]}, True),                             # between, inclusive
    ({"<=": [SUB, 1234.55]}, False),
    ({">": [SUB, 1000]}, True),
    ({">=": [{"var": "total"}, 1000]}, True),
    ({">=": [{"var": "total"}, 1000.01]}, False),
    ({"and": [True, {">": [SUB, 1]}]}, True),
    ({"and": [True, False]}, False),
    ({"or": [False, {"<": [{"var": "cycleIndex"}, 3]}]}, True),
    ({"or": [False]}, False),
    ({"!": [{"<": [{"var": "cycleIndex"}, 3]}]}, False),
    ({"!": True}, False),
    ({"in": [{"var": "cycleIndex"}, [0, 1, 2]]}, True),
    ({"in": [{"var": "cycleIndex"}, [0, 1]]}, False),
    ({"in": [1, []]}, False),
    ({"if": [{">": [SUB, 1]}, True, False]}, True),
    (True, True),
])
def test_conditions(expression: Any, expected: bool) -> None:
    assert truth(expression) is expected


def test_every_operator_is_covered_above() -> None:
    assert set(RULE_OPERATORS) == {"var", "==", "!=", "<", "<=", ">", ">=", "and", "or", "!", "if", "in",
                                   "+", "-", "*", "/", "min", "max"}


def test_the_variables_read_are_listed() -> None:
    compiled = compile_rule_expression({"+": [SUB, {"var": "rateCards.api"}, {"var": "usage.tokens"}]}, "c", SCOPE,
                                       "number")
    assert compiled.variables == {"subTotal", "rateCards.api", "usage.tokens"}


@pytest.mark.parametrize(("expression", "message"), [
    ({"if": [True, 1, {"foo": [1]}]},
     'pricingRules[1].computation.if[2]: unknown operator "foo"; use one of: var, ==, !=, <, <=, >, >=, and, or, !, '
     "if, in, +, -, *, /, min, max"),
    ({"%": [5, 2]}, 'pricingRules[1].computation: unknown operator "%"'),
    ({"/": [1, 2, 3]}, 'pricingRules[1].computation: "/" takes 2 operands, got 3'),
    ({"!": [True, False]}, 'pricingRules[1].computation: "!" takes 1 operand, got 2'),
    ({"+": [1]}, 'pricingRules[1].computation: "+" takes at least 2 operands, got 1'),
    ({"-": [1, 2, 3]}, 'pricingRules[1].computation: "-" takes 1 to 2 operands, got 3'),
    ({">": [1, 2, 3]}, 'pricingRules[1].computation: ">" takes 2 operands, got 3'),
    ({"if": [True, 1]}, 'pricingRules[1].computation: "if" takes [condition, then, else]'),
    ({"min": []}, 'pricingRules[1].computation: "min" takes at least 1 operand, got 0'),
    ({"var": "usage.api_call"}, 'pricingRules[1].computation: variable "usage.api_call" is not a meter of this '
                                "plan; the plan has usage.api_calls, usage.tokens"),
    ({"var": "rateCards.nope"}, 'pricingRules[1].computation: variable "rateCards.nope" is not a rate card of this '
                                "plan that bills a line; the plan has rateCards.api, rateCards.platform"),
    ({"*": [{"var": "subtotal"}, 2]}, 'pricingRules[1].computation.*[0]: unknown variable "subtotal"; use subTotal'),
    ({"var": ["subTotal", 0]}, 'pricingRules[1].computation: "var" takes one variable name'),
    ({"*": ["1e400", 1]}, 'pricingRules[1].computation.*[0]: the string "1e400" is not a number: write a number '
                          '(0.9) or plain decimal digits ("0.9"; no exponent, NaN or Infinity)'),
    ({"*": ["NaN", 1]}, 'pricingRules[1].computation.*[0]: the string "NaN" is not a number'),
    ({"*": ["Infinity", 1]}, 'pricingRules[1].computation.*[0]: the string "Infinity" is not a number'),
    ({"*": ["1.5E3", 1]}, 'pricingRules[1].computation.*[0]: the string "1.5E3" is not a number'),
    ({"*": [".5", 1]}, 'pricingRules[1].computation.*[0]: the string ".5" is not a number'),
    ({"*": ["1,000", 1]}, 'pricingRules[1].computation.*[0]: the string "1,000" is not a number'),
    ({"*": ["", 1]}, 'pricingRules[1].computation.*[0]: the string "" is not a number'),
    ({"*": ["1" * 41, 1]}, "pricingRules[1].computation.*[0]: 11111111111111111111111111111111111111111 is out of "
                           "range"),
    ({"+": [0.30000000000000004, 1]}, "pricingRules[1].computation: holds the number 0.30000000000000004, which "
                                      "has more digits than a JSON number keeps exactly; pass the expression as "
                                      "JSON text"),
    ('{"+": [NaN, 1]}', "pricingRules[1].computation: is not valid JSON Logic (NaN is not a number)"),
    ('{"+": [1e400, 1]}', "pricingRules[1].computation.+[0]: 1E+400 is out of range"),
    ('{"+": [1, ', "pricingRules[1].computation: is not valid JSON Logic (Expecting value at character 9); pass a "
                   'JSON Logic object such as {"*": [{"var": "subTotal"}, -0.1]}'),
    ({"+": [None, 1]}, "pricingRules[1].computation.+[0]: null has no value in a pricing rule"),
    ({"+": [True, 1]}, 'pricingRules[1].computation.+[0]: "+" needs a number here, got true or false'),
    ({"and": [1, True]}, 'pricingRules[1].computation.and[0]: "and" needs true or false here, got a number'),
    ({"==": [1, True]}, 'pricingRules[1].computation: "==" compares a number with true or false'),
    ({"if": [1, 2, 3]}, "pricingRules[1].computation.if[0]: is a number, but a condition must be true or false"),
    ({"if": [True, 2, False]}, "pricingRules[1].computation.if[2]: is true or false, but a branch (every branch "
                               "gives the same kind) must be a number"),
    ({"in": [1, 2]}, 'pricingRules[1].computation: "in" takes a number and a list of numbers'),
    ({"in": [1, [SUB]]}, 'pricingRules[1].computation.in[1][0]: the list of "in" holds numbers only'),
    ([1, 2], 'pricingRules[1].computation: a list can only be the second operand of "in"'),
    ({"+": [1, 2], "-": [1]}, "pricingRules[1].computation: an operation must have exactly one key (the operator); "
                              'it has "+", "-"'),
    ({">": [SUB, 1]}, "pricingRules[1].computation: gives true or false, but it must give a number (the amount)"),
    ("", "pricingRules[1].computation: is empty"),
])
def test_refusals_name_the_part_at_fault(expression: Any, message: str) -> None:
    assert refused(expression).startswith(message)


def test_a_condition_must_be_true_or_false() -> None:
    assert refused(SUB, "bool", "pricingRules[0].condition") == (
        "pricingRules[0].condition: gives a number, but it must give true or false")


def test_depth_and_size_are_bounded() -> None:
    deep: Any = 1
    for _ in range(MAX_RULE_DEPTH + 1):
        deep = {"-": [deep]}
    assert "is nested more than 16 levels deep; simplify it" in refused(deep)
    assert refused({"+": [1] * (MAX_RULE_NODES + 1)}).startswith(
        "pricingRules[1].computation: has more than 200 operators and values")
    wide: Any = {"+": [1] * (MAX_RULE_NODES - 1)}  # the operator and 199 values: at the limit
    assert number(wide) == MAX_RULE_NODES - 1


@pytest.mark.parametrize(("expression", "reason"), [
    ({"/": [SUB, {"var": "usage.tokens"}]}, 'division by zero ("/" at c)'),
    ({"if": [True, {"/": [1, {"-": [{"var": "cycleIndex"}, 2]}]}, 0]}, 'division by zero ("/" at c.if[1])'),
    ({"*": [D("9" * 40), D("9" * 40)]}, 'the result of "*" at c needs more than 60 significant digits (Inexact)'),
])
def test_evaluation_errors_say_why(expression: Any, reason: str) -> None:
    with pytest.raises(EvaluationError) as caught:
        number(expression)
    assert caught.value.reason == reason


def test_only_the_taken_branch_is_evaluated() -> None:
    # cycleIndex is 2: the division by (cycleIndex - 2) is never reached
    assert number({"if": [{"==": [{"var": "cycleIndex"}, 2]}, 0, {"/": [1, {"-": [{"var": "cycleIndex"}, 2]}]}]}) == 0


# --- property: arithmetic is Decimal arithmetic --------------------------------------------------------

numbers = st.decimals(min_value=-10**12, max_value=10**12, places=4, allow_nan=False, allow_infinity=False)


def _tree(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(leaves, lambda inner: st.one_of(
        st.tuples(st.sampled_from(["+", "*", "min", "max"]), st.lists(inner, min_size=2, max_size=3)),
        st.tuples(st.sampled_from(["-", "/"]), st.lists(inner, min_size=2, max_size=2)),
        st.tuples(st.just("neg"), st.lists(inner, min_size=1, max_size=1)),
    ), max_leaves=8)


def _as_logic(tree: Any) -> Any:
    if isinstance(tree, Decimal):
        return tree
    operator, args = tree
    return {"-" if operator == "neg" else operator: [_as_logic(arg) for arg in args]}


def _reference(tree: Any) -> Decimal:
    """The same tree with Decimal's own operations in the same contexts."""
    if isinstance(tree, Decimal):
        return tree
    operator, args = tree
    values = [_reference(arg) for arg in args]
    if operator == "neg":
        return EXACT_CONTEXT.minus(values[0])
    if operator == "/":
        if values[1] == 0:
            raise ZeroDivisionError
        return DECIMAL_CONTEXT.divide(values[0], values[1])
    if operator in ("min", "max"):
        return min(values) if operator == "min" else max(values)
    step = {"+": EXACT_CONTEXT.add, "-": EXACT_CONTEXT.subtract, "*": EXACT_CONTEXT.multiply}[operator]
    result = values[0]
    for value in values[1:]:
        result = step(result, value)
    return result


@given(_tree(numbers))
def test_arithmetic_matches_decimal_arithmetic(tree: Any) -> None:
    try:
        expected: Decimal | None = _reference(tree)
    except (ZeroDivisionError, ArithmeticError):
        expected = None
    compiled = compile_rule_expression(_as_logic(tree), "c", SCOPE, "number")
    if expected is None:
        with pytest.raises(EvaluationError):
            compiled.evaluate(ENV)
    else:
        assert compiled.evaluate(ENV) == expected
