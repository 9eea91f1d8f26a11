"""Unit tests of the meter-expression compiler: errors, literal safety, and SQL semantics on PostgreSQL."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from togai_engine.errors import InvalidInput
from togai_engine.meters.compiler import (
    SUPPORTED_OPERATORS,
    CompiledMeter,
    compile_meter,
    normalize_expression,
    sql_numeric_literal,
    sql_text_literal,
)

DATABASE_URL = os.environ.get("TOGAI_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test").replace(
    "postgresql+asyncpg://", "postgresql://"
)
INJECTIONS = [
    "'); DROP TABLE meter_events; --",
    "o'brien",
    "''",
    "\\'; SELECT 1; --",
    "back\\slash",
    ":name %s ? $1 $$ $tag$",
    "line\nbreak\ttab\r",
    "日本語 ☃ 😀",
    "\u202e\u200b",
]


def sum_meter(computation: Any, matcher: Any = None) -> CompiledMeter:
    entry: dict[str, Any] = {"order": 1, "computation": computation}
    if matcher is not None:
        entry["matcher"] = matcher
    return compile_meter("SUM", [entry])


def count_meter(matcher: Any) -> CompiledMeter:
    return compile_meter("COUNT", [{"order": 1, "matcher": matcher, "computation": "1"}])


def error_of(aggregation: str, computations: Sequence[dict[str, Any]]) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        compile_meter(aggregation, computations)
    return caught.value


def matcher_error(matcher: Any) -> InvalidInput:
    return error_of("COUNT", [{"order": 1, "matcher": matcher}])


def computation_error(computation: Any) -> InvalidInput:
    return error_of("SUM", [{"order": 1, "computation": computation}])


# ---------------------------------------------------------------- literals


def test_text_literal_is_plain_when_nothing_needs_escaping() -> None:
    assert sql_text_literal("chennai") == "'chennai'"
    assert sql_text_literal("") == "''"
    assert sql_text_literal("日本") == "'日本'"


def test_text_literal_escapes_quotes_backslashes_controls_and_placeholders() -> None:
    assert sql_text_literal("o'brien") == "E'o\\u0027brien'"
    assert sql_text_literal("a\\b") == "E'a\\u005Cb'"
    assert sql_text_literal("x:y%z?$\n") == "E'x\\u003Ay\\u0025z\\u003F\\u0024\\u000A'"


@pytest.mark.parametrize("bad", ["nul\x00byte", "lone \ud800 surrogate"])
def test_text_literal_rejects_what_postgresql_text_cannot_hold(bad: str) -> None:
    with pytest.raises(ValueError):
        sql_text_literal(bad)


@given(st.text())
def test_text_literal_never_lets_the_value_close_the_quote(value: str) -> None:
    try:
        literal = sql_text_literal(value)
    except ValueError:
        assert "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)
        return
    body = literal.removeprefix("E")[1:-1]
    assert literal.endswith("'")
    assert not set(body) & set("':%?$")
    # Every backslash in the body starts one of our \uXXXX escapes.
    assert re.fullmatch(r"(?:[^\\]|\\u[0-9A-F]{4})*", body, flags=re.DOTALL)


def test_numeric_literal_is_canonical_and_validated() -> None:
    assert sql_numeric_literal(Decimal("1.50")) == "CAST('1.50' AS numeric)"
    assert sql_numeric_literal(Decimal("1E+3")) == "CAST('1000' AS numeric)"
    assert sql_numeric_literal(-7) == "CAST('-7' AS numeric)"
    for bad in [Decimal("NaN"), Decimal("Infinity"), Decimal("1E+5000")]:
        with pytest.raises(ValueError):
            sql_numeric_literal(bad)
    with pytest.raises(ValueError):
        sql_numeric_literal(True)  # type: ignore[arg-type]


# ---------------------------------------------------------------- normalization


def test_normalize_parses_json_text_with_exact_decimals() -> None:
    assert normalize_expression('{"*": [{"var": "attributes.d"}, 0.4]}') == {
        "*": [{"var": "attributes.d"}, Decimal("0.4")]
    }
    assert normalize_expression("1") == 1
    assert normalize_expression("  ") is None
    assert normalize_expression(None) is None


def test_normalize_turns_parsed_floats_into_their_shortest_decimal() -> None:
    # Decimal(0.1) would be 0.1000000000000000055511151231257827...; the repr is what was meant.
    assert normalize_expression({"*": [0.1, 3]}) == {"*": [Decimal("0.1"), 3]}


def test_normalize_rejects_what_is_not_json() -> None:
    for bad in ["{bad", "NaN", '{"+": [1, Infinity]}', "tokens"]:
        with pytest.raises(InvalidInput):
            normalize_expression(bad, field="x")
    for bad_value in [{"+": [float("nan"), 1]}, {"in": [1, {1, 2}]}, {1: "x"}]:
        with pytest.raises(InvalidInput):
            normalize_expression(bad_value)
    assert normalize_expression("tokens", allow_bare_name=True) == "tokens"


# ---------------------------------------------------------------- compile-time errors


def test_unsupported_operator_is_named_with_its_path_and_the_alternatives() -> None:
    error = matcher_error({"and": [True, {"or": [False, {"regex": ["a", "b"]}]}]})
    assert error.field == "computations[0].matcher"
    assert error.reason.startswith('operator "regex" at and[1].or[1] is not supported; use one of: var, ==')
    for operator in ["map", "filter", "reduce", "merge", "missing", "substr", "log", "method", "?:"]:
        assert f'"{operator}"' in matcher_error({operator: [1, 2]}).reason


def test_error_field_uses_the_request_index_not_the_evaluation_order() -> None:
    error = error_of(
        "SUM",
        [
            {"order": 5, "computation": "tokens"},
            {"order": 1, "matcher": {"==": [{"var": "usage.x"}, 1]}, "computation": "tokens"},
        ],
    )
    assert error.field == "computations[1].matcher"
    assert error.reason.startswith('unknown variable "usage.x" at ==[0]')


@pytest.mark.parametrize("name", ["usage.x", "dependencies.y", "attributes", "dimensions.", "x"])
def test_unknown_variables_are_rejected_naming_the_variable(name: str) -> None:
    error = matcher_error({"==": [{"var": name}, 1]})
    assert f'unknown variable "{name}"' in error.reason


def test_unknown_bare_prefix_in_a_computation_is_rejected() -> None:
    assert 'unknown variable "usage.tokens"' in computation_error("usage.tokens").reason


@pytest.mark.parametrize(
    ("matcher", "expected"),
    [
        ({"==": [{"var": "dimensions.city"}, 5]}, 'compares the number 5 (a number) with dimension "city"'),
        ({"<": [{"var": "attributes.n"}, "abc"]}, 'operand 2 is the string "abc"'),
        ({"===": [{"var": "attributes.n"}, "5"]}, "write 5 without quotes"),
        ({"==": [{">": [1, 2]}, True]}, "is a condition"),
        ({"<": [{"var": "attributes.n"}, None]}, "cannot order null"),
        ({">": [1, 2, 3]}, '">" at the top level takes 2 operands, got 3'),
        ({"-": [1, 2, 3]}, "takes 1 to 2 operands"),
        ({"!": [1, 2]}, "takes 1 operand, got 2"),
        ({"and": []}, "takes at least 1 operand"),
        ({"in": [{"var": "dimensions.city"}, ["a", 1]]}, "list item in[1][1] is the number 1"),
        ({"in": [{"var": "attributes.n"}, ["1"]]}, 'list item in[1][0] is the string "1"'),
        ({"in": [1, {"var": "dimensions.city"}]}, "must be a list of literals, or text"),
        ({"in": ["a", [{"var": "dimensions.city"}]]}, "must be a number or a string literal"),
        ({"cat": ["a", 1]}, '"cat" at the top level: operand 2 is the number 1'),
        ({"+": [{"var": "dimensions.city"}, 1]}, 'operand 1 is dimension "city"'),
        ({"/": [{"var": "attributes.n"}, 0]}, "divides by the literal 0"),
        ({"==": [[1, 2], 1]}, 'can only be the second operand of "in"'),
        ({"==": 1, "!=": 2}, 'must have exactly one key (the operator); it has "==", "!="'),
        ({}, "it has none"),
        ({"var": 3}, "needs a variable name string"),
        ({"var": ["dimensions.city", 5]}, 'its default must be a string; write "5"'),
        ({"var": ["attributes.n", {"var": "attributes.m"}]}, "must be a literal number"),
    ],
)
def test_type_and_shape_errors_say_what_is_wrong(matcher: Any, expected: str) -> None:
    assert expected in matcher_error(matcher).reason


def test_nesting_and_size_limits() -> None:
    deep: Any = {"var": "attributes.n"}
    for _ in range(60):
        deep = {"!": [deep]}
    assert "nested more than" in matcher_error(deep).reason
    wide = {"or": [{"==": [{"var": f"dimensions.d{i}"}, "x" * 100]} for i in range(1000)]}
    assert "characters of SQL" in matcher_error(wide).reason


def test_meter_level_validation() -> None:
    assert error_of("AVERAGE", []).field == "aggregation"
    assert "use one of: COUNT, SUM, MAX, UNIQUE_COUNT, LATEST" in error_of("AVERAGE", []).reason
    assert error_of("SUM", []).field == "computations"
    assert error_of("UNIQUE_COUNT", []).field == "computations"
    assert error_of("SUM", [{"computation": "x"}]).field == "computations[0].order"
    duplicate = error_of("SUM", [{"order": 1, "computation": "x"}, {"order": 1, "computation": "y"}])
    assert duplicate.field == "computations[1].order"
    assert "already used by computations[0]" in duplicate.reason
    assert error_of("SUM", ["tokens"]).field == "computations[0]"  # type: ignore[list-item]
    assert error_of("COUNT", [{"order": 1, "computation": "2"}]).field == "computations[0].computation"
    assert error_of("COUNT", [{"order": 1, "computation": "tokens"}]).field == "computations[0].computation"
    assert error_of("SUM", [{"order": 1}]).field == "computations[0].computation"
    assert "not a number" in computation_error({"var": "dimensions.city"}).reason
    assert "not a number" in computation_error({">": [1, 0]}).reason
    assert "is not a computation" in computation_error("true").reason
    custom = error_of("SUM", [{"order": 1, "computation": "{bad"}])
    assert "not valid JSON Logic" in custom.reason


def test_field_prefix_is_used_in_error_paths() -> None:
    with pytest.raises(InvalidInput) as caught:
        compile_meter("SUM", [{"order": 1, "computation": "{"}], field_prefix="usageMeter.computations")
    assert caught.value.field == "usageMeter.computations[0].computation"


def test_every_supported_operator_compiles() -> None:
    n = {"var": "attributes.n"}
    city = {"var": "dimensions.city"}
    examples: dict[str, Any] = {
        "var": n, "==": {"==": [n, 1]}, "!=": {"!=": [city, "x"]}, "===": {"===": [n, 1]},
        "!==": {"!==": [n, None]}, "<": {"<": [0, n, 10]}, "<=": {"<=": [0, n, 10]},
        ">": {">": [city, "m"]}, ">=": {">=": [n, "2.5"]}, "and": {"and": [n, city]},
        "or": {"or": [n, 5]}, "!": {"!": n}, "!!": {"!!": [city]}, "if": {"if": [n, 1, city, 2, 3]},
        "in": {"in": ["ch", city]}, "+": {"+": [n, "2"]}, "-": {"-": n}, "*": {"*": [n, 2]},
        "/": {"/": [n, n]}, "%": {"%": [n, 3]}, "min": {"min": [n, 1]}, "max": {"max": [n, 1, 2]},
        "cat": {"==": [{"cat": [city, "-", city]}, "a-a"]},
    }  # fmt: skip
    assert set(examples) == set(SUPPORTED_OPERATORS)
    for expression in examples.values():
        assert count_meter(expression).value_sql.startswith("(CASE WHEN")


def test_singular_and_plural_prefixes_and_text_or_object_inputs_compile_alike() -> None:
    plural = {"and": [{">": [{"var": "attributes.d"}, 100]}, {"==": [{"var": "dimensions.c"}, "x"]}]}
    singular = {"and": [{">": [{"var": "attribute.d"}, 100]}, {"==": [{"var": "dimension.c"}, "x"]}]}
    assert count_meter(plural) == count_meter(singular) == count_meter(json.dumps(plural))
    assert sum_meter("d") == sum_meter("attributes.d") == sum_meter('{"var": "attribute.d"}')


@given(st.sampled_from(INJECTIONS) | st.text(max_size=30).filter(lambda s: "\x00" not in s))
def test_compiled_sql_never_carries_raw_user_text(value: str) -> None:
    try:
        meter = count_meter({"or": [{"==": [{"var": "dimensions.city"}, value]}, {"in": [value, ["x"]]}]})
    except InvalidInput:
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in value)
        return
    # Driver placeholder markers never appear, not even inside literals (they are escaped there).
    assert not set(meter.value_sql) & set(":%?$")
    outside_literals = re.sub(r"E?'[^']*'", "''", meter.value_sql)
    assert not set(outside_literals) & set(";\\")
    assert "--" not in outside_literals


# ---------------------------------------------------------------- semantics on PostgreSQL


@pytest.fixture
async def conn() -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(DATABASE_URL)
    # A temporary table is private to this connection, so tests never see each other's rows.
    await connection.execute(
        "CREATE TEMP TABLE meter_events (id bigserial, attributes jsonb NOT NULL, dimensions jsonb NOT NULL)"
    )
    try:
        yield connection
    finally:
        await connection.close()


Event = tuple[dict[str, str], dict[str, str]]


async def values(conn: asyncpg.Connection, meter: CompiledMeter, events: list[Event]) -> list[Any]:
    await conn.execute("TRUNCATE meter_events")
    await conn.executemany(
        "INSERT INTO meter_events (attributes, dimensions) VALUES ($1::jsonb, $2::jsonb)",
        [(json.dumps(a), json.dumps(d)) for a, d in events],
    )
    rows = await conn.fetch(f"SELECT {meter.value_sql} FROM meter_events AS e ORDER BY e.id")
    return [row[0] for row in rows]


async def aggregate(conn: asyncpg.Connection, meter: CompiledMeter, order_by: str | None = None) -> Any:
    return await conn.fetchval(f"SELECT {meter.aggregate_sql(order_by)} FROM meter_events AS e")


async def test_togai_ride_example(conn: asyncpg.Connection) -> None:
    meter = compile_meter(
        "SUM",
        [
            {
                "order": 1,
                "matcher": '{"and":[{"in":[{"var":"dimension.city"},["chennai","mumbai"]]},'
                '{"or":[{">":[{"var":"attribute.distance"},100]},{"<":[{"var":"attribute.distance"},20]}]}]}',
                "computation": '{"*":[{"var":"attributes.distance"},0.4]}',
            }
        ],
    )
    events: list[Event] = [
        ({"distance": "150"}, {"city": "chennai"}),  # 150 > 100: 150 x 0.4 = 60.0
        ({"distance": "12.5"}, {"city": "mumbai"}),  # 12.5 < 20: 12.5 x 0.4 = 5.00
        ({"distance": "50"}, {"city": "chennai"}),  # 20 <= 50 <= 100: not metered
        ({"distance": "500"}, {"city": "delhi"}),  # other city: not metered
        ({}, {"city": "chennai"}),  # no distance: comparisons are false
    ]
    assert await values(conn, meter, events) == [Decimal("60.0"), Decimal("5.00"), None, None, None]
    assert await aggregate(conn, meter) == Decimal("65.00")


async def test_decimal_arithmetic_is_exact(conn: asyncpg.Connection) -> None:
    # Togai's own test: 1.03 * 2.03 = 2.0909 (a float would give 2.0908999999999995).
    meter = sum_meter({"*": [1.03, 2.03]})
    assert await values(conn, meter, [({}, {})]) == [Decimal("2.0909")]
    # "2" + "1" = 3: numeric strings are numbers in arithmetic.
    assert await values(conn, sum_meter({"+": ["2", "1"]}), [({}, {})]) == [Decimal("3")]
    # 0.1 + 0.2 = 0.3 exactly; attribute strings keep every digit.
    three = sum_meter({"+": [{"var": "attributes.x"}, 0.2]})
    assert await values(conn, three, [({"x": "0.1"}, {}), ({"x": "123456789012345678.000000001"}, {})]) == [
        Decimal("0.3"),
        Decimal("123456789012345678.200000001"),
    ]


async def test_first_matching_computation_by_order_wins(conn: asyncpg.Connection) -> None:
    meter = compile_meter(
        "SUM",
        [
            {"order": 3, "computation": "1"},  # fallback, no matcher
            {"order": 2, "matcher": {">": [{"var": "attributes.t"}, 10]}, "computation": {"*": [{"var": "attributes.t"}, 2]}},
            {"order": 1, "matcher": {"==": [{"var": "dimensions.tier"}, "free"]}, "computation": "0"},
        ],
    )  # fmt: skip
    events: list[Event] = [
        ({"t": "20"}, {"tier": "free"}),  # order 1 matches first: 0
        ({"t": "20"}, {"tier": "pro"}),  # order 2: 20 x 2 = 40
        ({"t": "5"}, {"tier": "pro"}),  # falls through to order 3: 1
    ]
    assert await values(conn, meter, events) == [Decimal("0"), Decimal("40"), Decimal("1")]


async def test_a_matched_computation_without_value_does_not_fall_through(conn: asyncpg.Connection) -> None:
    meter = compile_meter(
        "SUM",
        [
            {"order": 1, "matcher": {"==": [{"var": "dimensions.k"}, "a"]}, "computation": "missing"},
            {"order": 2, "computation": "5"},
        ],
    )
    assert await values(conn, meter, [({}, {"k": "a"}), ({}, {"k": "b"})]) == [None, Decimal("5")]


async def test_missing_values_and_division_by_zero(conn: asyncpg.Connection) -> None:
    events: list[Event] = [({"n": "6", "z": "0"}, {}), ({"z": "0"}, {})]
    assert await values(conn, sum_meter({"+": [{"var": "attributes.n"}, 1]}), events) == [Decimal("7"), None]
    assert await values(conn, sum_meter({"/": [{"var": "attributes.n"}, {"var": "attributes.z"}]}), events) == [
        None,
        None,
    ]
    assert await values(conn, sum_meter({"%": [{"var": "attributes.n"}, {"var": "attributes.z"}]}), events) == [
        None,
        None,
    ]
    # LEAST/GREATEST would skip the NULL; JSON Logic gives no value.
    assert await values(conn, sum_meter({"max": [{"var": "attributes.n"}, 1]}), events) == [Decimal("6"), None]
    assert await values(conn, sum_meter({"var": ["attributes.n", 0]}), events) == [Decimal("6"), Decimal("0")]
    # Conditions are two-valued: a comparison with a missing value is false, so its negation is true.
    assert await values(conn, count_meter({"!": {">": [{"var": "attributes.n"}, 1]}}), events) == [None, Decimal("1")]
    assert await values(conn, count_meter({"==": [{"var": "attributes.n"}, None]}), events) == [None, Decimal("1")]
    assert await values(conn, count_meter({"!=": [{"var": "attributes.n"}, 6]}), events) == [None, Decimal("1")]
    assert await values(conn, count_meter({"<=": [{"var": "attributes.n"}, {"var": "attributes.q"}]}), events) == [
        None,
        Decimal("1"),  # two missing values are equal, so <= holds
    ]


async def test_division_keeps_twenty_decimals_and_modulo_follows_the_dividend(conn: asyncpg.Connection) -> None:
    [third] = await values(conn, sum_meter({"/": [1, 3]}), [({}, {})])
    assert third == Decimal("0.33333333333333333333")
    [big] = await values(conn, sum_meter({"/": [{"var": "attributes.n"}, 3]}), [({"n": "10000000000"}, {})])
    assert big == Decimal("3333333333.33333333333333333333")
    # Truncated remainder as in JavaScript and Java's BigDecimal.remainder: -7 % 2 = -1 (Python says 1).
    assert await values(conn, sum_meter({"%": [-7, 2]}), [({}, {})]) == [Decimal("-1")]


async def test_truthiness_follows_json_logic(conn: asyncpg.Connection) -> None:
    events: list[Event] = [({"n": "0.00"}, {"s": ""}), ({"n": "0.01"}, {"s": "0"}), ({}, {})]
    assert await values(conn, count_meter({"var": "attributes.n"}), events) == [None, Decimal("1"), None]
    # "0" is a non-empty string, so truthy (as in JavaScript).
    assert await values(conn, count_meter({"var": "dimensions.s"}), events) == [None, Decimal("1"), None]
    # Used as a value, "or" returns the deciding operand: 0 is falsy, so 7; 0.01 is kept.
    assert await values(conn, sum_meter({"or": [{"var": "attributes.n"}, 7]}), events) == [
        Decimal("7"),
        Decimal("0.01"),
        Decimal("7"),
    ]
    assert await values(conn, sum_meter({"and": [{"var": "attributes.n"}, 7]}), events) == [
        Decimal("0.00"),
        Decimal("7"),
        None,
    ]
    chained = sum_meter({"if": [{"<": [{"var": "attributes.n"}, 0.005]}, 1, {"var": "dimensions.s"}, 2, 3]})
    assert await values(conn, chained, events) == [Decimal("1"), Decimal("2"), Decimal("3")]


async def test_arithmetic_between_and_if_without_else(conn: asyncpg.Connection) -> None:
    events: list[Event] = [({"n": "4"}, {}), ({"n": "10"}, {}), ({"n": "12.5"}, {})]
    # 10 - n: 6, 0, -2.5; and unary minus.
    assert await values(conn, sum_meter({"-": [10, {"var": "attributes.n"}]}), events) == [
        Decimal("6"),
        Decimal("0"),
        Decimal("-2.5"),
    ]
    assert await values(conn, sum_meter({"-": {"var": "attributes.n"}}), events[:1]) == [Decimal("-4")]
    # Between: 4 < n < 12.5 holds for 10 only; 4 <= n <= 12.5 for all three.
    assert await values(conn, count_meter({"<": [4, {"var": "attributes.n"}, 12.5]}), events) == [
        None,
        Decimal("1"),
        None,
    ]
    assert await values(conn, count_meter({"<=": [4, {"var": "attributes.n"}, 12.5]}), events) == [Decimal("1")] * 3
    # "if" without an else has no value when no condition holds.
    no_else = sum_meter({"if": [{">": [{"var": "attributes.n"}, 5]}, {"var": "attributes.n"}]})
    assert await values(conn, no_else, events) == [None, Decimal("10"), Decimal("12.5")]


def test_text_order_is_by_code_point_whatever_the_database_collation() -> None:
    # The test database may itself use C collation, so check the SQL as well as the results.
    sql = count_meter({">=": [{"var": "dimensions.z"}, "a"]}).value_sql
    assert 'COLLATE "C"' in sql
    assert 'COLLATE "C"' not in count_meter({">=": [{"var": "attributes.z"}, 1]}).value_sql


async def test_text_comparisons_substring_and_cat(conn: asyncpg.Connection) -> None:
    events: list[Event] = [({}, {"r": "us-east-1", "z": "Zeta"}), ({}, {"r": "eu-west-1", "z": "alpha"}), ({}, {})]
    # Code-point order: "Z" (0x5A) sorts before "a" (0x61), whatever the database collation says.
    assert await values(conn, count_meter({"<": [{"var": "dimensions.z"}, "a"]}), events) == [Decimal("1"), None, None]
    assert await values(conn, count_meter({"in": ["east", {"var": "dimensions.r"}]}), events) == [
        Decimal("1"),
        None,
        None,
    ]
    assert await values(conn, count_meter({"in": [{"var": "dimensions.r"}, "eu-west-1,ap-south-1"]}), events) == [
        None,
        Decimal("1"),
        None,
    ]
    joined = count_meter({"==": [{"cat": [{"var": "dimensions.r"}, "/", {"var": "dimensions.z"}]}, "/"]})
    assert await values(conn, joined, events) == [None, None, Decimal("1")]  # missing joins as ""


@pytest.mark.parametrize("literal", INJECTIONS)
async def test_injection_attempts_match_literally(conn: asyncpg.Connection, literal: str) -> None:
    meter = count_meter({"or": [{"==": [{"var": "dimensions.name"}, literal]}, {"in": [literal, ["nope"]]}]})
    events: list[Event] = [({}, {"name": literal}), ({}, {"name": literal + " "}), ({}, {"name": "x"})]
    assert await values(conn, meter, events) == [Decimal("1"), None, None]
    keyed = sum_meter({"var": f"attributes.{literal}"})
    assert await values(conn, keyed, [({literal: "2.5"}, {}), ({"x": "1"}, {})]) == [Decimal("2.5"), None]
    assert await conn.fetchval("SELECT count(*) FROM meter_events") == 2  # the table is still there


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=20).filter(lambda s: "\x00" not in s and s.encode("utf-8", "ignore").decode() == s))
async def test_text_literals_round_trip_through_postgresql(conn: asyncpg.Connection, value: str) -> None:
    assert await conn.fetchval(f"SELECT {sql_text_literal(value)}") == value
    # The same with standard_conforming_strings off, where '\' would otherwise escape in plain ''.
    async with conn.transaction():
        await conn.execute("SET LOCAL standard_conforming_strings = off")
        assert await conn.fetchval(f"SELECT {sql_text_literal(value)}") == value


async def test_unique_count_counts_distinct_keys_of_matching_events(conn: asyncpg.Connection) -> None:
    meter = compile_meter(
        "UNIQUE_COUNT",
        [{"order": 1, "matcher": {"!=": [{"var": "dimensions.plan"}, "test"]}, "computation": "user_id"}],
    )
    events: list[Event] = [
        ({}, {"user_id": "u1", "plan": "pro"}),
        ({}, {"user_id": "u1", "plan": "free"}),
        ({}, {"user_id": "u2", "plan": "pro"}),
        ({}, {"user_id": "u3", "plan": "test"}),  # filtered out by the matcher
        ({}, {"plan": "pro"}),  # no key: not counted
    ]
    assert await values(conn, meter, events) == [Decimal("1"), Decimal("1"), Decimal("1"), None, None]
    assert await aggregate(conn, meter) == 2  # u1, u2
    by_attribute = compile_meter("UNIQUE_COUNT", [{"order": 1, "computation": "attributes.seat"}])
    await values(conn, by_attribute, [({"seat": "1.50"}, {}), ({"seat": "1.5"}, {}), ({"seat": "2"}, {})])
    assert await aggregate(conn, by_attribute) == 2  # 1.50 and 1.5 are one value


async def test_aggregates_count_sum_max_latest(conn: asyncpg.Connection) -> None:
    events: list[Event] = [({"t": "3"}, {"k": "a"}), ({"t": "10"}, {"k": "b"}), ({"t": "4"}, {"k": "a"}), ({}, {})]
    count = compile_meter("COUNT", [{"order": 1, "matcher": {"==": [{"var": "dimensions.k"}, "a"]}}])
    assert await values(conn, count, events) == [Decimal("1"), None, Decimal("1"), None]
    assert await aggregate(conn, count) == 2
    assert await aggregate(conn, compile_meter("COUNT", [])) == 4  # no computations: every event
    assert await aggregate(conn, sum_meter("t")) == Decimal("17")  # 3 + 10 + 4
    assert await aggregate(conn, compile_meter("MAX", [{"order": 1, "computation": "t"}])) == Decimal("10")
    latest = compile_meter("LATEST", [{"order": 1, "computation": "t"}])
    # Newest first by id: the last event has no t, so the latest value is 4.
    assert await aggregate(conn, latest, "e.id DESC") == Decimal("4")
    with pytest.raises(ValueError):
        latest.aggregate_sql()
    await values(conn, sum_meter("t"), [])
    assert await aggregate(conn, sum_meter("t")) == 0
