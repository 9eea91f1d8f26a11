"""Over stdio (the `togai-engine serve` a desktop client or the Inspector starts), in both protocol eras:
prompts, resource templates, a resource read, a completion and a subscription's notification."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp_types import ResourceTemplateReference

from conftest import hosted
from helpers import call
from surface_story import UpdatedUris

BIN = Path(sys.executable).parent / "togai-engine"


def server_params(database_url: str) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
    env |= {"TOGAI_DATABASE_URL": database_url, "TOGAI_BILLING_INTERVAL_SECONDS": "0"}
    return StdioServerParameters(command=str(BIN), args=["serve", "--transport", "stdio"], env=env)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_prompts_resources_completion_and_updates_over_stdio(database_url, db, mode) -> None:
    updates = UpdatedUris()

    async with hosted(Client(server_params(database_url), mode=mode, message_handler=updates)) as client:
        assert client.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        assert len((await client.list_prompts()).prompts) == 6
        assert len((await client.list_resource_templates()).resource_templates) == 5
        await call(client, "create_customer", id="acme", name="Acme", account={"id": "acme-main", "name": "Acme"})
        account = (await client.read_resource("togai://accounts/acme-main")).contents[0]
        assert account.mime_type == "application/json" and '"id": "acme-main"' in account.text
        completion = await client.complete(ResourceTemplateReference(uri="togai://accounts/{accountId}"),
                                           {"name": "accountId", "value": "ac"})
        assert completion.completion.values == ["acme-main"]
        # a credit grant changes the account's wallet: its subscriber hears of it
        if mode == "auto":
            async with client.listen(resource_subscriptions=["togai://accounts/acme-main"]) as subscription:
                await call(client, "grant_credit", accountId="acme-main", amount="1.00", idempotencyKey="g")
                with anyio.fail_after(10):
                    assert (await subscription.__anext__()).uri == "togai://accounts/acme-main"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await client.subscribe_resource("togai://accounts/acme-main")
            await call(client, "grant_credit", accountId="acme-main", amount="1.00", idempotencyKey="g")
            with anyio.fail_after(10):
                await updates.arrived.wait()
            assert updates.uris == ["togai://accounts/acme-main"]
