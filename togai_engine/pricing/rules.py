"""Pricing-rule expressions: JSON Logic compiled into Decimal evaluators. Pure: no I/O, no eval/exec.

Why a compiler of our own: the Python JSON Logic libraries (json-logic, json-logic-qubit — the meter
compiler's test oracle — and the Rust-backed ones) turn numbers into binary floats for arithmetic (0.1 + 0.2
is not 0.3 there) and evaluate whatever operator they know, so neither money nor a whitelist can be had from
them. This module compiles a whitelisted, typed subset once per plan into closures over `Decimal`.

The language (a subset of JSON Logic that means the same as JSON Logic wherever it is accepted):
- values: numbers and booleans. A number is a JSON number (exact: never a float) or a decimal string of plain
  digits (`"-0.2"`, as rates are sent elsewhere); a float-like string (`"1e-3"`, `"NaN"`, `"Infinity"`,
  `".5"`) and any other text is refused; null and text variables do not exist.
- `{"var": "name"}`: a variable of `RuleScope` (subTotal, total, cycleIndex, usage.<meterId>,
  rateCards.<name>), checked when the plan is created.
- comparisons `==`, `!=` (two numbers or two booleans), `<`, `<=` (two numbers, or three: between), `>`,
  `>=`; `and`, `or`, `!` over booleans; `if` [cond, then, (cond, then)..., else] with branches of one kind;
  `in` [number, [numbers...]].
- arithmetic `+`, `*` (2 or more), `-` (1: negation, or 2), `/` (2), `min`, `max` (1 or more).
- `+ - * min max` are exact (at most 60 significant digits, else the evaluation fails); `/` rounds half-up to
  60 significant digits (the rating core's DECIMAL_CONTEXT). Division by zero fails the evaluation
  (`EvaluationError`, naming the operator): the invoice records the rule as FAILED and does not apply it.
- limits: nesting MAX_RULE_DEPTH, MAX_RULE_NODES operators and values per expression.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow
from typing import Literal, NoReturn

from togai_engine.common.json_logic import JsonValue, normalize_expression
from togai_engine.errors import InvalidInput
from togai_engine.pricing.money import DECIMAL_CONTEXT, EXACT_CONTEXT, parse_decimal

RULE_OPERATORS = ("var", "==", "!=", "<", "<=", ">", ">=", "and", "or", "!", "if", "in",
                  "+", "-", "*", "/", "min", "max")  # fmt: skip
MAX_RULE_DEPTH = 16
MAX_RULE_NODES = 200
SUB_TOTAL = "subTotal"
TOTAL = "total"
CYCLE_INDEX = "cycleIndex"
USAGE_PREFIX = "usage."
RATE_CARD_PREFIX = "rateCards."
EXAMPLE = '{"*": [{"var": "subTotal"}, -0.1]}'
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")

Kind = Literal["number", "bool"]
Value = Decimal | bool
Env = Mapping[str, Decimal]
_Run = Callable[[Env], Value]


class EvaluationError(Exception):
    """An expression that has no value for these inputs (division by zero, a result beyond 60 digits)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RuleScope:
    """The variables a plan's rules may read: its usage meters and the rate cards that bill a line."""

    meters: frozenset[str]
    rate_cards: frozenset[str]

    def problem(self, name: str) -> str | None:
        """Why `name` is not a variable of this plan, or None when it is."""
        if name in (SUB_TOTAL, TOTAL, CYCLE_INDEX):
            return None
        if name.startswith(USAGE_PREFIX):
            if name[len(USAGE_PREFIX):] in self.meters:
                return None
            return f"variable {json.dumps(name)} is not a meter of this plan; {_listing('usage.', self.meters)}"
        if name.startswith(RATE_CARD_PREFIX):
            if name[len(RATE_CARD_PREFIX):] in self.rate_cards:
                return None
            return (f"variable {json.dumps(name)} is not a rate card of this plan that bills a line; "
                    f"{_listing('rateCards.', self.rate_cards)}")
        return (f"unknown variable {json.dumps(name)}; use subTotal, total, cycleIndex, usage.<meterId> or "
                "rateCards.<rate card name>")


def _listing(prefix: str, names: frozenset[str]) -> str:
    return f"the plan has {', '.join(prefix + n for n in sorted(names))}" if names else "the plan has none"


@dataclass(frozen=True)
class Expression:
    kind: Kind
    run: _Run
    variables: frozenset[str]

    def evaluate(self, env: Env) -> Value:
        """The value for `env` (every variable of the scope); raises EvaluationError."""
        return self.run(env)


def compile_rule_expression(raw: object, field: str, scope: RuleScope, want: Kind) -> Expression:
    """`raw` (JSON text or a parsed value) compiled to an evaluator of kind `want`, or InvalidInput naming
    the part at fault (`field.if[2]`)."""
    node = normalize_expression(raw, field=field, example=EXAMPLE)
    if node is None:
        raise InvalidInput(field, f"is empty; give a JSON Logic expression such as {EXAMPLE}")
    compiler = _Compiler(field, scope)
    expression = compiler.compile(node, field, 0)
    if expression.kind != want:
        wanted = "a number (the amount)" if want == "number" else "true or false"
        raise InvalidInput(field, f"gives {_kind_name(expression.kind)}, but it must give {wanted}")
    return Expression(expression.kind, expression.run, frozenset(compiler.variables))


def _kind_name(kind: Kind) -> str:
    return "a number" if kind == "number" else "true or false"


@dataclass(frozen=True)
class _Node:
    kind: Kind
    run: _Run


def _constant(value: Value) -> _Run:
    return lambda env: value


class _Compiler:
    def __init__(self, field: str, scope: RuleScope) -> None:
        self.field = field
        self.scope = scope
        self.nodes = 0
        self.variables: set[str] = set()

    def fail(self, path: str, reason: str) -> NoReturn:
        raise InvalidInput(path, reason)

    def compile(self, node: JsonValue, path: str, depth: int) -> _Node:
        self.nodes += 1
        if self.nodes > MAX_RULE_NODES:
            self.fail(self.field, f"has more than {MAX_RULE_NODES} operators and values; split it into rules")
        if depth > MAX_RULE_DEPTH:
            self.fail(path, f"is nested more than {MAX_RULE_DEPTH} levels deep; simplify it")
        if isinstance(node, bool):
            return _Node("bool", _constant(node))
        if isinstance(node, str) and not _PLAIN_DECIMAL.fullmatch(node):
            self.fail(path, f"the string {json.dumps(node)} is not a number: write a number (0.9) or plain "
                            f'decimal digits ("0.9"; no exponent, NaN or Infinity), and variables as '
                            f'{{"var": "subTotal"}}')
        if isinstance(node, (int, Decimal, str)):
            try:
                number = parse_decimal(node, path)
            except InvalidInput as exc:
                self.fail(path, exc.reason)
            return _Node("number", _constant(number))
        if node is None:
            self.fail(path, "null has no value in a pricing rule; use a number or true/false")
        if isinstance(node, list):
            self.fail(path, 'a list can only be the second operand of "in"')
        if len(node) != 1:
            keys = ", ".join(json.dumps(key) for key in node) or "none"
            self.fail(path, f"an operation must have exactly one key (the operator); it has {keys}")
        ((operator, raw_args),) = node.items()
        handler = _HANDLERS.get(operator)
        if handler is None:
            self.fail(path, f"unknown operator {json.dumps(operator)}; use one of: {', '.join(RULE_OPERATORS)}")
        args = raw_args if isinstance(raw_args, list) else [raw_args]
        return handler(self, operator, args, path, depth)

    # -- helpers

    def operands(self, operator: str, args: Sequence[JsonValue], path: str, depth: int, kind: Kind | None,
                 low: int, high: int | None) -> list[_Node]:
        if len(args) < low or (high is not None and len(args) > high):
            wanted = f"at least {low}" if high is None else str(low) if low == high else f"{low} to {high}"
            last = low if high is None else high
            self.fail(path, f"{json.dumps(operator)} takes {wanted} operand{'' if last == 1 else 's'}, "
                            f"got {len(args)}")
        nodes = [self.compile(arg, f"{path}.{operator}[{i}]", depth + 1) for i, arg in enumerate(args)]
        if kind is not None:
            for i, child in enumerate(nodes):
                if child.kind != kind:
                    self.fail(f"{path}.{operator}[{i}]", f"{json.dumps(operator)} needs {_kind_name(kind)} here, "
                                                        f"got {_kind_name(child.kind)}")
        return nodes

    # -- operators

    def var(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Node:
        if len(args) != 1 or not isinstance(args[0], str):
            self.fail(path, '"var" takes one variable name, e.g. {"var": "subTotal"}')
        name = args[0]
        problem = self.scope.problem(name)
        if problem is not None:
            self.fail(path, problem)
        self.variables.add(name)

        def run(env: Env) -> Value:
            value = env.get(name)
            if value is None:
                raise EvaluationError(f"variable {json.dumps(name)} has no value on this invoice")
            return value
        return _Node("number", run)

    def equality(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Node:
        left, right = self.operands(operator, args, path, depth, None, 2, 2)
        if left.kind != right.kind:
            self.fail(path, f"{json.dumps(operator)} compares {_kind_name(left.kind)} with "
                            f"{_kind_name(right.kind)}; compare values of one kind")
        a, b = left.run, right.run
        if operator == "==":
            return _Node("bool", lambda env: a(env) == b(env))
        return _Node("bool", lambda env: a(env) != b(env))

    def ordering(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Node:
        high = 3 if operator in ("<", "<=") else 2  # JSON Logic's "between" form
        nodes = self.operands(operator, args, path, depth, "number", 2, high)
        test = _ORDERINGS[operator]
        runs = [n.run for n in nodes]

        def run(env: Env) -> Value:
            values = [r(env) for r in runs]
            return all(test(values[i], values[i + 1]) for i in range(len(values) - 1))
        return _Node("bool", run)

    def logic(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Node:
        runs = [n.run for n in self.operands(operator, args, path, depth, "bool", 1, None)]
        if operator == "and":
            return _Node("bool", lambda env: all(r(env) for r in runs))
        return _Node("bool", lambda env: any(r(env) for r in runs))

    def negation(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Node:
        (operand,) = self.operands(operator, args, path, depth, "bool", 1, 1)
        inner = operand.run
        return _Node("bool", lambda env: not inner(env))

    def conditional(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Node:
        if len(args) < 3 or len(args) % 2 == 0:
            self.fail(path, '"if" takes [condition, then, else] or more pairs before the else (an odd number, at '
                            f"least 3), got {len(args)}")
        nodes = self.operands(operator, args, path, depth, None, 3, None)
        branches = [nodes[i] for i in range(1, len(nodes), 2)] + [nodes[-1]]
        kind = branches[0].kind
        for i in range(len(nodes)):
            is_condition = i % 2 == 0 and i != len(nodes) - 1
            wanted: Kind = "bool" if is_condition else kind
            if nodes[i].kind != wanted:
                what = "a condition" if is_condition else "a branch (every branch gives the same kind)"
                self.fail(f"{path}.if[{i}]", f"is {_kind_name(nodes[i].kind)}, but {what} must be "
                                             f"{_kind_name(wanted)}")
        pairs = [(nodes[i].run, nodes[i + 1].run) for i in range(0, len(nodes) - 1, 2)]
        otherwise = nodes[-1].run

        def run(env: Env) -> Value:
            for condition, then in pairs:
                if condition(env):
                    return then(env)
            return otherwise(env)
        return _Node(kind, run)

    def membership(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Node:
        if len(args) != 2 or not isinstance(args[1], list):
            self.fail(path, '"in" takes a number and a list of numbers, e.g. {"in": [{"var": "cycleIndex"}, '
                            "[0, 1, 2]]}")
        (needle,) = self.operands(operator, args[:1], path, depth, "number", 1, 1)
        items: list[Decimal] = []
        for i, item in enumerate(args[1]):
            node = self.compile(item, f"{path}.in[1][{i}]", depth + 2)
            if node.kind != "number" or isinstance(item, dict):
                self.fail(f"{path}.in[1][{i}]", "the list of \"in\" holds numbers only")
            items.append(node.run({}))  # type: ignore[arg-type]
        run = needle.run
        return _Node("bool", lambda env: run(env) in items)

    def arithmetic(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Node:
        low, high = _ARITY[operator]
        runs = [n.run for n in self.operands(operator, args, path, depth, "number", low, high)]
        where = f"{json.dumps(operator)} at {path}"
        if operator == "-" and len(runs) == 1:
            (only,) = runs
            return _Node("number", lambda env: _exact(where, lambda: EXACT_CONTEXT.minus(only(env))))
        if operator == "/":
            top, bottom = runs

            def divide(env: Env) -> Value:
                divisor = bottom(env)
                if divisor == 0:
                    raise EvaluationError(f"division by zero ({where})")
                return _exact(where, lambda: DECIMAL_CONTEXT.divide(top(env), divisor))
            return _Node("number", divide)
        step = _STEPS[operator]

        def fold(env: Env) -> Value:
            values = [r(env) for r in runs]
            return _exact(where, lambda: _reduce(step, values))
        return _Node("number", fold)

    def extreme(self, operator: str, args: list[JsonValue], path: str, depth: int) -> _Node:
        runs = [n.run for n in self.operands(operator, args, path, depth, "number", 1, None)]
        pick = min if operator == "min" else max
        return _Node("number", lambda env: pick(r(env) for r in runs))  # type: ignore[type-var]


def _reduce(step: Callable[[Decimal, Decimal], Decimal], values: list[Value]) -> Decimal:
    result = values[0]
    for value in values[1:]:
        result = step(result, value)  # type: ignore[arg-type]
    return result  # type: ignore[return-value]


def _exact(where: str, compute: Callable[[], Decimal]) -> Decimal:
    try:
        return compute()
    except (Inexact, Overflow, InvalidOperation, DivisionByZero) as exc:
        raise EvaluationError(f"the result of {where} needs more than 60 significant digits "
                              f"({type(exc).__name__})") from None


_ORDERINGS: dict[str, Callable[[Value, Value], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}  # fmt: skip
_STEPS: dict[str, Callable[[Decimal, Decimal], Decimal]] = {
    "+": EXACT_CONTEXT.add, "-": EXACT_CONTEXT.subtract, "*": EXACT_CONTEXT.multiply,
}  # fmt: skip
_ARITY: dict[str, tuple[int, int | None]] = {"+": (2, None), "*": (2, None), "-": (1, 2), "/": (2, 2)}
_HANDLERS: dict[str, Callable[[_Compiler, str, list[JsonValue], str, int], _Node]] = {
    "var": _Compiler.var,
    "==": _Compiler.equality, "!=": _Compiler.equality,
    "<": _Compiler.ordering, "<=": _Compiler.ordering, ">": _Compiler.ordering, ">=": _Compiler.ordering,
    "and": _Compiler.logic, "or": _Compiler.logic, "!": _Compiler.negation,
    "if": _Compiler.conditional, "in": _Compiler.membership,
    "+": _Compiler.arithmetic, "-": _Compiler.arithmetic, "*": _Compiler.arithmetic, "/": _Compiler.arithmetic,
    "min": _Compiler.extreme, "max": _Compiler.extreme,
}  # fmt: skip
