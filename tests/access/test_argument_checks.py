"""The checks every tool call passes before its tool runs, and the words of its errors, through a real client:
errors name the argument at fault by its full path, in JSON's words, quoting at most a prefix of the input."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from conftest import row_counts
from helpers import call, call_error
from mcp_server.argument_checks import MAX_DEPTH
from togai_engine.common.messages import describe_errors, shorten_echoes


def nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


async def test_text_postgresql_cannot_store_is_refused_by_its_path(client, db):
    await call(client, "create_customer", id="c", name="C")
    before = await row_counts(db)
    for arguments, path, says in (
        ({"metadata": {"team": {"lead": "a\x00b"}}}, "metadata.team.lead", "contains a NUL character (\\u0000)"),
        ({"metadata": {"tags": ["ok", "x\ud800"]}}, "metadata.tags[1]", "contains a lone UTF-16 surrogate (\\ud800)"),
        ({"metadata": {"k\x00": "v"}}, "metadata", "the key 'k\\x00' contains a NUL character"),
        ({"address": {"line1": "\udfff"}}, "address.line1", "contains a lone UTF-16 surrogate (\\udfff)"),
    ):
        error = await call_error(client, "update_customer", customerId="c", **arguments)
        assert error == f"update_customer: invalid input: {path}: {says}" + error.split(says, 1)[1], error
    # a string sent for an object argument is read as JSON (the SDK does): its NUL is found there too
    error = await call_error(client, "update_customer", customerId="c", address='{"line1": "a\\u0000"}')
    assert error.startswith("update_customer: invalid input: address.line1: contains a NUL character"), error
    assert await row_counts(db) == before


async def test_nesting_is_bounded(client):
    await call(client, "create_customer", id="c", name="C")
    # 64 levels are read (and refused for what they are); 65 are refused for their depth, naming the argument
    assert "should be a string" in await call_error(client, "update_customer", customerId="c",
                                                    metadata={"k": nested(MAX_DEPTH - 1)})
    error = await call_error(client, "update_customer", customerId="c", metadata={"k": nested(MAX_DEPTH)})
    assert error.startswith(f"update_customer: invalid input: metadata: is nested more than {MAX_DEPTH} levels"), error


async def test_numbers_beyond_a_thousand_digits_are_refused(client):
    error = await call_error(client, "check_entitlement", accountId="a", featureId="f", quantity=10**5000)
    assert error == ("check_entitlement: invalid input: quantity: is a number of more than 1000 digits; no argument "
                     "takes one that long")


async def test_a_megabyte_id_gets_a_short_message(client):
    error = await call_error(client, "get_customer", customerId="x" * 1_000_000)
    assert len(error) < 300, len(error)
    assert f"customer '{'x' * 80}…' does not exist" in error, error


async def test_errors_say_what_a_value_should_be_in_json_words(client):
    error = await call_error(client, "grant_credit", accountId="a", amount=[1])
    assert error == "grant_credit: invalid input: amount: should be a string or a number; got an array", error
    error = await call_error(client, "create_price_plan", name="p", pricingCycleConfig={"interval": "MONTHLY"},
                             rateCards=[1])
    assert error == "create_price_plan: invalid input: rateCards: should be an object; got an array", error


class Inner(BaseModel):
    a: int


class Outer(BaseModel):
    x: str | int
    m: dict[str, str | Inner]
    inner: Inner | None = None


def test_union_members_are_not_fields():
    """pydantic locates a union member's error under the member's name (x.str, m.str.str, inner.Inner); with
    the input at hand, a key that really is named "str" stays."""
    data = {"x": [1], "m": {"str": [2]}, "inner": 5}
    with pytest.raises(ValidationError) as raised:
        Outer.model_validate(data)
    assert describe_errors(raised.value, data) == [
        ("x", "should be a string or an integer; got an array"),
        ("m.str", "should be a string or an object; got an array"),
        ("inner", "should be an object; got a number"),
    ]
    assert [path for path, _ in describe_errors(raised.value)] == ["x", "m", "inner"]  # without the input


def test_echoes_are_cut_to_a_prefix():
    long = "y" * 5000
    message = f"id: {long!r} is not a valid id; the customer {long} does not exist; {'[' * 400}"
    short = shorten_echoes(message, {"id": long})
    assert short == f"id: '{'y' * 80}…' is not a valid id; the customer {'y' * 80}… does not exist; {'[' * 80}…"
    assert len(shorten_echoes("z " * 5000, {})) <= 1000
    assert shorten_echoes("a\ud800", {}) == "a\\ud800"
