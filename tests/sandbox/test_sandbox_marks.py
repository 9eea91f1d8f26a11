"""A sandbox server says so (`sandbox: true`) on every record of an invoice, money or an account it answers
with: the invoice resources (JSON and the markdown document), credit notes, the wallet, the account tools. A
server on the real clock answers the same records without the field. Both servers run on the test database,
each with its own customer, through a real MCP client."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from mcp import Client

import test_sandbox_clock
from helpers import at, call
from togai_engine.common.clock import FixedClock

sandbox = test_sandbox_clock.sandbox  # the fixture: a sandbox server at 2026-01-01

SANDBOX_NOTE = "**SANDBOX**: made on a sandbox server"


async def read(server: Client, uri: str) -> str:
    (content,) = (await server.read_resource(uri)).contents
    return content.text


async def every_surface(server: Client, name: str, to_february: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """Customer c_<name> with account <name> on a 31.00 monthly fee from Jan 1 (no grace) and a second account
    <name>_2; at Feb 1 January is DUE, a 1.00 credit note is issued on it and 5.00 credit granted. Returns
    every record those calls and reads answered with, by what answered it."""
    plan = await call(server, "create_price_plan", name=f"Fee {name}", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0}, rateCards={
        "fixedFeeRateCards": [{"id": "base", "rateValues": [{"currency": "USD", "rate": "31"}],
                               "invoiceTiming": "IN_ARREARS", "enableProration": False}]})
    created = await call(server, "create_customer", id=f"c_{name}", name="C", account={
        "id": name, "name": "A", "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z"})
    found: dict[str, Any] = {
        "create_customer.account": created["account"],  # the account it created inline is an account record
        "create_account": await call(server, "create_account", id=f"{name}_2", customerId=f"c_{name}", name="B"),
        "update_account": await call(server, "update_account", accountId=f"{name}_2", name="B2"),
        "list_accounts": await call(server, "list_accounts", customerId=f"c_{name}"),
    }
    await to_february()
    (january,) = (await call(server, "list_invoices", accountId=name, status="DUE"))["data"]
    found["create_credit_note"] = await call(server, "create_credit_note", invoiceId=january["id"], reason="OTHER",
                                             memo="goodwill", amount="1.00")
    found["list_credit_notes"] = await call(server, "list_credit_notes", invoiceId=january["id"])
    found["grant_credit"] = await call(server, "grant_credit", accountId=name, amount="5")
    found["get_wallet_balance"] = await call(server, "get_wallet_balance", accountId=name)
    found["list_wallet_entries"] = await call(server, "list_wallet_entries", accountId=name)
    found["togai://invoices/{id}.json"] = json.loads(await read(server, f"togai://invoices/{january['id']}.json"))
    found["togai://accounts/{id}"] = json.loads(await read(server, f"togai://accounts/{name}"))
    found["togai://invoices/{id}"] = await read(server, f"togai://invoices/{january['id']}")
    # The same money on both servers: January is the 31.00 fee; the note takes 1.00 off what it owes
    # (31.00 - 1.00 = 30.00); the wallet holds the 5.00 grant alone (the note went to the due amount).
    assert found["togai://invoices/{id}.json"]["totalAmount"] == "31.00"
    assert found["create_credit_note"]["invoice"]["amountDue"] == "30.00"
    assert found["create_credit_note"]["creditNote"]["creditedToWallet"] == "0.00"
    assert (found["get_wallet_balance"]["balance"], found["list_wallet_entries"]["balance"]) == ("5.00", "5.00")
    assert [e["amount"] for e in found["list_wallet_entries"]["data"]] == ["5.00"]
    return found


def marks(found: dict[str, Any]) -> dict[str, list[Any]]:
    """Per answer, the `sandbox` value of each record in it (the items of a list; "absent" when left out)."""
    out: dict[str, list[Any]] = {}
    for source, record in found.items():
        if isinstance(record, dict):
            listed = source.startswith(("list_accounts", "list_credit_notes"))
            out[source] = [item.get("sandbox", "absent") for item in (record["data"] if listed else [record])]
    return out


async def test_every_record_says_sandbox_only_on_a_sandbox(sandbox: Client, client: Client, clock: FixedClock) -> None:
    on_sandbox = await every_surface(sandbox, "sbx", lambda: call(sandbox, "advance_clock", to="2026-02-01"))

    async def set_clock() -> None:
        clock.set(at(2026, 2, 1))

    on_real = await every_surface(client, "real", set_clock)

    sandbox_marks = marks(on_sandbox)
    assert sandbox_marks == {source: [True] * len(values) for source, values in sandbox_marks.items()}
    real_marks = marks(on_real)
    assert real_marks == {source: ["absent"] * len(values) for source, values in real_marks.items()}
    # every answer was looked at, and the lists had their records
    assert set(sandbox_marks) == set(real_marks) == set(on_sandbox) - {"togai://invoices/{id}"}
    assert (len(sandbox_marks["list_accounts"]), len(sandbox_marks["list_credit_notes"])) == (2, 1)

    document = on_sandbox["togai://invoices/{id}"]
    assert document.splitlines()[2].startswith(SANDBOX_NOTE), document  # right under the title
    assert SANDBOX_NOTE not in on_real["togai://invoices/{id}"]
