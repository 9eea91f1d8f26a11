"""MCP Apps views through a real MCP client: the tools name their `ui://` view in `_meta.ui.resourceUri`,
resources/read serves each as a self-contained `text/html;profile=mcp-app` page, the server advertises the
extension, and a client that does not know the extension gets the very same tool result."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.client import advertise

from conftest import hosted
from mcp_server.server import build_server
from view_story import billing_story

APPS = "io.modelcontextprotocol/ui"
APP_MIME = "text/html;profile=mcp-app"
VIEWS = {"get_invoice": "ui://togai/invoice", "get_metrics": "ui://togai/metrics",
         "simulate_price_plan": "ui://togai/lab-compare"}
BIN = Path(sys.executable).parent / "togai-engine"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an identifier for createElementNS, never fetched


def assert_self_contained(uri: str, html: str) -> None:
    assert html.startswith("<!DOCTYPE html>"), f"{uri} is not an HTML5 document"
    assert "@include" not in html, f"{uri} still has an unfilled include marker"
    assert "TogaiView.start(" in html and "ui/initialize" in html, f"{uri} lacks the bridge script"
    loads = re.findall(r"""(?:src|href|action|srcset)\s*=\s*["']?\s*(?:https?:)?//""", html, re.IGNORECASE)
    assert loads == [], f"{uri} loads from the network: {loads}"
    assert re.findall(r"https?://", html.replace(SVG_NAMESPACE, "")) == [], f"{uri} names a URL"
    for network in ("<link", "@import", "url(", "fetch(", "XMLHttpRequest", "WebSocket", "EventSource", "<iframe"):
        assert network not in html, f"{uri} contains {network!r}"


async def test_the_three_tools_declare_their_view_and_the_server_advertises_the_extension(client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert {name: (tool.meta or {}).get("ui") for name, tool in tools.items() if tool.meta} == {
        name: {"resourceUri": uri} for name, uri in VIEWS.items()}
    assert APPS in (client.server_capabilities.extensions or {})


async def test_each_view_is_served_as_a_self_contained_mcp_app_page(client) -> None:
    listed = {str(r.uri): r for r in (await client.list_resources()).resources if str(r.uri).startswith("ui://")}
    assert set(listed) == set(VIEWS.values())
    for uri in VIEWS.values():
        assert listed[uri].mime_type == APP_MIME and listed[uri].title, listed[uri]
        read = await client.read_resource(uri)
        (content,) = read.contents
        assert (str(content.uri), content.mime_type) == (uri, APP_MIME)
        assert (content.meta or {}).get("ui") == {"prefersBorder": True}  # no csp: the host's no-network default
        assert_self_contained(uri, content.text)


async def test_a_client_without_the_extension_gets_the_same_result_as_one_with_it(db, clock) -> None:
    """The view is only a hint to hosts: the result a plain client gets is the one a host draws."""
    server = build_server(db, clock=clock)
    async with hosted(Client(server, raise_exceptions=False)) as plain:
        story = await billing_story(plain, clock)
        calls: list[tuple[str, dict[str, Any]]] = [
            ("get_invoice", {"invoiceId": story.february["id"]}),
            ("get_metrics", story.metrics_arguments),
            ("simulate_price_plan", story.simulation_arguments)]
        plain_results = [await plain.call_tool(name, arguments) for name, arguments in calls]
    async with hosted(Client(server, raise_exceptions=False,
                             extensions=[advertise(APPS, {"mimeTypes": [APP_MIME]})])) as host:
        host_results = [await host.call_tool(name, arguments) for name, arguments in calls]
    for (name, _), plain_result, host_result in zip(calls, plain_results, host_results, strict=True):
        assert not plain_result.is_error and plain_result.structured_content, name
        assert plain_result.structured_content == host_result.structured_content, name
        assert [c.text for c in plain_result.content] == [c.text for c in host_result.content], name
    assert plain_results[0].structured_content["amountDue"] == "125.00"


async def test_views_over_stdio_as_a_user_runs_the_server(database_url, db) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")} | {
        "TOGAI_DATABASE_URL": database_url, "TOGAI_BILLING_INTERVAL_SECONDS": "0"}
    params = StdioServerParameters(command=str(BIN), args=["serve", "--transport", "stdio"], env=env)
    async with hosted(Client(params)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert tools["get_invoice"].meta == {"ui": {"resourceUri": VIEWS["get_invoice"]}}
        (content,) = (await client.read_resource(VIEWS["get_invoice"])).contents
        assert content.mime_type == APP_MIME
        assert_self_contained(VIEWS["get_invoice"], content.text)
