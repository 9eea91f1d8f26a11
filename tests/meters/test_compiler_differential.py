"""Differential test: compiled SQL on PostgreSQL vs an independent JSON Logic evaluator.

Oracle: json-logic-qubit (`from json_logic import jsonLogic`), a port of json-logic-js. It was
preferred over panzi-json-logic, whose `==` coerces with JavaScript rules we do not copy and whose
package shares the `json_logic` import name (qubit's installs over it). Known qubit quirks, kept
out of the generated space on purpose:
- numbers are Python floats: leaves are multiples of 1/8 small enough that +, -, *, %, min and
  max stay exact, so results are compared exactly; "/" is only generated where its result flows
  straight into the computed value, and results that used it are compared within 1e-9 relative
  (the SQL side stays exact Decimal, the tolerance covers the oracle's float rounding only);
- arithmetic on null or division by zero raises instead of giving null: such operands (missing
  attribute "m", any "/") only appear where null propagates to the computed value, and a raise
  is read as "no value"; conditions never contain them;
- "%" follows the divisor's sign (Python), not the dividend's (JavaScript, Java, PostgreSQL):
  "%" only gets non-negative operands;
- "==" between a string and a number compares text ("1.5" == 1.50 is false): numeric strings are
  only generated as arithmetic operands, and null is only compared with "=="/"!=" as a whole
  operand (qubit's "None" text would otherwise equal the string "None", which is not generated);
- "cat" writes null as "None": cat only gets present dimensions and strings.
Events carry attributes a, b (>= 0), c (any sign), sometimes m, and dimensions city, plan, sometimes
opt; the oracle sees attributes as numbers, as Togai's evaluator does.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from json_logic import jsonLogic

from togai_engine.errors import InvalidInput
from togai_engine.meters.compiler import compile_meter

DATABASE_URL = os.environ.get("TOGAI_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test").replace(
    "postgresql+asyncpg://", "postgresql://"
)
TEXTS = ["", "a", "b", "ab", "ba", "b a", "o'brien", "x\\y", "日本", "a;--", "Ab", ":p", "%s", "$1"]
Draw = Callable[[st.SearchStrategy[Any]], Any]
Meter = tuple[str, list[dict[str, Any]], list[tuple[int, Any, Any]]]


def eighths(low: int, high: int) -> st.SearchStrategy[Decimal]:
    return st.integers(low, high).map(lambda k: Decimal(k) / 8)


def as_json_number(value: Decimal) -> int | float:
    """What the oracle sees (and what json.dumps writes): an int, or a float that is exactly value."""
    if value == value.to_integral_value():
        return int(value)
    number = float(value)
    assert Decimal(number) == value
    return number


# ---------------------------------------------------------------- events


@st.composite
def events(draw: Draw) -> tuple[dict[str, str], dict[str, str]]:
    values = {"a": draw(eighths(0, 800)), "b": draw(eighths(0, 800)), "c": draw(eighths(-800, 800))}
    if draw(st.booleans()):
        values["m"] = draw(eighths(-800, 800))
    # Stored as decimal strings, sometimes with trailing zeros ("1.5000").
    attributes = {k: format(v, ".4f") if draw(st.booleans()) else str(v) for k, v in values.items()}
    dimensions = {"city": draw(st.sampled_from(TEXTS)), "plan": draw(st.sampled_from(TEXTS))}
    if draw(st.booleans()):
        dimensions["opt"] = draw(st.sampled_from(TEXTS))
    return attributes, dimensions


def oracle_data(attributes: dict[str, str], dimensions: dict[str, str]) -> dict[str, Any]:
    numbers = {k: as_json_number(Decimal(v)) for k, v in attributes.items()}
    return {"attributes": numbers, "attribute": numbers, "dimensions": dimensions, "dimension": dimensions}


# ---------------------------------------------------------------- expressions


def var(draw: Draw, kind: str, name: str) -> dict[str, Any]:
    prefix = draw(st.sampled_from(["attributes", "attribute"] if kind == "number" else ["dimensions", "dimension"]))
    return {"var": f"{prefix}.{name}"}


def number_literal(draw: Draw, low: int = -100, high: int = 100) -> int | float:
    return as_json_number(draw(st.integers(low, high).map(lambda k: Decimal(k) / 4)))


def number_leaf(draw: Draw, null_ok: bool, arithmetic_operand: bool = False) -> Any:
    choice = draw(st.integers(0, 5 if null_ok else 4))
    if choice <= 1:
        return var(draw, "number", draw(st.sampled_from(["a", "b", "c"])))
    if choice == 2:
        return {"var": [var(draw, "number", "m")["var"], number_literal(draw)]}
    if choice == 3 and arithmetic_operand:
        return str(number_literal(draw))  # "2.5": coerced like JSON Logic's "2" + "1" = 3
    if choice == 5:
        return var(draw, "number", "m")  # may be missing: only where null reaches the value
    return number_literal(draw)


def number_expr(
    draw: Draw, depth: int, null_ok: bool, arithmetic_operand: bool = False, division_ok: bool = True
) -> Any:
    """A number; null_ok: a null here would reach the computed value unchanged (and so may come
    from "/"). A divisor never holds a "/": 0 vs a float's 1e-17 would be no value vs a huge one."""
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return number_leaf(draw, null_ok, arithmetic_operand)
    operator = draw(st.sampled_from(["+", "-", "*", "min", "max", "%", "if", "and", "or", "/"]))

    def operand() -> Any:
        return number_expr(draw, depth - 1, null_ok, arithmetic_operand=True, division_ok=division_ok)

    if operator in ("+", "min", "max"):
        return {operator: [operand() for _ in range(draw(st.integers(1, 3)))]}
    if operator == "-":
        return {"-": [operand() for _ in range(draw(st.integers(1, 2)))]}
    if operator == "*":
        # One factor is a leaf, so products of attributes stay within a float's 53 exact bits.
        return {"*": [operand(), number_leaf(draw, null_ok, arithmetic_operand=True)]}
    if operator == "%":
        dividend = draw(st.sampled_from([var(draw, "number", "a"), var(draw, "number", "b"), number_literal(draw, 0)]))
        divisor = number_literal(draw, 1, 40)
        if null_ok and draw(st.booleans()):
            divisor = var(draw, "number", "b")  # may be 0: no value
        return {"%": [dividend, divisor]}
    if operator == "if":
        branches = [number_expr(draw, depth - 1, null_ok, division_ok=division_ok) for _ in range(3)]
        args = [bool_expr(draw, depth - 1), branches[0]]
        if draw(st.booleans()):
            args += [bool_expr(draw, depth - 1), branches[2]]
        if not null_ok or draw(st.booleans()):
            args.append(branches[1])  # without an else, "if" gives null
        return {"if": args}
    if operator in ("and", "or"):
        # The deciding operand is returned: they must not hide a null behind its falsiness.
        return {operator: [number_expr(draw, depth - 1, False) for _ in range(draw(st.integers(2, 3)))]}
    if not (null_ok and division_ok):
        return number_leaf(draw, null_ok, arithmetic_operand)
    divisor = number_expr(draw, depth - 1, null_ok, arithmetic_operand=True, division_ok=False)
    if not isinstance(divisor, dict) and Decimal(divisor) == 0:
        divisor = 1  # dividing by a literal 0 is a compile-time error, tested on its own
    return {"/": [operand(), divisor]}


def text_expr(draw: Draw, depth: int) -> Any:
    choice = draw(st.integers(0, 5 if depth > 0 else 3))
    if choice <= 1:
        return var(draw, "text", draw(st.sampled_from(["city", "plan"])))
    if choice == 2:
        return {"var": [var(draw, "text", "opt")["var"], draw(st.sampled_from(TEXTS))]}
    if choice == 3:
        return draw(st.sampled_from(TEXTS))
    if choice == 4:
        return {"cat": [text_expr(draw, depth - 1) for _ in range(draw(st.integers(1, 3)))]}
    return {"if": [bool_expr(draw, depth - 1), text_expr(draw, depth - 1), text_expr(draw, depth - 1)]}


def comparable(draw: Draw, kind: str, depth: int) -> Any:
    """A comparison operand; the possibly-missing variables are fine here (null compares cleanly)."""
    if draw(st.integers(0, 3)) == 0:
        return var(draw, kind, "m" if kind == "number" else "opt")
    return number_expr(draw, depth, False) if kind == "number" else text_expr(draw, depth)


def any_value(draw: Draw, depth: int) -> Any:
    return comparable(draw, draw(st.sampled_from(["number", "text"])), depth)


def bool_expr(draw: Draw, depth: int) -> Any:
    choice = draw(st.integers(0, 9 if depth > 0 else 6))
    kind = draw(st.sampled_from(["number", "text"]))
    if choice == 0:
        return draw(st.booleans())
    if choice == 1:
        operator = draw(st.sampled_from(["==", "!=", "===", "!==", "<", "<=", ">", ">="]))
        return {operator: [comparable(draw, kind, depth - 1), comparable(draw, kind, depth - 1)]}
    if choice == 2:
        return {draw(st.sampled_from(["<", "<="])): [comparable(draw, kind, depth - 1) for _ in range(3)]}
    if choice == 3:
        # Missing values against null and each other: == treats them as equal, <= as "< or ==".
        maybe_missing = "m" if kind == "number" else "opt"
        operator = draw(st.sampled_from(["==", "!=", "===", "!==", "<", "<=", ">", ">="]))
        pool = [var(draw, kind, maybe_missing), var(draw, kind, maybe_missing), comparable(draw, kind, 0)]
        if operator in ("==", "!=", "===", "!=="):
            pool.append(None)
        return {operator: [draw(st.sampled_from(pool)), draw(st.sampled_from(pool))]}
    if choice == 4:
        if kind == "number":
            items = [number_literal(draw, 0, 16) for _ in range(draw(st.integers(0, 4)))]
        else:
            items = [draw(st.sampled_from(TEXTS)) for _ in range(draw(st.integers(0, 4)))]
        return {"in": [comparable(draw, kind, depth - 1), items]}
    if choice == 5:
        haystack = draw(st.sampled_from([text_expr(draw, depth - 1), var(draw, "text", "opt")]))
        return {"in": [text_expr(draw, depth - 1), haystack]}
    if choice == 6:
        return {draw(st.sampled_from(["!", "!!"])): [any_value(draw, depth - 1)]}
    if choice in (7, 8):
        operands = [
            bool_expr(draw, depth - 1) if draw(st.booleans()) else any_value(draw, depth - 1)
            for _ in range(draw(st.integers(2, 3)))
        ]
        return {draw(st.sampled_from(["and", "or"])): operands}
    args = [bool_expr(draw, depth - 1), draw(st.sampled_from([bool_expr, any_value]))(draw, depth - 1)]
    if draw(st.booleans()):
        args.append(bool_expr(draw, depth - 1))
    return {"if": args}


@st.composite
def meters(draw: Draw) -> Meter:
    """A meter as the compiler gets it, plus each computation's (order, matcher, computation)
    as JSON Logic for the oracle (matcher None = absent)."""
    aggregation = draw(st.sampled_from(["SUM", "SUM", "COUNT"]))
    count = draw(st.integers(1, 3))
    computations: list[dict[str, Any]] = []
    oracle: list[tuple[int, Any, Any]] = []
    for order in draw(st.permutations([10 * i for i in range(1, count + 1)])):
        entry: dict[str, Any] = {"order": order}
        matcher = bool_expr(draw, 3) if draw(st.integers(0, 4)) > 0 else None
        as_text = draw(st.booleans())  # Togai sends JSON text; parsed objects are accepted too
        if matcher is not None:
            entry["matcher"] = json.dumps(matcher) if as_text else matcher
        computation: Any = 1
        if aggregation == "SUM":
            form = draw(st.sampled_from(["expression", "expression", "expression", "name", "number"]))
            if form == "expression":
                computation = number_expr(draw, 3, null_ok=True)
                entry["computation"] = json.dumps(computation) if as_text else computation
            elif form == "name":
                name = draw(st.sampled_from(["a", "c", "m", "attributes.b", "attribute.m"]))
                entry["computation"] = name
                computation = {"var": name if "." in name else f"attributes.{name}"}
            else:
                entry["computation"] = str(number_literal(draw))  # "2.5"
                computation = json.loads(entry["computation"])
        elif draw(st.booleans()):
            entry["computation"] = "1"
        computations.append(entry)
        oracle.append((order, matcher, computation))
    return aggregation, computations, oracle


# ---------------------------------------------------------------- oracle


def expected_value(oracle: list[tuple[int, Any, Any]], data: dict[str, Any]) -> Any:
    """The first computation (by order) whose matcher is truthy or absent gives the value."""
    for _, matcher, computation in sorted(oracle, key=lambda entry: entry[0]):
        if matcher is not None and not jsonLogic(matcher, data):
            continue
        try:
            return jsonLogic(computation, data)
        except (TypeError, ZeroDivisionError):
            return None  # qubit raises where JSON Logic's null arithmetic gives no value
    return None


def agrees(sql: Decimal | None, oracle: Any, tolerant: bool) -> bool:
    if oracle is None or sql is None:
        return oracle is None and sql is None
    assert not isinstance(oracle, bool) and isinstance(oracle, (int, float)), oracle
    exact = Decimal(oracle)  # the float's exact binary value
    if not tolerant:
        return sql == exact
    return abs(sql - exact) <= Decimal("1e-9") * max(Decimal(1), abs(sql))


# ---------------------------------------------------------------- the test


@pytest.fixture
async def conn() -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(DATABASE_URL)
    # A temporary table is private to this connection: safe next to other tests on the database.
    await connection.execute(
        "CREATE TEMP TABLE differential_events (id bigserial, attributes jsonb NOT NULL, dimensions jsonb NOT NULL)"
    )
    try:
        yield connection
    finally:
        await connection.close()


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(meter=meters(), batch=st.lists(events(), min_size=1, max_size=5))
async def test_compiled_meter_agrees_with_json_logic(
    conn: asyncpg.Connection, meter: Meter, batch: list[tuple[dict[str, str], dict[str, str]]]
) -> None:
    aggregation, computations, oracle = meter
    try:
        compiled = compile_meter(aggregation, computations)
    except InvalidInput as error:
        # A divisor that is a constant 0, e.g. {"min": ["0"]}, is refused at compile time.
        assert "divides by the literal 0" in error.reason, error
        reject()
    await conn.execute("TRUNCATE differential_events")
    await conn.executemany(
        "INSERT INTO differential_events (attributes, dimensions) VALUES ($1::jsonb, $2::jsonb)",
        [(json.dumps(a), json.dumps(d)) for a, d in batch],
    )
    rows = await conn.fetch(f"SELECT {compiled.value_sql} FROM differential_events AS e ORDER BY e.id")
    # Only "/" makes the float oracle inexact (see the module docstring).
    tolerant = '"/"' in json.dumps([computation for _, _, computation in oracle])
    for (attributes, dimensions), row in zip(batch, rows, strict=True):
        expected = expected_value(oracle, oracle_data(attributes, dimensions))
        assert agrees(row[0], expected, tolerant), (
            f"SQL gave {row[0]!r}, JSON Logic gave {expected!r}\nevent: {attributes} {dimensions}\n"
            f"meter: {aggregation} {json.dumps(computations)}\nsql: {compiled.value_sql}"
        )
