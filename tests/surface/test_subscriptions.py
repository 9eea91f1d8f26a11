"""Resource subscriptions through real MCP clients: new usage of an account notifies the subscribers of its
DRAFT invoice and of the account (by id or alias), and nobody else; on the 2026-07-28 wire
(subscriptions/listen) and on the 2025 one (resources/subscribe)."""

from __future__ import annotations

import warnings
from decimal import Decimal
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from conftest import hosted
from helpers import call
from mcp_server.resource_updates import requested_uris
from mcp_server.server import build_server
from surface_story import UpdatedUris, tell

QUIET = 0.5  # seconds without a notification that show none was sent (a sent one arrives in milliseconds)


async def feb_event(client: Any, event_id: str, account: str, tokens: str = "5") -> dict[str, Any]:
    return await call(client, "ingest_event", event={"id": event_id, "schemaName": "llm", "accountId": account,
                                                     "timestamp": "2026-02-03T10:00:00Z",
                                                     "attributes": {"tokens": tokens}})


async def next_uris(subscription: Any, count: int, timeout: float = 5) -> set[str]:
    uris = set()
    with anyio.fail_after(timeout):
        while len(uris) < count:
            uris.add((await subscription.__anext__()).uri)
    return uris


async def nothing_arrives(subscription: Any) -> None:
    with anyio.move_on_after(QUIET) as waited:
        event = await subscription.__anext__()
        raise AssertionError(f"unexpected notification {event}")
    assert waited.cancelled_caught


async def test_new_usage_notifies_the_listeners_of_the_draft_and_the_account(client, clock) -> None:
    story = await tell(client, clock)
    draft = f"togai://invoices/{story.acme_february}"
    watched = [draft, f"{draft}.json", "togai://accounts/acme-eu"]
    async with client.listen(resource_subscriptions=watched) as subscription:
        assert set(subscription.honored.resource_subscriptions or []) == set(watched)
        await feb_event(client, "globex-feb-1", "globex-main")  # another account's usage
        await nothing_arrives(subscription)
        await feb_event(client, "acme-feb-1", "acme-main")
        assert await next_uris(subscription, 3) == set(watched)
        # the same event again is a DUPLICATE: nothing changed, nothing is sent
        assert (await feb_event(client, "acme-feb-1", "acme-main"))["status"] == "DUPLICATE"
        await nothing_arrives(subscription)
        # a batch: one globex event and one acme event (by alias); a rejected event changes nothing
        result = await call(client, "ingest_batch_events", events=[
            {"id": "globex-feb-2", "schemaName": "llm", "accountId": "globex-main",
             "timestamp": "2026-02-03T11:00:00Z", "attributes": {"tokens": "1"}},
            {"id": "acme-feb-2", "schemaName": "llm", "accountId": "acme-eu", "timestamp": "2026-02-03T11:00:00Z",
             "attributes": {"tokens": "2"}}])
        assert result["accepted"] == 2
        assert await next_uris(subscription, 3) == set(watched)
        rejected = await call(client, "ingest_batch_events", events=[
            {"id": "acme-bad", "schemaName": "llm", "accountId": "acme-eu", "timestamp": "not a time"}])
        assert rejected["rejected"] == 1
        await nothing_arrives(subscription)
        # voiding usage changes the DRAFT too
        await call(client, "void_event", accountId="acme-main", eventId="acme-feb-2", reason="sent by mistake")
        assert await next_uris(subscription, 3) == set(watched)
    # what the notification announced is there: 5 tokens more, 0.10 each = 0.50 on top of the 10.00 fee
    text = (await client.read_resource(draft)).contents[0].text
    assert "| **Total** | 10.50 |" in text


async def test_usage_consumed_by_an_entitlement_check_notifies_like_ingested_usage(client, clock) -> None:
    story = await tell(client, clock)
    draft = f"togai://invoices/{story.acme_february}"
    watched = [draft, f"{draft}.json", "togai://accounts/acme-main"]
    consume = {"id": "search-1", "schemaName": "llm", "attributes": {"tokens": "5"}}
    async with client.listen(resource_subscriptions=watched) as subscription:
        # a check alone records nothing
        assert (await call(client, "check_entitlement", accountId="acme-eu", featureId="beta_search",
                           quantity="5"))["entitled"] is True
        await nothing_arrives(subscription)
        # consume records the 5 tokens on the February DRAFT, as ingest_event would
        consumed = await call(client, "check_entitlement", accountId="acme-eu", featureId="beta_search",
                              quantity="5", consume=consume)
        assert (consumed["consumed"], consumed["eventStatus"]) == (True, "ACCEPTED")
        assert await next_uris(subscription, 3) == set(watched)
        # the retry is a DUPLICATE: nothing changed, nothing is sent
        again = await call(client, "check_entitlement", accountId="acme-eu", featureId="beta_search", quantity="5",
                           consume=consume)
        assert again["eventStatus"] == "DUPLICATE"
        await nothing_arrives(subscription)
    # 5 tokens at 0.10 = 0.50 on top of the 10.00 fee
    assert "| **Total** | 10.50 |" in (await client.read_resource(draft)).contents[0].text


async def test_listening_only_to_another_accounts_draft_hears_nothing(client, clock) -> None:
    story = await tell(client, clock)
    async with client.listen(resource_subscriptions=[f"togai://invoices/{story.globex_february}"]) as subscription:
        await feb_event(client, "acme-feb-1", "acme-main")
        await nothing_arrives(subscription)
        await feb_event(client, "globex-feb-1", "globex-main")
        assert await next_uris(subscription, 1) == {f"togai://invoices/{story.globex_february}"}


async def test_a_credit_grant_notifies_the_account_not_its_draft(client, clock) -> None:
    story = await tell(client, clock)
    account = "togai://accounts/acme-main"
    async with client.listen(resource_subscriptions=[account, f"togai://invoices/{story.acme_february}"]) as sub:
        await call(client, "grant_credit", accountId="acme-main", amount="5.00", idempotencyKey="g1")
        assert await next_uris(sub, 1) == {account}
        await nothing_arrives(sub)


async def test_a_credit_note_and_a_status_change_notify_the_account_and_that_invoice(client, clock) -> None:
    # both change what the account shows (outstanding, wallet) and the invoice they touch, not the open DRAFT
    story = await tell(client, clock)
    account, january = "togai://accounts/acme-main", f"togai://invoices/{story.acme_january}"
    watched = [account, january, f"{january}.json", f"togai://invoices/{story.acme_february}"]
    async with client.listen(resource_subscriptions=watched) as subscription:
        note = {"invoiceId": story.acme_january, "reason": "PRODUCT_UNSATISFACTORY", "amount": "1.00",
                "idempotencyKey": "cn-1"}
        await call(client, "create_credit_note", **note)
        assert await next_uris(subscription, 3) == {account, january, f"{january}.json"}
        await nothing_arrives(subscription)
        assert (await call(client, "create_credit_note", **note))["replayed"] is True  # changed nothing: no notice
        await nothing_arrives(subscription)
        await call(client, "update_invoice_status", invoiceId=story.acme_january, status="PAID")
        assert await next_uris(subscription, 3) == {account, january, f"{january}.json"}
        await nothing_arrives(subscription)


async def test_a_seat_change_notifies_the_account_and_its_draft(client) -> None:
    plan = await call(client, "create_price_plan", name="Seats", pricingCycleConfig={"interval": "MONTHLY"},
                      rateCards={"licenseRateCards": [{"id": "seats", "ratePlan": {"pricingModel": "TIERED", "slabs": [
                          {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]}, "rateValues": [
                          {"currency": "USD", "slabRates": [{"order": 1, "rate": "10"}]}]}]})
    await call(client, "create_customer", id="seated", name="Seated", account={
        "id": "seated", "name": "Seated", "pricePlanId": plan["id"]})
    draft = f"togai://invoices/{(await call(client, 'get_invoice', accountId='seated'))['id']}"
    async with client.listen(resource_subscriptions=["togai://accounts/seated", draft]) as subscription:
        await call(client, "update_license", accountId="seated", licenseId="seats", quantity=3)
        assert await next_uris(subscription, 2) == {"togai://accounts/seated", draft}
    assert "| **Total** | 30.00 |" in (await client.read_resource(draft)).contents[0].text  # 3 seats × 10


async def test_finalizing_a_plan_version_notifies_the_accounts_it_moves(client, clock) -> None:
    # version 2 of Growth doubles the token rates; IMMEDIATE moves acme (on Growth) now, re-pricing its open
    # February like a plan change; globex (on Starter) is not on the plan and hears nothing
    story = await tell(client, clock)
    growth = await call(client, "get_price_plan", pricePlanId=story.growth)
    cards = growth["rateCards"]
    for rate in cards["usageRateCards"][0]["rateValues"][0]["slabRates"]:
        rate["rate"] = str(2 * Decimal(rate["rate"]))  # 0.10 -> 0.20, 0.05 -> 0.10
    await call(client, "update_price_plan", pricePlanId=story.growth, rateCards=cards)
    watched = ["togai://accounts/acme-main", "togai://accounts/acme-eu", "togai://accounts/globex-main"]
    async with client.listen(resource_subscriptions=watched) as subscription:
        moved = await call(client, "finalize_price_plan", pricePlanId=story.growth, migrationMode="IMMEDIATE")
        assert [m["accountId"] for m in moved["migratedAccounts"]] == ["acme-main"]
        assert await next_uris(subscription, 2) == {"togai://accounts/acme-main", "togai://accounts/acme-eu"}
        await nothing_arrives(subscription)


async def test_an_account_update_under_an_alias_it_drops_notifies_the_account(client, clock) -> None:
    # the call names acme by the alias it renames: the account (and the URI of the alias, which now names
    # nothing) changed all the same
    await tell(client, clock)
    watched = ["togai://accounts/acme-main", "togai://accounts/acme-eu"]
    async with client.listen(resource_subscriptions=watched) as subscription:
        await call(client, "update_account", accountId="acme-eu", aliases=["acme-de"])
        assert await next_uris(subscription, 2) == set(watched)


async def test_listening_to_something_that_is_not_a_resource_is_refused(client) -> None:
    with pytest.raises(MCPError) as raised:
        async with client.listen(resource_subscriptions=["togai://nothing/here"]):
            pass
    assert "'togai://nothing/here' is not a resource of this server" in raised.value.error.message


async def test_a_2025_client_subscribes_and_is_notified(db, clock) -> None:
    updates = UpdatedUris()

    server = build_server(db, clock=clock)
    async with hosted(Client(server, mode="legacy", message_handler=updates)) as client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_capabilities.resources.subscribe is True
        story = await tell(client, clock)
        draft = f"togai://invoices/{story.acme_february}"
        with warnings.catch_warnings():  # resources/subscribe is the 2025 way, deprecated by the SDK for 2026
            warnings.simplefilter("ignore")
            await client.subscribe_resource(draft)
            await feb_event(client, "globex-feb-1", "globex-main")
            await anyio.sleep(QUIET)
            assert updates.uris == []
            await feb_event(client, "acme-feb-1", "acme-eu")
            with anyio.fail_after(5):
                await updates.arrived.wait()
            assert updates.uris == [draft]
            await client.unsubscribe_resource(draft)
            await feb_event(client, "acme-feb-2", "acme-main")
            await anyio.sleep(QUIET)
            assert updates.uris == [draft]
            with pytest.raises(MCPError) as raised:
                await client.subscribe_resource("togai://nothing/here")
            assert "is not a resource of this server" in raised.value.error.message


def test_a_listen_request_is_read_as_the_sdk_reads_it_under_either_spelling() -> None:
    # The SDK honours snake_case too: a URI read under one spelling only would skip the scope check.
    uris = ["togai://accounts/acme-main"]
    assert requested_uris({"notifications": {"resourceSubscriptions": uris}}) == uris
    assert requested_uris({"notifications": {"resource_subscriptions": uris}}) == uris
    with pytest.raises(MCPError):
        requested_uris({"notifications": "everything"})
