"""The views in a real headless browser (Debian's chromium, driven by Playwright): a small host page
plays the MCP Apps host as the spec describes it (iframe sandbox, the spec's default CSP, ui/initialize,
ui/notifications/tool-input and tool-result, size-changed) and hands each view the result of a real tool
call from view_story; the tests assert what the page shows and keep a screenshot of each view in
tests/artifacts/views/ (or $TOGAI_VIEW_ARTIFACTS).

Without chromium or playwright the tests skip, saying what to install, except in CI (CI=true), where
they fail: .ci/run installs chromium.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from conftest import hosted
from helpers import at, call, tokens_meter
from mcp_server.server import build_server
from mcp_server.views import INVOICE_VIEW, LAB_VIEW, METRICS_VIEW, VIEWS, view_html
from togai_engine.sandbox.service import start as start_sandbox
from view_story import MONTHLY, Story, billing_story, events

try:
    from playwright.async_api import Browser, Frame, Locator, Page, async_playwright
except ImportError:  # reported by the browser fixture: skipped locally, a failure in CI
    async_playwright = None

ARTIFACTS = Path(os.environ.get("TOGAI_VIEW_ARTIFACTS") or Path(__file__).parents[1] / "artifacts" / "views")
FILES = {view.uri: view.file for view in VIEWS}

# The CSP a host must apply to a view whose resource declares no `ui.csp` (MCP Apps 2026-01-26, "UI
# Resource Format"): nothing may be loaded from anywhere.
DEFAULT_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; media-src 'self' data:; connect-src 'none'")

VIEWPORT = {"width": 920, "height": 2400}  # tall enough that a screenshot holds the whole view

HOST_CONTEXT = {"theme": "light", "locale": "en-US", "timeZone": "UTC", "displayMode": "inline",
                "availableDisplayModes": ["inline"], "containerDimensions": {"width": 880, "maxHeight": 4000},
                "platform": "desktop"}

# The host side of the protocol: answer ui/initialize, and once the view says it is initialized send the
# tool's arguments then its result; fit the iframe to the size the view reports.
HOST_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"></head>
<body style="margin:0; padding:16px; background:#e8eaee">
<iframe id="view" sandbox="allow-scripts" style="display:block; width:880px; height:120px; border:0;
  background:white; box-shadow:0 1px 3px rgba(0,0,0,.2)"></iframe>
<script>
window.received = [];
window.mountView = (html, toolArguments, toolResult, hostContext) => {
  const frame = document.getElementById("view");
  const send = (message) => frame.contentWindow.postMessage({ jsonrpc: "2.0", ...message }, "*");
  window.sendToView = send;
  window.addEventListener("message", (event) => {
    if (event.source !== frame.contentWindow) return;
    const message = event.data;
    window.received.push(message);
    if (message.method === "ui/initialize") {
      send({ id: message.id, result: { protocolVersion: "2026-01-26", hostCapabilities: {},
        hostInfo: { name: "togai-test-host", version: "1.0.0" }, hostContext } });
    } else if (message.method === "ui/notifications/initialized") {
      send({ method: "ui/notifications/tool-input", params: { arguments: toolArguments } });
      send({ method: "ui/notifications/tool-result", params: toolResult });
    } else if (message.method === "ui/notifications/size-changed") {
      frame.style.height = message.params.height + "px";
    }
  });
  frame.srcdoc = html;
};
</script>
</body></html>"""


def ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One chromium for the session; each test opens its own page."""
    missing = []
    if async_playwright is None:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if shutil.which("chromium") is None:
        missing.append("Debian's chromium package (apt-get install -y chromium)")
    if missing:
        reason = "the browser tests of the views need " + " and ".join(missing)
        if ci():
            pytest.fail(f"{reason}; CI must have them (.ci/run installs chromium)")
        pytest.skip(reason)
    async with hosted(async_playwright()) as playwright:
        launched = await playwright.chromium.launch(executable_path=shutil.which("chromium"))
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    opened = await browser.new_page(viewport=VIEWPORT)
    opened.set_default_timeout(10_000)
    yield opened
    await opened.close()


def wire(result: Any) -> dict[str, Any]:
    """A CallToolResult as the host forwards it in ui/notifications/tool-result."""
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


async def tool_result(client: Client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return wire(await client.call_tool(name, arguments))


class HostedView:
    """One view mounted in the test host page, with every request the page made and every error it logged."""

    def __init__(self, page: Page, uri: str) -> None:
        self.page = page
        self.uri = uri
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    async def mount(self, arguments: dict[str, Any], result: dict[str, Any]) -> Frame:
        html = view_html(FILES[self.uri]).replace(
            "<head>", f'<head><meta http-equiv="Content-Security-Policy" content="{DEFAULT_CSP}">', 1)
        await self.page.set_content(HOST_PAGE)
        await self.page.evaluate("([html, args, result, context]) => mountView(html, args, result, context)",
                                 [html, arguments, result, HOST_CONTEXT])
        frame = await (await self.page.wait_for_selector("#view")).content_frame()
        assert frame is not None
        await frame.wait_for_selector("body[data-state=rendered]")
        # The host fits the iframe to the size the view reports once it has drawn the result.
        height = await frame.evaluate("Math.ceil(document.documentElement.getBoundingClientRect().height)")
        await self.page.wait_for_function(
            "(height) => window.received.some((m) => m.method === 'ui/notifications/size-changed' "
            "&& m.params.height === height)", arg=height)
        return frame

    async def protocol(self) -> list[str]:
        """The methods the view sent, in order (requests and notifications)."""
        return [m["method"] for m in await self.page.evaluate("window.received") if "method" in m]

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.locator("#view").screenshot(path=str(path))
        assert path.stat().st_size > 10_000, f"{path} looks empty"
        return path

    async def assert_offline_and_clean(self, frame: Frame) -> None:
        shown = await frame.locator("body").inner_text()
        assert not {"null", "undefined", "NaN", "[object"} & set(shown.replace("(", " ").split()), shown
        assert [url for url in self.requests if not url.startswith(("about:", "data:"))] == [], self.requests
        assert self.errors == [], f"{self.uri} logged errors (a CSP violation, a script error): {self.errors}"


async def texts(frame: Frame, selector: str) -> list[str]:
    return [text.strip() for text in await frame.locator(selector).all_inner_texts()]


async def attributes(frame: Frame | Locator, selector: str, name: str) -> list[str | None]:
    return [await node.get_attribute(name) for node in await frame.locator(selector).all()]


@pytest.fixture
async def story(client: Client, clock: Any) -> Story:
    return await billing_story(client, clock)


async def test_the_invoice_view_shows_the_invoice_a_finance_person_would_print(page, client, story) -> None:
    arguments = {"invoiceId": story.february["id"]}
    result = await tool_result(client, "get_invoice", arguments)
    assert result["structuredContent"] == story.february
    view = HostedView(page, INVOICE_VIEW)
    frame = await view.mount(arguments, result)

    sent = await view.protocol()
    assert sent[:2] == ["ui/initialize", "ui/notifications/initialized"]
    assert set(sent[2:]) == {"ui/notifications/size-changed"}  # once before the result came, once after
    assert (await texts(frame, "[data-field=number]"), await texts(frame, "[data-field=status]")) == (
        ["INV-000002"], ["DUE"])
    assert await frame.locator("[data-field=sandbox]").count() == 0  # a real server's invoice
    facts = await frame.locator(".facts").inner_text()
    assert "Feb 1, 2026 – Feb 28, 2026" in facts and "acme" in facts and "Pro" in facts
    # Three lines: tokens (12,000 = 10,000 × 0.01 + 2,000 × 0.005 = 110.00), the 31.00 fee, and January's
    # late usage (20.00); the tokens line shows its two tiers, exact as the engine computed them.
    assert await attributes(frame, "tr.line", "data-line") == [
        "USAGE_RATE_CARD_AMOUNT", "FIXED_FEE_RATE_CARD_AMOUNT", "LATE_USAGE_AMOUNT"]
    assert await texts(frame, "tr.line [data-field=line-amount]") == ["$110.00", "$31.00", "$20.00"]
    assert await frame.locator("tr.sub").count() == 2
    tiers = [[cell.strip() for cell in row.split("\t")] for row in await texts(frame, "tr.sub")]
    assert tiers == [["Tier 1: from the first unit", "10,000", "$0.01", "$100.00"],
                     ["Tier 2: above 10,000", "2,000", "$0.005", "$10.000"]]
    assert "12,000" in await frame.locator("tr.line").first.inner_text()
    fee = [cell.strip() for cell in (await frame.locator("tr[data-line=FIXED_FEE_RATE_CARD_AMOUNT]").inner_text()).split("\t")]
    assert fee[1:] == ["1", "$31.00", "$31.00"]  # the rate "31" shown with the currency's two decimals
    late = await frame.locator("tr[data-line=LATE_USAGE_AMOUNT]").inner_text()
    assert "Late usage of Jan 1, 2026 – Jan 31, 2026" in late and "INV-000001" in late
    # Totals: 161.00; the 25.00 credit and the 11.00 credit note leave 161.00 - 25.00 - 11.00 = 125.00 due
    totals = {field: (await frame.locator(f".totals [data-field={field}]").inner_text()).strip()
              for field in ("subtotal", "total", "credits", "credit-notes", "amount-due")}
    assert totals == {"subtotal": "$161.00", "total": "$161.00", "credits": "-$25.00", "credit-notes": "-$11.00",
                      "amount-due": "$125.00"}
    assert await frame.locator(".totals [data-field=true-up]").count() == 0  # no commitment: no true-up line
    (note,) = await texts(frame, "[data-credit-note]")
    assert note.split("\t")[0] == "CN-000001" and "$11.00" in note and "product unsatisfactory" in note
    await view.assert_offline_and_clean(frame)
    await view.screenshot("invoice")


async def test_a_draft_invoice_says_it_is_not_issued_and_owes_nothing_yet(page, client, story) -> None:
    arguments = {"accountId": "acme"}  # March, open: only the 31.00 fee so far (in arrears, shown on the DRAFT)
    result = await tool_result(client, "get_invoice", arguments)
    assert (result["structuredContent"]["status"], result["structuredContent"]["totalAmount"]) == ("DRAFT", "31.00")
    view = HostedView(page, INVOICE_VIEW)
    frame = await view.mount(arguments, result)
    assert await texts(frame, "[data-field=number]") == ["Draft — not issued yet"]
    assert await texts(frame, ".totals [data-field=total]") == ["$31.00"]
    assert await frame.locator(".totals [data-field=amount-due]").count() == 0
    assert "Mar 1, 2026 – Mar 31, 2026" in await frame.locator(".facts").inner_text()
    await view.assert_offline_and_clean(frame)


async def test_a_paid_invoice_shows_what_was_paid_and_when_and_that_nothing_is_due(page, client, clock,
                                                                                  story) -> None:
    """A PAID invoice owes nothing: its amountDue is what was due when it was paid (the engine keeps it), so the
    view shows it as paid, on the day it was marked PAID, and 0.00 due (never "Amount due $125.00")."""
    clock.set(at(2026, 3, 5, 14))
    paid = await call(client, "update_invoice_status", invoiceId=story.february["id"], status="PAID")
    # 161.00 total - 25.00 credits - 11.00 credit note = 125.00, paid on 5 March
    assert (paid["status"], paid["amountDue"], paid["statusUpdatedAt"]) == ("PAID", "125.00", "2026-03-05T14:00:00Z")
    arguments = {"invoiceId": story.february["id"]}
    view = HostedView(page, INVOICE_VIEW)
    frame = await view.mount(arguments, await tool_result(client, "get_invoice", arguments))
    assert await texts(frame, "[data-field=status]") == ["PAID"]
    rows = [[cell.strip() for cell in row.split("\t")] for row in await texts(frame, ".totals tr")]
    assert rows == [["Subtotal", "$161.00"], ["Total", "$161.00"], ["Credits applied", "-$25.00"],
                    ["Credit notes", "-$11.00"], ["Paid on Mar 5, 2026", "-$125.00"],
                    ["Paid — nothing due", "$0.00"]]
    # the payment is taken off as the credits are: 161.00 - 25.00 - 11.00 - 125.00 = 0.00
    assert await texts(frame, ".totals [data-field=amount-paid]") == ["-$125.00"]
    assert await texts(frame, ".totals [data-field=amount-due]") == ["$0.00"]
    assert "Amount due" not in await frame.locator("body").inner_text()
    await view.assert_offline_and_clean(frame)
    await view.screenshot("invoice-paid")


async def test_a_void_invoice_says_when_it_was_voided_and_that_nothing_is_due(page, client, clock, story) -> None:
    clock.set(at(2026, 3, 6))
    (january,) = [i for i in (await call(client, "list_invoices", accountId="globex", status="DUE"))["data"]
                  if i["startDate"] == "2026-01-01T00:00:00Z"]
    # globex January: 20,000 tokens = 10,000 × 0.01 + 10,000 × 0.005 = 150.00, + 31.00 fee = 181.00
    assert (january["totalAmount"], january["amountDue"]) == ("181.00", "181.00")
    voided = await call(client, "update_invoice_status", invoiceId=january["id"], status="VOID")
    assert (voided["status"], voided["amountDue"]) == ("VOID", "0.00")
    arguments = {"invoiceId": january["id"]}
    view = HostedView(page, INVOICE_VIEW)
    frame = await view.mount(arguments, await tool_result(client, "get_invoice", arguments))
    assert await texts(frame, "[data-field=status]") == ["VOID"]
    rows = [[cell.strip() for cell in row.split("\t")] for row in await texts(frame, ".totals tr")]
    assert rows == [["Subtotal", "$181.00"], ["Total", "$181.00"],
                    ["Voided on Mar 6, 2026 — nothing due", "$0.00"]]
    await view.assert_offline_and_clean(frame)


async def test_an_in_advance_fee_shows_the_period_it_pays_and_its_proration(page, client, clock) -> None:
    """An in-advance fee pays a period other than the invoice's own (the next cycle, or the first one on an
    advance invoice, whose own period is empty): the line says which, and a prorated fee says why its amount is
    not quantity × rate."""
    plan = await call(client, "create_price_plan", name="Monthly", pricingCycleConfig=MONTHLY, rateCards={
        "fixedFeeRateCards": [{"id": "platform", "displayName": "Platform", "rateValues": [
            {"currency": "USD", "rate": "31"}], "invoiceTiming": "IN_ADVANCE", "enableProration": True}]})
    clock.set(at(2026, 1, 16))
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "pricePlanId": plan["id"], "effectiveFrom": "2026-01-16T00:00:00Z"})
    clock.set(at(2026, 2, 1))
    invoices = {(i["invoiceType"], i["startDate"]): i["id"]
                for i in (await call(client, "list_invoices", accountId="acme"))["data"]}

    # The advance invoice, issued as the plan starts on 16 January (its period is empty: startDate = endDate):
    # January's fee for 16 of its 31 days, 31.00 × 16/31 = 16.00
    arguments = {"invoiceId": invoices[("STANDARD_ADVANCED", "2026-01-16T00:00:00Z")]}
    result = await tool_result(client, "get_invoice", arguments)
    assert (result["structuredContent"]["startDate"], result["structuredContent"]["endDate"]) == (
        "2026-01-16T00:00:00Z", "2026-01-16T00:00:00Z")
    view = HostedView(page, INVOICE_VIEW)
    frame = await view.mount(arguments, result)
    facts = await frame.locator(".facts").inner_text()
    assert "Jan 15, 2026" not in facts  # never a period that ends the day before it starts
    assert "In advance, as the plan starts on Jan 16, 2026" in facts
    fee = [cell.strip() for cell in (await frame.locator("tr[data-line=FIXED_FEE_RATE_CARD_AMOUNT]").inner_text())
           .split("\t")]
    assert fee[1:] == ["1", "$31.00", "$16.00"]
    assert "billed in advance for Jan 16, 2026 – Jan 31, 2026 · prorated: 16 days of 31 days" in fee[0]
    await view.assert_offline_and_clean(frame)

    # January's own invoice (16-31 January) carries February's fee, in advance: 31.00
    arguments = {"invoiceId": invoices[("STANDARD", "2026-01-16T00:00:00Z")]}
    frame = await view.mount(arguments, await tool_result(client, "get_invoice", arguments))
    assert "Jan 16, 2026 – Jan 31, 2026" in await frame.locator(".facts").inner_text()
    fee = await frame.locator("tr[data-line=FIXED_FEE_RATE_CARD_AMOUNT]").inner_text()
    assert "billed in advance for Feb 1, 2026 – Feb 28, 2026" in fee and "prorated" not in fee
    await view.assert_offline_and_clean(frame)


async def test_a_sandbox_invoice_shows_a_sandbox_badge(page, db) -> None:
    """A sandbox server's invoice (`sandbox: true` in get_invoice's result) is marked SANDBOX next to its
    status, so a printed one is never taken for a real invoice."""
    async with db.unit_of_work() as session:
        await start_sandbox(session, at(2026, 1, 1))
    async with hosted(Client(build_server(db, sandbox=True), raise_exceptions=False)) as sandbox:
        plan = await call(sandbox, "create_price_plan", name="Fee", pricingCycleConfig={
            "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0}, rateCards={
            "fixedFeeRateCards": [{"id": "base", "rateValues": [{"currency": "USD", "rate": "31"}],
                                   "invoiceTiming": "IN_ARREARS", "enableProration": False}]})
        await call(sandbox, "create_customer", id="c", name="C", account={
            "id": "acme", "name": "Acme", "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z"})
        await call(sandbox, "advance_clock", to="2026-02-01")  # January (the 31.00 fee) is DUE
        (january,) = (await call(sandbox, "list_invoices", accountId="acme", status="DUE"))["data"]
        arguments = {"invoiceId": january["id"]}
        result = await tool_result(sandbox, "get_invoice", arguments)
    assert result["structuredContent"]["sandbox"] is True
    view = HostedView(page, INVOICE_VIEW)
    frame = await view.mount(arguments, result)
    assert (await texts(frame, "[data-field=sandbox]"), await texts(frame, "[data-field=status]")) == (
        ["SANDBOX"], ["DUE"])
    assert await frame.locator(".head [data-field=sandbox]").is_visible()
    assert await texts(frame, ".totals [data-field=amount-due]") == ["$31.00"]
    await view.assert_offline_and_clean(frame)
    await view.screenshot("invoice-sandbox")


async def test_the_metrics_view_draws_each_series_as_a_chart(page, client, story) -> None:
    result = await tool_result(client, "get_metrics", story.metrics_arguments)
    view = HostedView(page, METRICS_VIEW)
    frame = await view.mount(story.metrics_arguments, result)

    assert await attributes(frame, "section.chart", "data-metric") == ["tokens", "revenue"]
    series = {query["id"]: query["data"][0]["metricValues"] for query in result["structuredContent"]["results"]}
    for metric in ("tokens", "revenue"):
        chart = frame.locator(f"section[data-metric={metric}]")
        assert await chart.locator("polyline.series").count() == 1
        # 1-15 February by day: 14 buckets, one point each, carrying the tool's value
        assert await attributes(chart, "circle.point", "data-value") == series[metric]
        assert len(series[metric]) == 14
    usage = frame.locator("section[data-metric=tokens]")
    assert "USAGE per day" in await usage.locator("h2").inner_text()  # the bucket comes from tool-input
    # acme's February tokens before the 15th: 4,000 + 5,000 + 3,000; their revenue 40.00 + 50.00 + 20.00
    assert await texts(frame, "[data-field=series-total]") == ["12,000", "110.00"]
    assert series["tokens"][1] == "4000" and series["revenue"][9] == "20.00"
    await view.assert_offline_and_clean(frame)
    await view.screenshot("metrics")


async def test_revenue_in_two_currencies_is_drawn_on_one_scale_per_currency(page, client, clock) -> None:
    """REVENUE never adds two currencies (no exchange rates): a query over accounts invoiced in USD and EUR has
    a series per currency, and the view draws each currency on its own chart with its own scale, so 10.00 USD
    is never drawn as next to nothing beside 1,000.00 EUR as if they were amounts of one unit."""
    meter = await tokens_meter(client)
    rates = {"USD": "0.01", "EUR": "0.02"}
    plan = await call(client, "create_price_plan", name="Intl", pricingCycleConfig=MONTHLY,
                      supportedCurrencies=["USD", "EUR"], rateCards={"usageRateCards": [{
                          "name": "tokens", "usageMeterId": meter, "ratePlan": {"pricingModel": "TIERED", "slabs": [
                              {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
                          "rateValues": [{"currency": currency, "slabRates": [{"order": 1, "rate": rate}]}
                                         for currency, rate in rates.items()]}]})
    for account_id, currency in (("acme", "USD"), ("emea", "EUR")):
        await call(client, "create_customer", id=f"cust_{account_id}", name=account_id, account={
            "id": account_id, "name": account_id, "invoiceCurrency": currency, "pricePlanId": plan["id"],
            "effectiveFrom": "2026-02-01T00:00:00Z"})
    clock.set(at(2026, 2, 4))
    # acme: 1,000 tokens × 0.01 = 10.00 USD on 2 February; emea: 50,000 tokens × 0.02 = 1,000.00 EUR on 3 February
    await events(client, "acme", ("a-1", "2026-02-02T10:00:00Z", "1000"))
    await events(client, "emea", ("e-1", "2026-02-03T10:00:00Z", "50000"))
    arguments = {"startTime": "2026-02-01T00:00:00Z", "endTime": "2026-02-04T00:00:00Z", "metricQueries": [
        {"id": "revenue", "name": "REVENUE", "aggregationPeriod": "DAY", "groupBy": "ACCOUNT_ID"}]}
    result = await tool_result(client, "get_metrics", arguments)
    (query,) = result["structuredContent"]["results"]
    assert [(s["groupedBy"]["fieldValue"], s["currency"], s["metricValues"]) for s in query["data"]] == [
        ("acme", "USD", ["0.00", "10.00", "0.00"]), ("emea", "EUR", ["0.00", "0.00", "1000.00"])]
    view = HostedView(page, METRICS_VIEW)
    frame = await view.mount(arguments, result)

    section = frame.locator("section[data-metric=revenue]")
    plots = section.locator("svg.plot")
    assert await attributes(section, "svg.plot", "data-currency") == ["USD", "EUR"]
    for n, (currency, values, top) in enumerate((("USD", ["0.00", "10.00", "0.00"], "10"),
                                                 ("EUR", ["0.00", "0.00", "1000.00"], "1K"))):
        plot = plots.nth(n)
        # each chart holds only its currency's series, on a scale from 0 to its own top
        assert await attributes(plot, "circle.point", "data-value") == values
        assert await plot.locator("polyline.series").count() == 1
        ticks = await plot.locator("text").all_text_contents()  # the value axis first: bottom, middle, top
        assert ticks[:3] == ["0", {"10": "5", "1K": "500"}[top], top]
        assert currency in await plot.get_attribute("aria-label")
    # the 10.00 USD point is at the top of its chart, not flattened beside the 1,000.00 EUR one
    usd_top = await plots.nth(0).locator("circle.point").nth(1).get_attribute("cy")
    eur_top = await plots.nth(1).locator("circle.point").nth(2).get_attribute("cy")
    assert usd_top == eur_top
    assert await texts(section, "[data-field=series-total]") == ["10.00", "1,000.00"]
    await view.assert_offline_and_clean(frame)
    await view.screenshot("metrics-two-currencies")


async def test_the_lab_view_compares_candidates_in_a_table_and_a_bar_chart(page, client, story) -> None:
    result = await tool_result(client, "simulate_price_plan", story.simulation_arguments)
    view = HostedView(page, LAB_VIEW)
    frame = await view.mount(story.simulation_arguments, result)

    assert await frame.locator("h1").inner_text() == "Pricing lab: Pro vs Flat"
    # Actual over both accounts, January and February: acme 141.00 + 141.00, globex 181.00 + 31.00 = 494.00.
    # Flat (0.008 a token, 25.00 fee): acme 12,000 × 0.008 + 25.00 = 121.00 twice; globex 20,000 × 0.008
    # + 25.00 = 185.00 and 25.00: 452.00, 42.00 less (-8.50 %). Pro reproduces the invoices exactly.
    assert await attributes(frame, "rect.bar", "data-value") == ["494.00", "494.00", "494.00", "452.00"]
    rows = [[cell.strip() for cell in row.split("\t")] for row in await texts(frame, "[data-section=totals] tbody tr")]
    assert rows == [["Pro", "USD", "2", "4", "$494.00", "$494.00", "$0.00", "0.00%"],
                    ["Flat", "USD", "2", "4", "$494.00", "$452.00", "-$42.00", "-8.50%"]]
    assert await attributes(frame, "[data-section=accounts] tbody tr", "data-account") == [
        "acme", "acme", "globex", "globex"]
    globex_january = (await texts(frame, "[data-section=accounts] tbody tr"))[2]
    assert "$181.00" in globex_january and "$185.00" in globex_january and "+$4.00" in globex_january
    await view.assert_offline_and_clean(frame)
    await view.screenshot("lab")


async def test_a_failed_tool_call_is_shown_as_its_error(page, client) -> None:
    arguments = {"invoiceId": "inv_missing"}
    result = await tool_result(client, "get_invoice", arguments)
    assert result["isError"]
    view = HostedView(page, INVOICE_VIEW)
    frame = await view.mount(arguments, result)
    assert await frame.locator("[role=alert]").inner_text() == result["content"][0]["text"]
    await view.assert_offline_and_clean(frame)


async def test_the_view_answers_the_hosts_requests_and_follows_its_context(page, client, story) -> None:
    arguments = {"invoiceId": story.february["id"]}
    view = HostedView(page, INVOICE_VIEW)
    frame = await view.mount(arguments, await tool_result(client, "get_invoice", arguments))
    await page.evaluate("""() => {
        sendToView({ id: 101, method: "ping" });
        sendToView({ id: 102, method: "tools/list", params: {} });
        sendToView({ method: "ui/notifications/host-context-changed", params: { theme: "dark",
            styles: { variables: { "--font-sans": "serif" } } } });
        sendToView({ id: 103, method: "ui/resource-teardown", params: { reason: "closed by the user" } });
    }""")
    await page.wait_for_function("window.received.some((m) => m.id === 103)")
    replies = {m["id"]: m for m in await page.evaluate("window.received") if m.get("id") in (101, 102, 103)}
    assert replies[101]["result"] == {} and replies[103]["result"] == {}
    assert replies[102]["error"]["code"] == -32601  # a view serves no tools: method not found
    assert await frame.evaluate("document.documentElement.dataset.theme") == "dark"
    assert await frame.evaluate("getComputedStyle(document.body).fontFamily") == "serif"
    await view.assert_offline_and_clean(frame)


async def test_opened_on_its_own_the_invoice_view_draws_an_injected_result(page, client, story) -> None:
    """Outside a host (window.parent is itself), a result set in window.__TOGAI_RESULT__ is drawn: a
    printable page with no MCP host at all."""
    result = await tool_result(client, "get_invoice", {"invoiceId": story.february["id"]})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    injected = json.dumps(result).replace("</", "<\\/")  # no "</script>" inside the script
    await page.set_content(view_html(FILES[INVOICE_VIEW]).replace(
        "<head>", f"<head><script>window.__TOGAI_RESULT__ = {injected};</script>", 1))
    await page.wait_for_selector("body[data-state=rendered]")
    assert await page.locator("[data-field=amount-due]").inner_text() == "$125.00"
    assert await page.locator("tr.line").count() == 3
    assert errors == []
