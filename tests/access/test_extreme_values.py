"""The bad-input sweep: every tool, through a real MCP client, with extreme values in every argument.

Each case takes a working call of the tool (BASELINES, on a small world of a customer, an account on a
plan, events, a DUE invoice, a credit grant) and puts one extreme value at one place in it, at the
top or deep inside: nesting past the limit, wide objects and arrays, NUL characters and lone UTF-16
surrogates (in values and keys), numbers too big for any column, NaN and infinities, booleans where
numbers go, megabyte strings, tampered nextTokens. Every answer must be prompt and either a success
or a clean tool error: one that names the argument at fault, says no "internal error", names no
Python type, echoes no more than a prefix of the input (under MAX_MESSAGE_CHARS), and leaves no
traceback in the server's log.

Time arguments also get EXTREME_DATES: the ends of the calendar and of Python's datetime, offsets that
push year 1 or 9999 out of range, a five-digit year.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import logging
import math
import os
import re
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import JAN_1, call
from mcp_server.registry import SPECS
from mcp_server.server import load_tools

load_tools()

EXTREME_DATES = [
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "0001-01-01", "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999-14:00", "9999-12-31", "10000-01-01T00:00:00Z", "-0001-01-01T00:00:00Z",
]
CASES_PER_TOOL = int(os.environ.get("SWEEP_CASES_PER_TOOL", "15"))
PROMPT_SECONDS = 5.0  # per call; the slowest clean refusal takes milliseconds
MAX_MESSAGE_CHARS = 1024
PYTHON_WORDS = re.compile(
    r"NoneType|\bdict\b|\bstr\b|\bint\b|\bbool\b|\btuple\b|Decimal\(|datetime\.|instance of|<class|object at 0x|"
    r"Traceback|ValidationError|pydantic|Value error,|input_value|\.(?:str|int|float|bool|none)\b|function-(?:before|after)|"
    r"\b(?:None|True|False)\b")


def nested(depth: int, leaf: Any = "x") -> Any:
    for level in range(depth):
        leaf = [leaf] if level % 2 else {"a": leaf}
    return leaf


def token(text: str | bytes) -> str:
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


KINDS = ["customers", "accounts", "audit", "events", "event_schemas", "usage_meters", "price_plans", "rate_cards",
         "invoices", "wallet_entries:sw_a", "credit_notes::"]
TAMPERED_TOKENS = [
    token("[" * 5000 + "]" * 5000), token('{"k":"customers","after":[' + "[" * 3000 + "]" * 3000 + "]}"),
    token('{"k":' + "[" * 900 + "]" * 900 + ',"after":[1]}'), token('{"k":"customers","after":[' + "9" * 5000 + "]}"),
    token('{"k":"customers","after":[1e400]}'), token('{"k":"customers","after":[NaN]}'), token("1e400"),
    token('{"k":"customers","after":[-Infinity]}'), token('"\\ud800"'), token('{"k":"\\u0000","after":["\\u0000"]}'),
    token(b"\xff\xfe\x00"), "%%% not base64 %%%", "x" * 100_000, token("{}" * 50_000),
    *(token(f'{{"k":"{kind}","after":{after}}}') for kind in KINDS for after in (
        '["0001-01-01T00:00:00+14:00","sw_a","e1"]', '["9999-12-31T23:59:59-14:00",1]', "[1e400]",
        '["\\ud800"]', '[{"$gt":1}]', "[" + "1" * 40 + "]", '["\\u0000"]')),
]
TEXTS = ["a\x00b", "\x00", "a\ud800b", "\udfff", "x" * 1_000_000, "é✓🚀" * 2000]
NUMBERS = [10**400, -(10**400), 10**5000, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan, True, False,
           "1e400", "9" * 500, "-0", "0x10"]
# (a lone surrogate in a key is not sendable by the in-memory client: the stdio test sends one)
SHAPES = [nested(65), nested(200, {}), {f"k{i}": i for i in range(5000)}, list(range(20_000)), {"k\x00": 1},
          {"": None}, None, [], {}, [None] * 50]
FAMILIES = TEXTS + NUMBERS + SHAPES


async def world(client: Any, clock: Any) -> dict[str, str]:
    """A customer, an account on a plan with a usage card and a feature, three events, a grant, and the
    account's January invoice DUE (the clock moves to February 2nd)."""
    meter = await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                       computations=[{"computation": "tokens"}])
    plan = await call(client, "create_price_plan", **plan_arguments(meter["id"]))
    await call(client, "create_customer", id="sw_c", name="Sweep", account={
        "id": "sw_a", "name": "Sweep account", "aliases": ["sw_alias"], "pricePlanId": plan["id"],
        "effectiveFrom": JAN_1})
    for n in range(3):
        await call(client, "ingest_event", event=event(f"e{n}"))
    await call(client, "grant_credit", accountId="sw_a", amount="5.00", idempotencyKey="sweep")
    clock.set(clock.now().replace(month=2, day=2))
    invoice = (await call(client, "list_invoices", accountId="sw_a", status="DUE"))["data"][0]
    return {"meter": meter["id"], "plan": plan["id"], "invoice": invoice["id"]}


def event(event_id: str) -> dict[str, Any]:
    return {"id": event_id, "schemaName": "llm", "timestamp": "2026-01-05T10:00:00Z", "accountId": "sw_a",
            "attributes": {"tokens": "12.5"}, "dimensions": {"region": "eu"}}


def plan_arguments(meter_id: str, name: str = "Sweep plan") -> dict[str, Any]:
    return {
        "name": name,
        "pricingCycleConfig": {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"},
                               "gracePeriod": 0},
        "rateCards": {
            "usageRateCards": [{"usageMeterId": meter_id, "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"},
                {"order": 2, "startAfter": "100", "priceType": "PACKAGE", "slabConfig": {"packageSize": "10"}}]},
                "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.5"},
                                                                 {"order": 2, "rate": "2", "flatRate": "1"}]}]}],
            "billingEntitlementRateCards": [{"featureId": "f1", "usageMeterId": meter_id,
                                             "featureConfigs": [{"featureCreditLimit": "100"}]}],
            "creditGrantRateCards": [{"id": "monthly", "grantDetails": {"priority": 1, "expiryType": "NO_EXPIRY"},
                                      "rateDetails": {"currencySlabRateDetails": [
                                          {"currency": "USD", "creditAmount": "3"}]}}],
            "licenseRateCards": [{"id": "seats", "enableProration": True, "config": {"maxQuantity": 50},
                                  "ratePlan": {"pricingModel": "VOLUME", "slabs": [
                                      {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
                                  "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0"}]}]}],
            "entitlementOverageRateCards": [{"featureId": "f1", "maxQuantity": "50", "ratePlan": {
                "pricingModel": "TIERED", "slabs": [
                    {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"},
                    {"order": 2, "startAfter": "10", "priceType": "PACKAGE", "slabConfig": {"packageSize": "5"}}]},
                "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.1"},
                                                                 {"order": 2, "rate": "1", "flatRate": "1"}],
                                "rateConfig": {"minimumRate": "0", "maximumRate": "100"}}]}],
        },
        "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "10"}]},
    }


def baselines(ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    """A call of every tool that works on the world (the sweep changes one place in it)."""
    window = {"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-02-01T00:00:00Z"}
    return {
        "create_customer": {"id": "sw_c2", "name": "Other", "primaryEmail": "a@b.com", "address": {"country": "US"},
                            "metadata": {"k": "v"}, "account": {"id": "sw_a2", "name": "Other account"}},
        "get_customer": {"customerId": "sw_c"},
        "update_customer": {"customerId": "sw_c", "name": "Sweep", "metadata": {"k": "v"}},
        "list_customers": {"pageSize": 1},
        "create_account": {"id": "sw_a3", "customerId": "sw_c", "name": "Third", "invoiceCurrency": "USD",
                           "aliases": ["third"], "netTermDays": 10, "pricePlanId": ids["plan"],
                           "effectiveFrom": "2026-03-01T00:00:00Z"},
        "get_account": {"accountId": "sw_a"},
        "update_account": {"accountId": "sw_a", "name": "Sweep account", "netTermDays": 5, "metadata": {"k": "v"}},
        "list_accounts": {"customerId": "sw_c", "status": "ACTIVE", "pageSize": 1},
        "ingest_event": {"event": event("e9")},
        "ingest_batch_events": {"events": [event("e10"), event("e11")]},
        "void_event": {"accountId": "sw_a", "eventId": "e0", "reason": "sweep"},
        "void_events": {"events": [{"accountId": "sw_alias", "eventId": "e1"}], "reason": "sweep"},
        "list_events": {"accountId": "sw_a", "schemaName": "llm", "status": "ACCEPTED", "pageSize": 1},
        "list_event_schemas": {"pageSize": 1},
        "create_usage_meter": {"name": "calls", "eventSchemaName": "api", "aggregation": "SUM",
                               "computations": [{"matcher": {"==": [{"var": "dimensions.region"}, "eu"]},
                                                 "computation": {"*": [{"var": "attributes.n"}, 2]}, "order": 1}]},
        "list_usage_meters": {"eventSchemaName": "llm", "aggregation": "SUM", "pageSize": 1},
        "get_metrics": {**window, "metricQueries": [{"id": "q", "name": "USAGE", "aggregationPeriod": "DAY",
                                                     "groupBy": "ACCOUNT_ID",
                                                     "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": ["sw_a"]}]}]},
        "create_price_plan": plan_arguments(ids["meter"], "Second plan"),
        "list_price_plans": {"pageSize": 1},
        "get_price_plan": {"pricePlanId": ids["plan"]},
        "list_rate_cards": {"pricePlanId": ids["plan"], "pageSize": 1},
        "update_price_plan": {"pricePlanId": ids["plan"], "rateCards": {
            **plan_arguments(ids["meter"])["rateCards"],
            "minimumCommitment": plan_arguments(ids["meter"])["minimumCommitment"]},
            "pricingCycleConfig": {"interval": "MONTHLY", "gracePeriod": 1}, "supportedCurrencies": ["USD"],
            "description": "v2", "lateUsage": "IGNORE"},
        "finalize_price_plan": {"pricePlanId": ids["plan"], "migrationMode": "NONE"},
        "list_invoices": {"accountId": "sw_a", "customerId": "sw_c", "status": "DUE", **window, "pageSize": 1},
        "get_invoice": {"invoiceId": ids["invoice"]},
        "update_invoice_status": {"invoiceId": ids["invoice"], "status": "PAID"},
        "create_credit_note": {"invoiceId": ids["invoice"], "reason": "DUPLICATE", "amount": "0.50",
                               "memo": "sweep", "idempotencyKey": "sweep"},
        "list_credit_notes": {"invoiceId": ids["invoice"], "accountId": "sw_a", "pageSize": 1},
        "grant_credit": {"accountId": "sw_a", "amount": "1.00", "currency": "USD", "purpose": "PROMOTIONAL",
                         "effectiveFrom": "2026-02-02T00:00:00Z", "effectiveUntil": "2026-06-01T00:00:00Z",
                         "priority": 3, "idempotencyKey": "sweep-2"},
        "get_wallet_balance": {"accountId": "sw_a"},
        "list_wallet_entries": {"accountId": "sw_a", "pageSize": 1},
        "check_entitlement": {"accountId": "sw_alias", "featureId": "f1", "quantity": 2, "consume": {
            "id": "sweep-consume", "schemaName": "llm", "attributes": {"tokens": "2"}, "dimensions": {"region": "eu"}}},
        "get_entitlements": {"accountId": "sw_a"},
        "calculate_revenue": {"usage": {ids["meter"]: "150"}, "pricePlan": plan_arguments(ids["meter"], "Quote")},
        "simulate_price_plan": {"candidates": [ids["plan"], plan_arguments(ids["meter"], "Candidate")],
                                "accountIds": ["sw_a"], **window, "top": 2, "accountDetails": 5},
        "list_audit_log": {"tool": "grant_credit", "actor": "local", "entityId": "sw_a", "pageSize": 1},
        # refused here (not a sandbox server), after the argument checks every tool's values pass
        "get_clock": {},
        "advance_clock": {"by": "P1D"},
        "update_license": {"accountId": "sw_alias", "licenseId": "seats", "quantity": 3, "updateType": "RELATIVE",
                           "effectiveFrom": "2026-02-02T00:00:00Z", "idempotencyKey": "sweep"},
    }


Path = tuple[str | int, ...]


def leaf_paths(value: Any, path: Path = ()) -> list[Path]:
    """Every place in a call's arguments: each key and item, down to the leaves."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += leaf_paths(item, (*path, i))
    return found


def put(arguments: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    """A copy of `arguments` with `value` at `path`, making the objects and arrays on the way."""
    changed = copy.deepcopy(arguments)
    node: Any = changed
    for part, following in itertools.pairwise(path):
        kind = list if isinstance(following, int) else dict
        if isinstance(node, list):
            node.extend(kind() for _ in range(part + 1 - len(node)))
        if not isinstance(node[part] if isinstance(node, list) else node.get(part), kind):
            node[part] = kind()
        node = node[part]
    if isinstance(node, list):
        while len(node) <= path[-1]:
            node.append(None)
    node[path[-1]] = value
    return changed


def shown(path: Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def is_time(path: Path) -> bool:
    last = str(path[-1])
    return last in ("timestamp", "effectiveFrom", "effectiveUntil") or last.endswith("Time")


def values_for(path: Path) -> st.SearchStrategy[Any]:
    choices: list[Any] = list(FAMILIES)
    if path[-1] == "nextToken":
        choices += TAMPERED_TOKENS
    if is_time(path):
        choices += EXTREME_DATES
    return st.sampled_from(choices)


def draw_cases(tool: str, baseline: dict[str, Any], properties: list[str], count: int) -> list[tuple[Path, Any]]:
    """(place, value) pairs for one tool, drawn up front (hypothesis cannot drive an async body on a running
    loop): top-level arguments the baseline leaves out are places too."""
    places = sorted(set(leaf_paths(baseline)) | {(p,) for p in properties}, key=shown)
    cases: list[tuple[Path, Any]] = []
    if not places:  # a tool without arguments (get_clock): nothing to vary
        return cases

    @settings(max_examples=count, derandomize=not os.environ.get("SWEEP_RANDOM"), database=None)
    @given(st.sampled_from(places).flatmap(lambda place: st.tuples(st.just(place), values_for(place))))
    def gather(case: tuple[Path, Any]) -> None:
        cases.append(case)

    gather()
    return cases


class Sweep:
    def __init__(self, client: Any, tools: dict[str, Any]) -> None:
        self.client = client
        self.arguments = {name: list(t.input_schema.get("properties", {})) for name, t in tools.items()}
        self.calls = 0
        self.refused = 0
        self.slowest = (0.0, "")

    async def check(self, tool: str, arguments: dict[str, Any], path: Path, value: Any = None,
                    expect_error: bool = False) -> str:
        """Calls the tool; returns the error text ("" on success) after checking the answer is clean."""
        where = f"{tool} with {shown(path)} = {brief(value)}"
        start = time.perf_counter()
        result = await asyncio.wait_for(self.client.call_tool(tool, arguments), PROMPT_SECONDS * 4)
        took = time.perf_counter() - start
        self.calls += 1
        self.slowest = max(self.slowest, (took, where))
        assert took < PROMPT_SECONDS, f"{where}: answered after {took:.1f} s"
        if not result.is_error:
            assert not expect_error, f"{where}: succeeded"
            return ""
        self.refused += 1
        text = result.content[0].text if result.content else ""
        assert text.strip(), f"{where}: empty error"
        assert "internal error" not in text, f"{where}: {text[:500]}"
        assert text.strip() != f"Error executing tool {tool}", f"{where}: the tool crashed (see the server log)"
        assert len(text) <= MAX_MESSAGE_CHARS, f"{where}: a message of {len(text)} characters: {text[:300]}…"
        python = PYTHON_WORDS.search(text)
        assert python is None, f"{where}: the message names Python's {python.group()!r}: {text}"
        # the argument at fault; or, when the value was fine but stored state is not (a key already used for
        # other content, a name taken), the argument or record that conflicts
        named = str(path[0]) in text or any(re.search(rf"(?<![\w.]){re.escape(name)}[:\[. ]", text)
                                            for name in self.arguments[tool])
        assert named or names_record(text), f"{where}: the message names no argument: {text}"
        return text


def brief(value: Any) -> str:
    if isinstance(value, int) and abs(value) > 10**40:
        return f"a number of {len(hex(value)) * 1.2:.0f} digits"  # str() refuses past 4300 digits
    return repr(value)[:60]


def names_record(text: str) -> bool:
    """A message about stored state (the value sent was fine, the record it names is missing or differs)
    names that record instead."""
    return any(words in text for words in ("does not exist", "has no ", "already exists", "already invoiced"))


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def tracebacks(log: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()[:300]}" for r in log.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_every_tool_answers_extreme_values_cleanly(client, clock, server_log):
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == set(SPECS)
    ids = await world(client, clock)
    calls = baselines(ids)
    assert set(calls) == set(tools), f"add a baseline call for {sorted(set(tools) - set(calls))}"
    sweep = Sweep(client, tools)
    started = time.perf_counter()
    for tool in sorted(tools):
        properties = list(tools[tool].input_schema.get("properties", {}))
        for path, value in draw_cases(tool, calls[tool], properties, CASES_PER_TOOL):
            await sweep.check(tool, put(calls[tool], path, value), path, value)
    print(f"sweep: {sweep.calls} calls over {len(tools)} tools in {time.perf_counter() - started:.1f} s, "
          f"{sweep.refused} refused; slowest {sweep.slowest[0] * 1000:.0f} ms ({sweep.slowest[1]})")
    assert not tracebacks(server_log)


async def test_tampered_tokens_on_every_list(client, clock, server_log):
    tools = {t.name: t for t in (await client.list_tools()).tools}
    ids = await world(client, clock)
    calls = baselines(ids)
    lists = sorted(name for name, t in tools.items() if "nextToken" in t.input_schema.get("properties", {}))
    assert len(lists) >= 11
    sweep = Sweep(client, tools)
    for tool in lists:
        for tampered in TAMPERED_TOKENS:
            text = await sweep.check(tool, {**calls[tool], "nextToken": tampered}, ("nextToken",), tampered,
                                     expect_error=True)
            assert "nextToken: is not a token this server issued" in text and "omit it" in text, (tool, text)
    assert not tracebacks(server_log)


def number_places(schema: dict[str, Any], root: dict[str, Any], path: Path = (), depth: int = 0) -> list[Path]:
    """Every place the schema takes a number and not a boolean (objects and arrays entered once)."""
    alternatives, pending = [], [schema]
    while pending:
        node = pending.pop()
        if "$ref" in node:
            pending.append(root["$defs"][node["$ref"].rsplit("/", 1)[-1]])
        elif any(k in node for k in ("anyOf", "oneOf", "allOf")):
            pending += [s for k in ("anyOf", "oneOf", "allOf") for s in node.get(k, [])]
        else:
            alternatives.append(node)
    kinds = set()
    for node in alternatives:
        kind = node.get("type")
        kinds |= set(kind) if isinstance(kind, list) else {kind}
    found = [path] if path and kinds & {"number", "integer"} and not kinds & {"boolean", None} else []
    if depth > 8:
        return found
    for node in alternatives:
        for key, sub in node.get("properties", {}).items():
            found += number_places(sub, root, (*path, key), depth + 1)
        if isinstance(node.get("additionalProperties"), dict):
            found += number_places(node["additionalProperties"], root, (*path, "k"), depth + 1)
        if isinstance(node.get("items"), dict):
            found += number_places(node["items"], root, (*path, 0), depth + 1)
    return sorted(set(found), key=shown)


async def test_booleans_are_never_numbers(client, clock, server_log):
    """`true` wherever a tool's schema (or an inline plan, create_price_plan's) takes a number is refused,
    naming the place; the grant that `"amount": true` used to make is not made."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    ids = await world(client, clock)
    calls = baselines(ids)
    sweep = Sweep(client, tools)
    before = await call(client, "get_wallet_balance", accountId="sw_a")
    places = [(tool, path) for tool in sorted(tools)
              for path in number_places(tools[tool].input_schema, tools[tool].input_schema)]
    plan_schema = tools["create_price_plan"].input_schema
    for path in number_places(plan_schema, plan_schema):
        places += [("calculate_revenue", ("pricePlan", *path)), ("simulate_price_plan", ("candidates", 1, *path))]
    for tool, path in places:
        arguments = calls[tool]
        if "attributes" in path and isinstance(path[path.index("attributes") + 1], int):  # the [{name, value}] form
            arguments = put(arguments, path[:path.index("attributes") + 1], [{"name": "tokens", "value": "1"}])
        plan_at = {"calculate_revenue": 1, "simulate_price_plan": 2}.get(tool)
        if plan_at and tuple(path[plan_at:plan_at + 2]) == ("rateCards", "minimumCommitment"):
            arguments = copy.deepcopy(arguments)  # the commitment goes in one place
            inline = arguments["pricePlan"] if tool == "calculate_revenue" else arguments["candidates"][1]
            del inline["minimumCommitment"]
        if tool == "ingest_batch_events":  # a batch rejects the one event, naming its field
            batch = await call(client, tool, **put(arguments, path, True))
            rejected = batch["rejectedEvents"][0]
            assert (rejected["index"], rejected["field"]) == (path[1], shown(path[2:])), rejected
            assert rejected["code"] == "INVALID_VALUE" and "got a boolean" in rejected["message"], rejected
            continue
        text = await sweep.check(tool, put(arguments, path, True), path, True, expect_error=True)
        said = "got a boolean" if tool == "ingest_event" else "is a boolean; send a number"
        assert f"{shown(path)}: " in text and said in text, (tool, shown(path), text)
    assert {"grant_credit", "check_entitlement", "calculate_revenue", "update_account", "create_account",
            "create_price_plan", "simulate_price_plan"} <= {tool for tool, _ in places}
    # no boolean was taken as an amount: grant_credit's `"amount": true` granted nothing
    assert await call(client, "get_wallet_balance", accountId="sw_a") == before
    print(f"booleans: {len(places)} places refused")
    assert not tracebacks(server_log)
