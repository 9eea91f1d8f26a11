"""Resources, completions and subscriptions over streamable HTTP respect API-key scopes as the tools do."""

from __future__ import annotations

import sys
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import SubscriptionLost
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference

from conftest import free_port, hosted
from mcp_server import resource_updates
from mcp_server.http_auth import auth_options
from mcp_server.serve import serve_http
from mcp_server.server import build_server
from surface_story import UpdatedUris, tell
from togai_engine.apikeys.service import create_key, live_key_ids, revoke_key
from togai_engine.settings import Settings

BIN = Path(sys.executable).parent / "togai-engine"


async def new_key(db, *scopes: str) -> str:
    async with db.unit_of_work() as session:
        return (await create_key(session, "test", list(scopes), datetime.now(UTC))).key


def keyed_with(url: str, key: str, **options: Any) -> Client:
    return Client(streamable_http_client(url, http_client=httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {key}"}, timeout=30)), **options)


async def keyed(db, url: str, *scopes: str) -> Client:
    return keyed_with(url, await new_key(db, *scopes))


async def refused(coroutine, scope: str) -> str:
    with pytest.raises(MCPError) as raised:
        await coroutine
    message = raised.value.error.message
    assert f"this API key lacks scope {scope!r}" in message, message
    return message


async def test_resources_completions_and_subscriptions_follow_the_key_scopes(http_server, db, client, clock) -> None:
    story = await tell(client, clock)  # in process, on the same database; the HTTP server runs on today's clock
    invoice = f"togai://invoices/{story.acme_january}"
    async with hosted(await keyed(db, http_server, "plans:read")) as planner:
        message = await refused(planner.read_resource(invoice), "billing:read")
        assert f"required to read '{invoice}' (as by get_invoice)" in message
        await refused(planner.read_resource("togai://accounts/acme-eu"), "billing:read")
        await refused(planner.read_resource("togai://usage-meters/um_tokens"), "meters:read")
        plan = (await planner.read_resource(f"togai://price-plans/{story.growth}")).contents[0].text
        assert '"name": "Growth"' in plan
        listed = {str(r.uri) for r in (await planner.list_resources()).resources if str(r.uri).startswith("togai:")}
        assert listed == {f"togai://price-plans/{story.growth}", f"togai://price-plans/{story.starter}"}
        ref = PromptReference(name="audit_overage_claim")
        assert (await planner.complete(ref, {"name": "invoiceId", "value": ""})).completion.values == []
        prices = PromptReference(name="design_price_change")
        assert (await planner.complete(prices, {"name": "pricePlanId", "value": "pp_"})).completion.values == sorted(
            [story.growth, story.starter])
        await refused(planner.listen(resource_subscriptions=[invoice]).__aenter__(), "billing:read")
        # the features of an account's plans are what get_entitlements shows (entitlements:read): under plans:read
        # the context's account is not looked up, so the answer does not say whether it exists or what it is on
        rollout = PromptReference(name="check_feature_rollout")
        for account in ("acme-main", "globex-main", "nobody"):
            completed = await planner.complete(rollout, {"name": "featureId", "value": ""}, {"accountId": account})
            assert completed.completion.values == ["beta_search"], account
    async with hosted(await keyed(db, http_server, "entitlements:read")) as checker:
        for account, features in (("acme-main", ["beta_search"]), ("globex-main", []), ("nobody", [])):
            completed = await checker.complete(rollout, {"name": "featureId", "value": ""}, {"accountId": account})
            assert completed.completion.values == features, account

    async with hosted(await keyed(db, http_server, "billing:read")) as biller, \
            hosted(await keyed(db, http_server, "events:write")) as sender:
        document = (await biller.read_resource(invoice)).contents[0].text
        assert "| Status | DUE |" in document and "| **Total** | 26.00 |" in document
        await refused(biller.read_resource(f"togai://price-plans/{story.growth}"), "plans:read")
        # the account's open DRAFT today (the server bills on its own clock), watched over HTTP
        drafts = [i for i in (await biller.call_tool("list_invoices", {"accountId": "acme-main", "status": "DRAFT"}))
                  .structured_content["data"]]
        today = f"togai://invoices/{drafts[0]['id']}"
        async with biller.listen(resource_subscriptions=[today, "togai://accounts/acme-main"]) as subscription:
            now = datetime.now(UTC).isoformat()
            sent = await sender.call_tool("ingest_event", {"event": {
                "id": "http-1", "schemaName": "llm", "accountId": "acme-eu", "timestamp": now,
                "attributes": {"tokens": "7"}}})
            assert sent.structured_content["status"] == "ACCEPTED", sent
            uris = set()
            with anyio.fail_after(10):
                while len(uris) < 2:
                    uris.add((await subscription.__anext__()).uri)
            assert uris == {today, "togai://accounts/acme-main"}


async def test_a_revoked_key_hears_no_more_updates_on_either_wire(http_server, db, client, clock) -> None:
    # The key is checked when each request arrives; a listen stream (2026) or the standalone stream of a 2025
    # subscription outlives that request, so an update reaches it only if its key is still live when sent.
    await tell(client, clock)
    account = "togai://accounts/acme-main"
    updates = UpdatedUris()

    async def usage(sender: Client, event_id: str) -> None:
        sent = await sender.call_tool("ingest_event", {"event": {
            "id": event_id, "schemaName": "llm", "accountId": "acme-eu", "timestamp": datetime.now(UTC).isoformat(),
            "attributes": {"tokens": "1"}}})
        assert sent.structured_content["status"] == "ACCEPTED", sent

    listener_key, legacy_key = await new_key(db, "billing:read"), await new_key(db, "billing:read")
    async with hosted(keyed_with(http_server, listener_key)) as listener, \
            hosted(keyed_with(http_server, legacy_key, mode="legacy", message_handler=updates)) as legacy, \
            hosted(await keyed(db, http_server, "events:write")) as sender:
        with warnings.catch_warnings():  # resources/subscribe is the 2025 way, deprecated by the SDK for 2026
            warnings.simplefilter("ignore")
            await legacy.subscribe_resource(account)
        async with listener.listen(resource_subscriptions=[account]) as subscription:
            await usage(sender, "live-1")  # both keys live: both hear it
            with anyio.fail_after(10):
                assert (await subscription.__anext__()).uri == account
                await updates.arrived.wait()
            assert updates.uris == [account]
            async with db.unit_of_work() as session:
                for key in (listener_key, legacy_key):
                    await revoke_key(session, key.split("_")[1], datetime.now(UTC))
            await usage(sender, "revoked-1")
            # the listen stream ends, saying why; nothing more reaches the 2025 connection
            with anyio.fail_after(10), pytest.raises(SubscriptionLost) as lost:
                await subscription.__anext__()
            assert "API key was revoked" in str(lost.value.__cause__)
            await anyio.sleep(0.5)
            assert updates.uris == [account]


@asynccontextmanager
async def served_here(db) -> AsyncIterator[str]:
    """`togai-engine serve --transport http` in this process (the http_server fixture's is another), so a test can
    hold the server at a chosen point of its work."""
    port = free_port()
    server = build_server(db, **auth_options(db, "127.0.0.1", port))
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve_http, server, Settings(), "127.0.0.1", port)
        for _ in range(100):
            try:
                await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                break
            except OSError:
                await anyio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
        tg.cancel_scope.cancel()


async def test_a_stream_opened_while_keys_are_looked_up_is_not_taken_for_revoked(db, client, clock,
                                                                                monkeypatch) -> None:
    # Before notifying, the keys of the open streams are looked up again. A stream that opens during that lookup
    # (its key checked live as its request arrived) was not among the keys asked about: that is no sign of a
    # revoked key, and the stream must stay open and hear the update.
    await tell(client, clock)
    account = "togai://accounts/acme-main"
    looked_up, go_on = anyio.Event(), anyio.Event()

    async def held_lookup(session: Any, key_ids: set[str]) -> set[str]:
        live = await live_key_ids(session, key_ids)
        looked_up.set()
        await go_on.wait()
        return live

    monkeypatch.setattr(resource_updates, "live_key_ids", held_lookup)
    async with served_here(db) as url:
        first_key, second_key = await new_key(db, "billing:read"), await new_key(db, "billing:read")
        async with hosted(keyed_with(url, first_key)) as first, hosted(keyed_with(url, second_key)) as second, \
                hosted(await keyed(db, url, "events:write")) as sender, anyio.create_task_group() as tg, \
                first.listen(resource_subscriptions=[account]) as early:

            async def usage() -> None:
                sent = await sender.call_tool("ingest_event", {"event": {
                    "id": "during-lookup", "schemaName": "llm", "accountId": "acme-eu",
                    "timestamp": datetime.now(UTC).isoformat(), "attributes": {"tokens": "1"}}})
                assert sent.structured_content["status"] == "ACCEPTED", sent

            tg.start_soon(usage)
            with anyio.fail_after(10):
                await looked_up.wait()
            async with second.listen(resource_subscriptions=[account]) as late:
                go_on.set()
                with anyio.fail_after(10):
                    assert (await early.__anext__()).uri == account
                    assert (await late.__anext__()).uri == account  # not ended as if its key were revoked


async def test_the_pricing_lab_shows_account_data_only_with_billing_read(http_server, db, client, clock) -> None:
    # A quote for given usage is plans:read; an account's own deal and its invoice totals are billing:read data
    # (get_invoice, get_account), so the lab shows them only to a key holding billing:read too.
    story = await tell(client, clock)
    usage = {"um_tokens": "220"}
    async with hosted(await keyed(db, http_server, "plans:read")) as planner:
        assert "simulate_price_plan" not in {t.name for t in (await planner.list_tools()).tools}
        quote = await planner.call_tool("calculate_revenue", {"pricePlanId": story.growth, "usage": usage})
        # 100 x 0.10 + 120 x 0.05 = 16.00, plus the 10.00 fee
        assert quote.structured_content["total"] == "26.00", quote
        for account in ("acme-main", "nobody"):  # refused alike: the answer does not say whether it exists
            refused = await planner.call_tool("calculate_revenue", {"accountId": account, "usage": usage})
            assert refused.is_error
            assert "lacks scope 'billing:read', required by calculate_revenue with accountId" in refused.content[0].text
        refused = await planner.call_tool("simulate_price_plan", {"candidates": [story.growth]})
        assert refused.is_error
        assert "lacks scope 'billing:read', required by simulate_price_plan" in refused.content[0].text
    async with hosted(await keyed(db, http_server, "plans:read", "billing:read")) as analyst:
        assert "simulate_price_plan" in {t.name for t in (await analyst.list_tools()).tools}
        quote = await analyst.call_tool("calculate_revenue", {"accountId": "acme-main", "usage": usage})
        assert quote.structured_content["total"] == "26.00", quote
        simulated = await analyst.call_tool("simulate_price_plan", {"candidates": [story.growth],
                                                                    "accountIds": ["acme-main"], "lastCycles": 1})
        assert not simulated.is_error, simulated
