"""Calling the engine's tools for a scenario, as any MCP client does, with the file's two conveniences:
a plan named by its name where a pricePlanId goes, and an invoice named ACCOUNT/PERIOD where an invoiceId goes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mcp import Client

from mcp_server.scenarios.errors import labels
from mcp_server.scenarios.times import invoice_name, ordinals, parse, parse_invoice_name
from togai_engine.errors import InvalidInput

PAGE = 100


class ScenarioFailed(Exception):
    """A step could not be carried out (a tool error it did not expect): the scenario stops and fails."""

    def __init__(self, path: Sequence[str | int], message: str) -> None:
        super().__init__(f"{' › '.join(labels(path))}: {message}")
        self.path = tuple(path)
        self.message = message


class ToolFailed(ScenarioFailed):
    def __init__(self, path: Sequence[str | int], tool: str, text: str) -> None:
        super().__init__(path, f"{tool} failed: {text}")
        self.text = text


class Calls:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.plans: dict[str, str] = {}  # plan name -> id, of the plans the scenario created

    async def call(self, tool: str, arguments: dict[str, Any], path: Sequence[str | int]) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        if result.is_error:
            text = result.content[0].text if result.content else "no message"
            raise ToolFailed(path, tool, text)
        content = result.structured_content or {}
        if tool == "create_price_plan" and "name" in content:
            self.plans[content["name"]] = content["id"]
        return content

    async def invoices(self, account: str, path: Sequence[str | int]) -> list[dict[str, Any]]:
        """Every invoice of the account (list_invoices' summaries), oldest period first and, within a period, in
        the order issued (list_invoices' order reversed: newest period first, the one created last first)."""
        found: list[dict[str, Any]] = []
        token = None
        while True:
            arguments: dict[str, Any] = {"accountId": account, "pageSize": PAGE}
            if token:
                arguments["nextToken"] = token
            page = await self.call("list_invoices", arguments, path)
            found += page["data"]
            token = page.get("nextToken")
            if not token:
                return found[::-1]

    async def resolved(self, value: Any, path: Sequence[str | int]) -> Any:
        """`value` (a tool's arguments) with plan names and ACCOUNT/PERIOD invoice names replaced by ids."""
        if isinstance(value, list):
            return [await self.resolved(item, [*path, i]) for i, item in enumerate(value)]
        if not isinstance(value, dict):
            return value
        resolved = {}
        for key, item in value.items():
            if key == "pricePlanId" and isinstance(item, str) and item in self.plans:
                item = self.plans[item]
            elif key == "invoiceId" and isinstance(item, str) and "/" in item:
                item = await self._invoice_id(item, [*path, key])
            else:
                item = await self.resolved(item, [*path, key])
            resolved[key] = item
        return resolved

    async def _invoice_id(self, name: str, path: Sequence[str | int]) -> str:
        account, _, period = name.rpartition("/")
        try:
            wanted = parse_invoice_name(period, "")
        except InvalidInput:
            raise ScenarioFailed(path, f"{name!r}: name an invoice as ACCOUNT/PERIOD, the period by its start "
                                       "date (acme/2026-01-01) or start instant, and an advance invoice as "
                                       "acme/2026-01-01 advance") from None
        invoices = await self.invoices(account, path)
        names = names_of(invoices)
        for invoice, name in zip(invoices, names, strict=True):
            if name == wanted:
                return str(invoice["id"])
        periods = ", ".join(invoice_name(*name) for name in names) or "none"
        raise ScenarioFailed(path, f"{account} has no invoice for the period {period} at this step (its periods: "
                                   f"{periods})")


def names_of(invoices: Sequence[dict[str, Any]]) -> list[tuple[datetime, bool, int]]:
    """(start, advance, ordinal) of each of an account's invoices, given in the order `Calls.invoices` lists them."""
    keys = [(parse(i["startDate"], "startDate"), i.get("invoiceType") == "STANDARD_ADVANCED") for i in invoices]
    return [(*key, place) for key, place in zip(keys, ordinals(keys), strict=True)]
