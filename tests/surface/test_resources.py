"""Resources through a real MCP client: templates, reads of known data (the invoice document to the cent),
the same JSON as the tools, catch-up before a read, errors, and the bounded resources/list."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

import pytest
from mcp.shared.exceptions import MCPError

from helpers import call
from mcp_server import resources
from surface_story import tell


async def read(client, uri: str) -> tuple[str, str]:
    """(mime type, text) of a resource that has one content item."""
    result = await client.read_resource(uri)
    assert len(result.contents) == 1
    content = result.contents[0]
    assert str(content.uri) == uri
    return content.mime_type, content.text


async def test_templates_are_listed_with_their_mime_types(client) -> None:
    templates = {t.uri_template: t for t in (await client.list_resource_templates()).resource_templates}
    assert {uri: t.mime_type for uri, t in templates.items()} == {
        "togai://accounts/{accountId}": "application/json",
        "togai://invoices/{invoiceId}": "text/markdown",
        "togai://invoices/{invoiceId}.json": "application/json",
        "togai://price-plans/{pricePlanId}": "application/json",
        "togai://usage-meters/{usageMeterId}": "application/json",
    }
    assert all(t.description and t.title for t in templates.values())
    assert client.server_capabilities.resources is not None and client.server_capabilities.resources.subscribe
    assert client.server_capabilities.completions is not None


async def test_the_invoice_document_shows_the_known_invoice_to_the_cent(client, clock) -> None:
    story = await tell(client, clock)
    mime, text = await read(client, f"togai://invoices/{story.acme_january}")
    assert mime == "text/markdown"
    # 220 tokens TIERED: 100 × 0.10 = 10.00 and 120 × 0.05 = 6.00, card 16.00; platform fee 10.00;
    # total 16.00 + 10.00 = 26.00, nothing credited, so 26.00 due
    assert text == f"""# Invoice INV-000001

| | |
|---|---|
| Invoice id | `{story.acme_january}` |
| Number | INV-000001 |
| Status | DUE |
| Account | `acme-main` (customer `acme`) |
| Price plan | Growth (`{story.growth}`) |
| Billing period | 2026-01-01T00:00:00Z to 2026-02-01T00:00:00Z (end exclusive, UTC) |
| Invoice date | 2026-02-02T00:00:00Z |
| Due date | 2026-02-02T00:00:00Z |
| Currency | USD |

## Lines

| # | Line | Type | Quantity | Rate | Amount (USD) |
|---|---|---|---:|---:|---:|
| 1 | um_tokens: 220 units | USAGE_RATE_CARD_AMOUNT | 220 |  | 16.00 |
| 1.1 | Slab 1 (after 0, PER_UNIT): 100 × 0.1 | USAGE_RATE_CARD_SLAB_AMOUNT | 100 | 0.10 | 10.00 |
| 1.2 | Slab 2 (after 100, PER_UNIT): 120 × 0.05 | USAGE_RATE_CARD_SLAB_AMOUNT | 120 | 0.05 | 6.00 |
| 2 | platform | FIXED_FEE_RATE_CARD_AMOUNT | 1 | 10 | 10.00 |

Top-level amounts are rounded once to the currency's minor unit; the numbered lines below one (1.1, 1.2, ...) \
are its exact parts. `#` is the lineNumber create_credit_note takes.

## Totals

| | USD |
|---|---:|
| Sub-total | 26.00 |
| Minimum-commitment true-up | 0.00 |
| **Total** | 26.00 |
| Credits applied (wallet) | 0.00 |
| Credit notes (off the amount due) | 0.00 |
| **Amount due** | 26.00 |
"""


async def test_a_paid_invoice_document_says_what_was_paid_and_when_and_that_nothing_is_due(client, clock) -> None:
    """A PAID invoice keeps, as amountDue, what was due when it was paid: the document shows it as paid, not as
    an amount still due."""
    story = await tell(client, clock)
    clock.set(datetime(2026, 2, 5, 9, tzinfo=UTC))
    await call(client, "update_invoice_status", invoiceId=story.acme_january, status="PAID")
    _, text = await read(client, f"togai://invoices/{story.acme_january}")
    assert "| Status | PAID |" in text
    # 26.00 total, nothing credited: 26.00 paid on 5 February, 0.00 due
    assert text.endswith("| Credit notes (off the amount due) | 0.00 |\n| Paid on 2026-02-05T09:00:00Z | 26.00 |\n"
                         "| **Amount due** | 0.00 |\n"), text[-400:]


async def test_a_note_credited_after_payment_is_not_taken_off_in_the_totals_of_the_document(client, clock) -> None:
    """A note on a PAID invoice takes nothing off what was due (it was paid): all of it goes to the wallet. The
    totals take off only what notes took off the amount due, so they add up to the amount due, as the view's do;
    the notes section says where each note went."""
    story = await tell(client, clock)
    clock.set(datetime(2026, 2, 5, 9, tzinfo=UTC))
    await call(client, "update_invoice_status", invoiceId=story.acme_january, status="PAID")
    await call(client, "create_credit_note", invoiceId=story.acme_january, reason="PRODUCT_UNSATISFACTORY",
               amount="10.00", idempotencyKey="cn-paid")
    _, text = await read(client, f"togai://invoices/{story.acme_january}")
    # 26.00 total - 0.00 credits - 0.00 off the amount due (the note came after payment) - 26.00 paid = 0.00 due;
    # the note's 10.00 went to the wallet
    assert ("| **Total** | 26.00 |\n| Credits applied (wallet) | 0.00 |\n"
            "| Credit notes (off the amount due) | 0.00 |\n| Paid on 2026-02-05T09:00:00Z | 26.00 |\n"
            "| **Amount due** | 0.00 |\n") in text, text
    assert "| Number | Reason | Amount | Off the amount due | To the wallet |" in text, text
    assert re.search(r"\| CN-\S+ \| PRODUCT_UNSATISFACTORY \| 10\.00 \| 0\.00 \| 10\.00 \|", text), text


async def test_the_draft_document_says_it_is_a_draft_and_when_it_closes(client, clock) -> None:
    story = await tell(client, clock)
    _, text = await read(client, f"togai://invoices/{story.acme_february}")
    assert "DRAFT: computed from the usage recorded so far" in text
    assert "| Status | DRAFT |" in text and "| Becomes DUE | 2026-03-02T00:00:00Z |" in text
    assert "| Number | — (numbered when it becomes DUE) |" in text
    # February so far: no tokens, the 10.00 platform fee (in arrears, shown on the DRAFT)
    assert "| 2 | platform | FIXED_FEE_RATE_CARD_AMOUNT | 1 | 10 | 10.00 |" in text
    assert "| **Total** | 10.00 |" in text


async def test_the_json_twins_are_what_the_tools_return(client, clock) -> None:
    story = await tell(client, clock)
    mime, text = await read(client, f"togai://invoices/{story.acme_january}.json")
    assert mime == "application/json"
    assert json.loads(text) == await call(client, "get_invoice", invoiceId=story.acme_january)
    # an alias names the account as well as its id
    mime, text = await read(client, "togai://accounts/acme-eu")
    account = json.loads(text)
    assert mime == "application/json"
    assert account == await call(client, "get_account", accountId="acme-main")
    # January's 26.00 is DUE and unpaid; February has accrued its 10.00 fee
    assert (account["financial"]["outstanding"], account["financial"]["accruedCharges"]) == ("26.00", "10.00")
    _, text = await read(client, f"togai://price-plans/{story.growth}")
    plan = json.loads(text)
    assert plan == await call(client, "get_price_plan", pricePlanId=story.growth)
    assert [s["rate"] for s in plan["rateCards"]["usageRateCards"][0]["rateValues"][0]["slabRates"]] == ["0.10", "0.05"]
    _, text = await read(client, "togai://usage-meters/um_tokens")
    meters = (await call(client, "list_usage_meters"))["data"]
    assert json.loads(text) == next(m for m in meters if m["id"] == "um_tokens")


async def test_a_read_brings_the_invoice_up_to_now_first(client, clock) -> None:
    story = await tell(client, clock)
    clock.set(datetime(2026, 3, 3, tzinfo=UTC))  # February closed on 2 March (period end + 1 day of grace)
    _, text = await read(client, f"togai://invoices/{story.acme_february}")
    assert "| Status | DUE |" in text and "| Invoice date | 2026-03-02T00:00:00Z |" in text
    assert "| Number | INV-000003 |" in text  # January: acme INV-000001, globex INV-000002


async def test_unknown_ids_are_errors_that_say_what_to_do(client, clock) -> None:
    await tell(client, clock)
    cases = {"togai://invoices/inv_nope": "invoice 'inv_nope' does not exist; list_invoices shows the ids",
             "togai://invoices/inv_nope.json": "invoice 'inv_nope' does not exist",
             "togai://accounts/nobody": "account 'nobody' does not exist (neither an id nor an alias)",
             "togai://price-plans/pp_nope": "price plan 'pp_nope' does not exist",
             "togai://usage-meters/um_nope": "usage meter 'um_nope' does not exist"}
    for uri, message in cases.items():
        with pytest.raises(MCPError) as raised:
            await client.read_resource(uri)
        assert message in raised.value.error.message and uri in raised.value.error.message


async def test_an_id_with_a_colon_is_percent_encoded_in_its_uri(client) -> None:
    await call(client, "create_customer", id="team:x", name="Team X", account={"id": "team:x.main", "name": "Team X"})
    listed = [str(r.uri) for r in (await client.list_resources()).resources]
    assert "togai://accounts/team%3Ax.main" in listed
    _, text = await read(client, "togai://accounts/team%3Ax.main")
    assert json.loads(text)["id"] == "team:x.main"


async def test_resources_list_names_the_newest_of_each_kind_bounded(client, clock) -> None:
    story = await tell(client, clock)
    listed = {str(r.uri): r for r in (await client.list_resources()).resources}
    assert listed["togai://accounts/acme-main"].title == "Acme main (acme-main)"
    assert listed[f"togai://invoices/{story.acme_january}"].title == f"Invoice INV-000001 ({story.acme_january})"
    assert listed[f"togai://invoices/{story.acme_january}"].mime_type == "text/markdown"
    assert listed[f"togai://invoices/{story.acme_february}"].description == (
        "account acme-main, period 2026-02-01 to 2026-03-01")
    assert listed[f"togai://price-plans/{story.growth}"].title == f"Growth ({story.growth})"
    assert "togai://usage-meters/um_tokens" in listed
    for i in range(25):
        await call(client, "create_customer", id=f"bulk-{i:02d}", name=f"Bulk {i}",
                   account={"id": f"bulk-{i:02d}-main", "name": f"Bulk {i}"})
    accounts = [uri for uri in (str(r.uri) for r in (await client.list_resources()).resources)
                if uri.startswith("togai://accounts/")]
    # 27 accounts exist; the 20 newest are listed, newest first
    assert accounts == [f"togai://accounts/bulk-{i:02d}-main" for i in range(24, 4, -1)]
    for uri in listed:
        await client.read_resource(uri)  # every listed resource reads


async def test_a_crash_reading_a_resource_is_answered_with_a_ref_the_log_has(client, clock, monkeypatch,
                                                                             caplog) -> None:
    # as a tool's crash: the answer names a ref and no internals, the server log has the traceback under it
    story = await tell(client, clock)

    def broken(*_: object) -> str:
        raise RuntimeError("the renderer broke")

    monkeypatch.setattr(resources, "invoice_markdown", broken)
    uri = f"togai://invoices/{story.acme_january}"
    with caplog.at_level(logging.ERROR, logger="togai_engine.resources"), pytest.raises(MCPError) as raised:
        await client.read_resource(uri)
    message = raised.value.error.message
    found = re.search(r"reading '([^']+)' failed because of an internal error \(ref ([0-9a-f]{12})\)", message)
    assert found and found.group(1) == uri, message
    assert "renderer broke" not in message
    [logged] = [r for r in caplog.records if found.group(2) in r.getMessage()]
    assert logged.exc_info is not None and "the renderer broke" in str(logged.exc_info[1])
    # the other resources read as before
    assert '"name": "Growth"' in (await read(client, f"togai://price-plans/{story.growth}"))[1]
