"""json_text.loads must mean exactly what json.loads means (orjson is only a faster way there)."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from togai_engine.common import json_text

scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=20),
    st.integers(min_value=-(10**30), max_value=10**30),  # beyond int64 too: orjson would make these floats
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=6).map(str),
)
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


def same(a: object, b: object) -> bool:
    """Equal, with the same types all the way down (1 and 1.0 differ; -0.0 and 0.0 differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return math.copysign(1, a) == math.copysign(1, b) and a == b  # type: ignore[arg-type]
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)  # type: ignore[attr-defined,index]
    return a == b


@given(documents)
def test_same_value_as_json_module(document: object) -> None:
    text = json.dumps(document)
    assert same(json_text.loads(text), json.loads(text))
    assert same(json_text.loads(text.encode()), json.loads(text))


@pytest.mark.parametrize("text", [
    '{"tokens": 12345678901234567890123}',  # orjson alone: 1.2345678901234568e+22
    '{"v": 9223372036854775808}',           # just past int64
    '{"v": NaN}', '{"v": -Infinity}',       # json accepts the constants (validation then rejects them)
    '"\\ud800"',                            # a lone surrogate (validation rejects it)
    '{"v": 1e400}',                         # inf in json, an error in orjson
    '{"a": 1, "a": 2}',                     # the last key wins in both
])
def test_inputs_where_orjson_differs(text: str) -> None:
    expected = json.loads(text)
    got = json_text.loads(text)
    assert repr(got) == repr(expected)


@pytest.mark.parametrize("text", ["{", '{"a": }', "", "[1,]"])
def test_errors_are_the_json_modules(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        json_text.loads(text)
    assert (got.value.msg, got.value.pos) == (expected.value.msg, expected.value.pos)


def same_number(a: object, b: object) -> bool:
    """`a` (loads_exact) means `b` (json with parse_float=Decimal): a float stands for the decimal of its
    repr, and must equal b exactly."""
    if isinstance(a, float) and isinstance(b, Decimal):
        return Decimal(repr(a)) == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_number(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_number(a[k], b[k]) for k in a)  # type: ignore[attr-defined,index]
    return a == b


numbers_as_text = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)


@given(st.lists(numbers_as_text, min_size=1, max_size=5))
@example(["1e-400"])  # orjson: 0.0
@example(["1.2345678901234e-320"])  # orjson: a subnormal with fewer digits
def test_exact_loads_keep_every_digit_of_a_number(numbers: list[str]) -> None:
    # as raw JSON number literals (a Decimal's str is one once its exponent is written as JSON writes it)
    literals = [n.lower().replace("e+", "e") for n in numbers if _is_json_number(n.lower().replace("e+", "e"))]
    text = "[" + ", ".join(literals) + "]"
    assert same_number(json_text.loads_exact(text), json.loads(text, parse_float=Decimal))


def _is_json_number(text: str) -> bool:
    return re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?", text) is not None


def test_exact_loads_of_an_event_line() -> None:
    line = '{"attributes": {"gb": 12345678.123456789, "n": 1.5, "big": 123456789012345678901}}'
    assert json_text.loads_exact(line) == {"attributes": {"gb": Decimal("12345678.123456789"), "n": 1.5,
                                                          "big": 123456789012345678901}}


@given(st.lists(numbers_as_text, min_size=1, max_size=5))
@example(["1e-400"])  # float: 0.0
@example(["10.000000000000000001"])  # float: 10.0
@example(["-1E+400"])  # float: -inf
def test_a_number_a_float_does_not_hold_is_read_as_an_inexact_number_and_never_missed(numbers: list[str]) -> None:
    """loads_checked gives the float of every number a float holds exactly (its shortest form is the number
    written) and an InexactNumber keeping the text of every other; may_hold_inexact_number, the transports'
    cheap look at a message, is never False for a text that holds one."""
    literals = [n for n in numbers if _is_json_number(n)]
    for text in ("[" + ", ".join(literals) + "]", "{" + ", ".join(f'"k{i}":{n}' for i, n in enumerate(literals)) + "}"):
        read = json_text.loads_checked(text)
        values = read if isinstance(read, list) else list(read.values())
        for value, literal in zip(values, literals, strict=True):
            if isinstance(value, json_text.InexactNumber):
                assert value.text == literal and Decimal(float.__repr__(value)) != Decimal(literal)
                assert json_text.may_hold_inexact_number(text), text
            elif isinstance(value, float):
                assert Decimal(repr(value)) == Decimal(literal)
            else:
                assert value == int(literal)


@pytest.mark.parametrize(("text", "inexact"), [
    # an exponent beyond what a Decimal holds (±10**18): Decimal(text) raised InvalidOperation, which no transport
    # caught (stdio: the line was never answered; HTTP: a 500), where 1e-400 is refused by name
    ("1e-99999999999999999999", True),  # float: 0.0
    ("-2.5E-100000000000000000000", True),  # float: -0.0
    ("1e99999999999999999999", True),  # float: inf
    ("0e-99999999999999999999", False),  # 0, which a float holds
    ("-0.000E+99999999999999999999", False),  # -0
])
def test_a_number_with_an_exponent_beyond_a_decimals_is_read_not_raised(text: str, inexact: bool) -> None:
    read = json_text.loads_checked(f'{{"rate": {text}}}')["rate"]
    assert isinstance(read, json_text.InexactNumber) is inexact
    assert float(read) == float(text)
    if inexact:
        assert read.text == text
    assert json_text.may_hold_inexact_number(f'{{"rate": {text}}}')


number_literals = st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][-+]?[0-9]{1,22})?", fullmatch=True)
spaces = st.text(alphabet=" \t\r\n", max_size=2)


@st.composite
def texts_with_numbers(draw: st.DrawFn) -> tuple[str, list[str]]:
    """JSON text holding number literals as written: at the top level, in an array or as an object's values, after
    any JSON whitespace (newlines and tabs too), beside strings that look like numbers."""
    literals = draw(st.lists(number_literals, min_size=1, max_size=4))
    gap = lambda: draw(spaces)  # noqa: E731
    shape = draw(st.sampled_from(["top", "array", "object"]))
    if shape == "top":
        literals = literals[:1]
        return gap() + literals[0] + gap(), literals
    decoy = json.dumps(draw(st.sampled_from(["a,1e5", "x:12345678901234567", "1e-400", "plain"])))
    if shape == "array":
        return "[" + gap() + ("," + gap()).join([*(n + gap() for n in literals), decoy]) + "]", literals
    items = [f'{gap()}"k{i}"{gap()}:{gap()}{n}{gap()}' for i, n in enumerate(literals)]
    return "{" + ",".join([*items, f'"decoy":{decoy}']) + "}", literals


@given(texts_with_numbers())
@example(("1e-99999999999999999999", ["1e-99999999999999999999"]))  # beyond a Decimal's exponent
@example(("\n-12345678901234567\t", ["-12345678901234567"]))  # an int of 17 digits: exact, taken
@example(("[1e2]", ["1e2"]))  # 100.0: exact, taken
def test_every_number_a_float_does_not_hold_is_caught_wherever_it_is_written(case: tuple[str, list[str]]) -> None:
    """loads_checked reads an integer as the int written (exact at any length), a number a float holds as that
    float, and any other as an InexactNumber; may_hold_inexact_number is True whenever one is there."""
    text, literals = case
    read = json_text.loads_checked(text)
    values = [read] if not isinstance(read, list | dict) else [
        v for v in (read if isinstance(read, list) else read.values()) if not isinstance(v, str)]
    assert len(values) == len(literals)
    for value, literal in zip(values, literals, strict=True):
        if re.fullmatch(r"-?[0-9]+", literal):
            assert type(value) is int and value == int(literal)
        elif isinstance(value, json_text.InexactNumber):
            assert value.text == literal and json_text.may_hold_inexact_number(text), text
        elif value == 0:  # (Decimal refuses an exponent past ±10**18: 0E1000000000000000000 is 0 all the same)
            assert type(value) is float and not literal.lower().split("e")[0].strip("-0.")
        else:
            assert type(value) is float and Decimal(repr(value)) == Decimal(literal)
