"""Inline views (MCP Apps, extension `io.modelcontextprotocol/ui`): HTML that a host renders a tool's
result with.

A tool names its view in `_meta.ui.resourceUri` (registry.tool(view=...)); the view is a `ui://` resource
served as `text/html;profile=mcp-app` through resources/read, and receives the tool's result from the host
over postMessage (ui/notifications/tool-result). Each page is self-contained: its CSS and JavaScript are
inlined here from the files beside this module, and it loads nothing, so the host's default CSP (no
network) is all it needs. Clients without the extension ignore the `_meta` and get the same result.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.resources import files

from mcp.server.apps import Apps

INVOICE_VIEW = "ui://togai/invoice"
METRICS_VIEW = "ui://togai/metrics"
LAB_VIEW = "ui://togai/lab-compare"

STYLE_MARKER = "/* @include base.css */"
SCRIPT_MARKER = "// @include bridge.js"


@dataclass(frozen=True)
class View:
    uri: str
    file: str
    name: str
    title: str
    description: str


VIEWS = (
    View(INVOICE_VIEW, "invoice.html", "invoice", "Invoice",
         "get_invoice's result as a printable invoice: period, lines with their tiers, late usage, credits, "
         "credit notes and totals; marked SANDBOX when a sandbox server made it"),
    View(METRICS_VIEW, "metrics.html", "metrics", "Metrics chart",
         "get_metrics' series as line charts, one per query, with the values behind them"),
    View(LAB_VIEW, "lab.html", "lab-compare", "Pricing lab comparison",
         "simulate_price_plan's comparison: actual vs candidate totals as bars, per account and period as a table"),
)


@functools.cache
def view_html(file: str) -> str:
    """The page with the shared stylesheet and script inlined."""
    folder = files(__package__)
    page = folder.joinpath(file).read_text(encoding="utf-8")
    for marker, part in ((STYLE_MARKER, "base.css"), (SCRIPT_MARKER, "bridge.js")):
        if marker not in page:
            raise ValueError(f"views/{file} lacks {marker!r}, where views/{part} goes")
        page = page.replace(marker, folder.joinpath(part).read_text(encoding="utf-8"))
    return page


def views_extension() -> Apps:
    """The MCP Apps extension serving every view; pass it to the server's `extensions`."""
    apps = Apps()
    for view in VIEWS:
        apps.add_html_resource(view.uri, view_html(view.file), name=view.name, title=view.title,
                               description=view.description, prefers_border=True)
    return apps
