"""MCP prompts: the jobs users come to a billing engine with, each a worked plan over this server's tools.

Each prompt takes arguments (ids are completable, see completions.py), names the tools and resources it
uses, and states this engine's rules where they decide the outcome (idempotency keys, event statuses, when
a DRAFT becomes DUE, late usage). Rendering reads nothing: the agent reads the store through the tools.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from dateutil.relativedelta import relativedelta
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import Field

from mcp_server.resources import ACCOUNT, INVOICE, INVOICE_JSON, PRICE_PLAN, USAGE_METER, expand
from togai_engine.common.messages import quote, shorten_echoes
from togai_engine.common.validation import instant_text
from togai_engine.events.validation import MAX_BATCH_EVENTS
from togai_engine.events.voids import MAX_BATCH as MAX_VOIDS
from togai_engine.lab.service import MAX_CANDIDATES, MAX_LAST_CYCLES

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_month(value: str, field: str = "month") -> tuple[datetime, datetime]:
    """'2026-01' -> [2026-01-01T00:00Z, 2026-02-01T00:00Z); a clear error naming the field otherwise."""
    match = MONTH.match(value.strip())
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise MCPError(INVALID_PARAMS, f"{field}: {quote(value)} is not a month; write it as YYYY-MM, e.g. 2026-01")
    start = datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=UTC)
    return start, start + relativedelta(months=1)


def parse_day(value: str, field: str = "day") -> tuple[datetime, datetime]:
    """'2026-01-15' -> [2026-01-15T00:00Z, 2026-01-16T00:00Z); a clear error naming the field otherwise."""
    try:
        if not DAY.match(value.strip()):
            raise ValueError
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise MCPError(INVALID_PARAMS, f"{field}: {quote(value)} is not a day; write it as YYYY-MM-DD, e.g. 2026-01-15") from None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + relativedelta(days=1)


def slug(name: str) -> str:
    """A readable id from a name ('Acme Corp.' -> 'acme-corp'), within the 50 characters ids may have."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "partner"


def tools_line(*names: str) -> str:
    return "Tools: " + ", ".join(names) + "."


def onboard_partner(
    customerName: Annotated[str, Field(description="the partner's legal name")],
    customerId: Annotated[str | None, Field(description="customer id to use (default: from the name)")] = None,
    accountId: Annotated[str | None, Field(description="billing account id to use (default: <customerId>-main)")] = None,
    pricePlanId: Annotated[str | None, Field(description="the price plan to put the account on, if it exists already")] = None,
    invoiceCurrency: Annotated[str | None, Field(description="ISO 4217 code the account is invoiced in (default USD)")] = None,
    startDate: Annotated[str | None, Field(description="day billing starts, YYYY-MM-DD (default: today)")] = None,
) -> str:
    """Set up a new partner: customer, billing account, price plan (an existing one or a new one), optional
    prepaid credit, then verify."""
    customer = customerId or slug(customerName)
    account = accountId or f"{customer}-main"[:50]
    currency = (invoiceCurrency or "USD").upper()
    start = instant_text(parse_day(startDate, "startDate")[0]) if startDate else "<now, or the first day of the next cycle>"
    plan_step = (
        f"3. The plan is {pricePlanId}: get_price_plan(pricePlanId=\"{pricePlanId}\") (or read "
        f"{expand(PRICE_PLAN, pricePlanId)}) and check that supportedCurrencies contains {currency} (an account can "
        "only use a plan that prices its invoiceCurrency), that the cycle (interval, startOffset, gracePeriod) and "
        "lateUsage are what was agreed, and that every feature the partner bought is a billingEntitlementRateCard."
        if pricePlanId else
        "3. Find or make the plan: list_price_plans, then get_price_plan on a candidate. If none fits: "
        "create_usage_meter for each billable quantity (eventSchemaName = the partner's event type; aggregation "
        "COUNT, SUM, MAX, UNIQUE_COUNT or LATEST; SUM needs computations such as [{\"computation\": \"tokens\"}]), "
        "then calculate_revenue(pricePlan=<the draft plan inline>, usage={...}) on the partner's expected volume "
        "to check the price, then create_price_plan (usageRateCards with TIERED or VOLUME slabs, "
        "fixedFeeRateCards, billingEntitlementRateCards for features: a metered feature has usageMeterId and "
        "featureConfigs [{\"featureCreditLimit\": \"<per cycle>\"}]; a BOOLEAN one has neither (featureConfigs on "
        "it is refused); minimumCommitment, lateUsage). A plan's "
        "content changes only through a new version: update_price_plan(pricePlanId=<the plan>, rateCards=<the whole "
        "set>) drafts it and finalize_price_plan(pricePlanId=<the plan>, migrationMode=...) makes it the plan's "
        "(migrationMode says which accounts on the plan move, and from when).")
    attach = (f"pricePlanId=\"{pricePlanId}\", effectiveFrom=\"{start}\"" if pricePlanId
              else f"pricePlanId=<the plan>, effectiveFrom=\"{start}\"")
    return f"""Onboard the partner "{customerName}" for usage billing on togai-engine.

{tools_line("get_customer", "create_customer", "list_price_plans", "get_price_plan", "create_usage_meter",
            "calculate_revenue", "create_price_plan", "update_price_plan", "finalize_price_plan", "update_account",
            "grant_credit", "get_account", "get_entitlements")}
Resources: {expand(ACCOUNT, account)} (the account's financial picture once it exists).

1. Check it is not there already: get_customer(customerId="{customer}"). Ids you choose make each step safe to
   retry: the same id with the same content returns the stored record instead of a second one.
2. Create the customer and its billing account in one call (one transaction):
   create_customer(id="{customer}", name="{customerName}", account={{"id": "{account}", "name": "{customerName}",
   "invoiceCurrency": "{currency}", "aliases": [<ids the partner's events may send as accountId, at most 10,
   unique across all accounts>]}}). Events, invoices, the wallet and entitlements all belong to the account.
{plan_step}
4. Put the account on the plan: update_account(accountId="{account}", {attach}). Starting at a cycle boundary
   avoids a partial first period (a partial one prorates fixed fees only when the card's enableProration is
   true; minimums count by time share). Usage dated before effectiveFrom is stored NOT_BILLED_NO_PLAN.
5. If the partner prepaid: grant_credit(accountId="{account}", amount="<decimal string>", purpose="PREPAID_CREDIT",
   idempotencyKey="onboard-{account}-prepaid"); reuse the same idempotencyKey on a retry so the credit is never
   granted twice. Credit pays invoices when they become DUE.
6. Verify: get_account(accountId="{account}") shows financial.pricePlan and currentCycle; get_entitlements shows the
   plan's features. Report the ids created, the plan, and when the first invoice becomes DUE (cycle end +
   gracePeriod days)."""


def audit_overage_claim(
    invoiceId: Annotated[str, Field(description="the disputed invoice (inv_...)")],
    usageMeterId: Annotated[str | None, Field(description="the meter whose charge is disputed, if known")] = None,
    claimedQuantity: Annotated[str | None, Field(description="the quantity the customer says is right")] = None,
    claim: Annotated[str | None, Field(description="the customer's words, e.g. 'we made 40k calls, not 55k'")] = None,
) -> str:
    """A customer says an invoice overcharged them: recount the usage the invoice billed with get_metrics,
    cross-reference it with the invoice lines, find and explain the difference, and price it."""
    meter = usageMeterId or "<the disputed line's usageMeterId>"
    meter_filter = f', {{"fieldName": "USAGE_METER_ID", "fieldValues": ["{usageMeterId}"]}}' if usageMeterId else ""
    claimed = claimedQuantity or "<the customer's quantity>"
    said = f' The customer says: "{claim}".' if claim else ""
    return f"""Audit an overage claim on invoice {invoiceId}.{said} Find the exact difference and explain it; change
nothing unless the user approves a correction.

{tools_line("get_invoice", "get_metrics", "list_events", "get_price_plan", "calculate_revenue", "list_credit_notes",
            "create_credit_note (only after approval)", "void_events (only after approval)")}
Resources: {expand(INVOICE, invoiceId)} (the line tree as a document), {expand(INVOICE_JSON, invoiceId)},
{expand(USAGE_METER, meter) if usageMeterId else "togai://usage-meters/{usageMeterId}"}.

1. What was billed: get_invoice(invoiceId="{invoiceId}"). Note accountId, status, startDate and endDate (UTC, end
   exclusive), currency, pricePlanId, pricePlanVersion (the plan's version that priced it) and isOverridden (true:
   the account's own deal, its rateCardOverrides, priced it), and for the line of meter {meter} (type USAGE_RATE_CARD_AMOUNT): its
   quantity, usagePeriod, and the slab lines below it (quantity × rate = value, exact; the card amount is their
   sum rounded once, half-up, to the currency's minor unit). A LATE_USAGE_AMOUNT line bills usage of an EARLIER
   period that arrived after that period was invoiced; its details name that invoice and the events. A DRAFT is
   not final: it changes with new usage until it becomes DUE (closesAt).
2. Recount: get_metrics(startTime=<usagePeriod.start>, endTime=<usagePeriod.end>, metricQueries=[{{"id": "usage",
   "name": "USAGE", "aggregationPeriod": "DAY", "groupBy": "USAGE_METER_ID", "filters": [{{"fieldName":
   "ACCOUNT_ID", "fieldValues": ["<accountId>"]}}{meter_filter}]}}]). USAGE is metered by the same code as
   invoices: for COUNT and SUM meters the daily values add up to the line's quantity exactly (MAX, UNIQUE_COUNT and
   LATEST are not additive: compare the period as one bucket instead), except usage that arrived after the period
   was invoiced under lateUsage BILL_ON_NEXT_INVOICE (ACCEPTED_LATE events): it counts in the period's metrics but
   is billed on a later invoice's LATE_USAGE_AMOUNT line. Any other mismatch is an engine fault to report, not a
   customer error. Buckets are UTC days, at most 300 points per series.
3. Where the customer's count differs, find which events explain it: get_metrics with "name": "EVENTS",
   "groupBy": "EVENT_STATUS" over the same range (filter ACCOUNT_ID, and SCHEMA_NAME for the meter's event
   schema), then list_events(accountId=<accountId>, status=<status>) for examples. The usual causes:
   - DUPLICATE: an event sent again with an id already stored is counted once; a customer counting retries counts
     twice. The reverse: the same usage re-sent under NEW ids is counted twice (look for twin events).
   - VOIDED events feed no meter. NOT_BILLED_NO_PLAN: dated when no plan was in effect, never billed.
   - NOT_BILLED_CYCLE_CLOSED: arrived after its period was invoiced and the plan's lateUsage is IGNORE: stored,
     never billed. ACCEPTED_LATE: lateUsage BILL_ON_NEXT_INVOICE: billed on the account's NEXT invoice as a
     LATE_USAGE_AMOUNT line, not on the period's own invoice.
   - Time: an event belongs to the period holding its timestamp (event time, UTC), not its received time; a
     customer counting in a local time zone shifts the period edges.
   - Price: TIERED charges each slab its own rate; VOLUME charges every unit at the rate of the slab holding the
     total; a card's minimumRate/maximumRate and the plan's minimum commitment (TRUE_UP_AMOUNT line) also move
     the amount.
4. Price the difference: get_price_plan(pricePlanId=<the invoice's pricePlanId>, version="<its pricePlanVersion>")
   shows the cards that priced it (without version, the latest, which may be newer);
   calculate_revenue(pricePlanId=<the invoice's pricePlanId>, accountId=<accountId>, usage={{"{meter}": "<invoiced
   quantity>"}}) quotes the plan's latest version with the account's deal, as its invoices are priced, and must
   reproduce the line while that is still what priced it (the same version and deal); the same with "{claimed}"
   gives the claimed amount: their difference is the money in dispute. Where the plan or the deal changed since,
   price both quantities with the slab rates of the invoice's version and deal, as its slab lines show.
5. Answer with a table (invoiced, metered, claimed quantity; the days and events where they differ; the cause;
   the amount). Check list_credit_notes(invoiceId="{invoiceId}") first: the invoice may already be corrected. If a
   correction is due and approved: on a DUE or PAID invoice create_credit_note(invoiceId="{invoiceId}",
   reason="ORDER_CHANGE", lines=[{{"lineNumber": <n>, "amount": "<decimal>"}}], memo=<why>,
   idempotencyKey="audit-{invoiceId}") (a DUE invoice's amountDue drops first, the rest becomes wallet credit);
   on a DRAFT, void_events on the wrong events (at most {MAX_VOIDS} per call; a corrected event needs a NEW id)."""


def check_feature_rollout(
    featureId: Annotated[str, Field(description="the feature to check (a featureId of billingEntitlementRateCards)")],
    customerId: Annotated[str | None, Field(description="only this customer's accounts")] = None,
    accountId: Annotated[str | None, Field(description="one account to check (id or alias)")] = None,
) -> str:
    """Who is entitled to a feature: the plans that grant it, the accounts on them, and each account's
    entitlement decision right now (and why not)."""
    who = (f"account {accountId}" if accountId else f"the accounts of customer {customerId}" if customerId
           else "every active account")
    listing = (f"the one account: {accountId}" if accountId else
               f"list_accounts(customerId=\"{customerId}\", status=\"ACTIVE\")" if customerId else
               "list_accounts(status=\"ACTIVE\") page by page (nextToken)")
    return f"""Check the rollout of feature "{featureId}": who is entitled to it now, and why the others are not.
Scope: {who}.

{tools_line("list_price_plans", "list_rate_cards", "get_price_plan", "list_accounts", "get_account",
            "check_entitlement", "get_entitlements", "update_account", "update_price_plan", "finalize_price_plan")}
Resources: togai://price-plans/{{pricePlanId}} for a plan's cards.

1. Which plans grant it: list_price_plans, then list_rate_cards(pricePlanId=...) for each; a card of type
   BILLING_ENTITLEMENT with featureId "{featureId}" grants it. With a usageMeterId the feature is METERED (usage of
   that meter this cycle counts against featureConfigs[0].featureCreditLimit); without one it is BOOLEAN (having
   the plan is enough).
2. Accounts: {listing}. An account's current plan is get_account(...).financial.pricePlan.
3. For each account: check_entitlement(accountId=<id>, featureId="{featureId}", quantity="1"). entitled is true
   only when the current plan has the feature and, if metered, used + quantity <= limit. Otherwise reason says why:
   NO_ACTIVE_PLAN (no plan in effect now), FEATURE_NOT_IN_PLAN, LIMIT_REACHED (used, limit, remaining and
   resetsAt = the cycle end explain it) or ACCOUNT_ARCHIVED. get_entitlements(accountId) lists every feature of an
   account's plan at once. These only check; usage is recorded with ingest_event.
4. Report a table: account, plan, entitled, reason, used / limit, resetsAt. Then the gaps: accounts that should
   have the feature but are on a plan without it. Granting it means a plan that has it: another plan attached
   with update_account(accountId, pricePlanId, effectiveFrom), or their plan's next version with the card added
   (update_price_plan(pricePlanId, rateCards=<the whole set>), then finalize_price_plan(pricePlanId,
   migrationMode), which moves every account on that plan); propose this, do not do it unasked."""


def load_daily_usage(
    day: Annotated[str, Field(description="the UTC day the usage belongs to, YYYY-MM-DD")],
    schemaName: Annotated[str | None, Field(description="the event type being loaded, e.g. api_call")] = None,
    accountId: Annotated[str | None, Field(description="only this account's usage (id or alias)")] = None,
) -> str:
    """Load one day of usage with ingest_batch_events: batches of at most 1000, stable idempotency keys, and what
    each event status (DUPLICATE, NOT_BILLED_*, ACCEPTED_LATE, rejections) means and what to do about it."""
    start, end = parse_day(day)
    schema = schemaName or "<event type>"
    schema_filter = f', "filters": [{{"fieldName": "SCHEMA_NAME", "fieldValues": ["{schemaName}"]}}]' if schemaName else ""
    account_note = f" Only usage of account {accountId} is in scope." if accountId else ""
    return f"""Load the usage of {day} (UTC: {instant_text(start)} to {instant_text(end)}, end exclusive) into togai-engine.{account_note}

{tools_line("list_event_schemas", "list_usage_meters", "ingest_batch_events", "list_events", "get_metrics",
            "void_events")}

1. Before sending: list_usage_meters(eventSchemaName="{schema}") must show the meters that turn these events into
   billable quantities (an event with no meter is stored but bills nothing; a meter created later also counts the
   events already stored). list_event_schemas shows the attribute and dimension names seen so far.
2. Shape each event: {{"id": <idempotency key>, "schemaName": "{schema}", "timestamp": <ISO 8601 within the day;
   without an offset it is UTC>, "accountId": <account id or alias>, "attributes": {{"<name>": "<decimal string>"}}
   (at most 10), "dimensions": {{"<name>": "<text>"}}}}.
   The id is the idempotency key, unique per account: derive it from the source record (e.g. "<source>-<line
   number or request id>") so it is the same every time this day is loaded. Never make up a new id for usage
   already sent. Without an id the engine derives one from the content, so two genuinely separate but identical
   events at the same instant would collapse into one: give ids.
3. Send in batches: ingest_batch_events(events=[...]) takes 1 to {MAX_BATCH_EVENTS} events per call; more is one
   error that stores nothing. Valid events are stored even when others in the batch are rejected. If a call fails
   or times out, resend the SAME batch with the SAME ids: what was stored comes back as duplicates.
4. Read each result:
   - accepted: stored and billable (ACCEPTED).
   - duplicates / duplicateIndexes (DUPLICATE): that id was already stored; success, counted once. Expected on a
     retry or a re-run of this day.
   - rejected / rejectedEvents (index, eventId, code, field, message): nothing stored for them and their ids stay
     free; fix the field named (codes such as MISSING_FIELD, INVALID_TIMESTAMP, UNKNOWN_ACCOUNT, ACCOUNT_ARCHIVED,
     NEGATIVE_VALUE; message says what is wrong) and resend only those events, same ids.
   - notBilledNoPlan (NOT_BILLED_NO_PLAN): stored and metered, but the account had no price plan in effect at the
     event time; billed only if a plan is later attached from a time at or before it.
   - notBilled (NOT_BILLED_CYCLE_CLOSED): the day's billing period is already invoiced (DUE) and the plan's
     lateUsage is IGNORE: stored, never billed.
   - acceptedLate (ACCEPTED_LATE): the period is invoiced but the plan says BILL_ON_NEXT_INVOICE: billed on the
     account's next invoice as a late-usage line.
5. Check the day: get_metrics(startTime="{instant_text(start)}", endTime="{instant_text(end)}", metricQueries=[{{"id": "events",
   "name": "EVENTS", "aggregationPeriod": "HOUR", "groupBy": "EVENT_STATUS"{schema_filter}}}, {{"id": "usage",
   "name": "USAGE", "aggregationPeriod": "DAY", "groupBy": "USAGE_METER_ID"}}]) must match the source's counts
   and totals; list_events(status=...) shows examples.
6. A batch sent twice under NEW ids is counted twice: void_events(events=[{{"accountId": ..., "eventId": ...}}],
   reason=...) removes the extra ones (at most {MAX_VOIDS} per call, all or none, only in periods not yet invoiced).
For a large history file the CLI is faster: togai-engine import events FILE (JSON Lines or CSV, same rules)."""


def close_month(
    month: Annotated[str, Field(description="the billing month to close, YYYY-MM")],
    accountId: Annotated[str | None, Field(description="only this account (id or alias)")] = None,
) -> str:
    """Close a month's billing: which invoices are DUE and which are still DRAFT (and when they turn DUE), credits
    applied, what is owed, payments, corrections, and what happens to usage that arrives late."""
    start, end = parse_month(month)
    scope = f"accountId=\"{accountId}\", " if accountId else ""
    whose = f" for account {accountId}" if accountId else ""
    return f"""Close the billing of {month} (periods overlapping {instant_text(start)} to {instant_text(end)}, UTC){whose}.

{tools_line("list_invoices", "get_invoice", "get_wallet_balance", "list_wallet_entries", "get_metrics",
            "update_invoice_status", "create_credit_note", "list_events")}
Resources: togai://invoices/{{invoiceId}} (each invoice as a document).

How closing works here: every billing period has one invoice (invoiceType STANDARD; a plan with in-advance fees also
gets a STANDARD_ADVANCED invoice as it starts, DUE at once, for its first period's fees). It is DRAFT (recomputed from usage at every read)
until the period end plus the plan's gracePeriod (closesAt); then a bill run makes it DUE: amounts frozen, a
gapless number INV-nnnnnn, wallet credit applied (creditsApplied, in burn order), amountDue what is left. Bill runs
happen on every read of the account's invoices (list_invoices, get_invoice, get_account catch up first), in the
server's background and with `togai-engine bill`; nothing closes a period before its closesAt, and DUE invoices
never change.

1. list_invoices({scope}startTime="{instant_text(start)}", endTime="{instant_text(end)}"): DUE ones are closed; a DRAFT still open
   shows closesAt. Do not promise amounts of a DRAFT: they move until it closes.
2. For each DUE invoice: get_invoice(invoiceId) for the lines; totalAmount = subTotalAmount + trueUpAmount
   (minimum commitment); amountDue = totalAmount - creditsApplied - credit notes. get_wallet_balance and
   list_wallet_entries (APPLICATION entries) show which grants paid what.
3. Revenue check: get_metrics(startTime="{instant_text(start)}", endTime="{instant_text(end)}", metricQueries=[{{"id": "revenue",
   "name": "REVENUE", "aggregationPeriod": "MONTH", "groupBy": "ACCOUNT_ID"}}]). Summed over a DUE invoice's
   period REVENUE equals its totalAmount; VOID invoices count nothing.
4. Payments: update_invoice_status(invoiceId, status="PAID") when paid; "VOID" cancels a DUE invoice (credits applied
   to it go back to the wallet; an invoice with credit notes cannot be voided). Both are final; repeating the
   same change is a no-op.
5. Corrections after DUE: create_credit_note(invoiceId, reason, amount or lines, memo, idempotencyKey) - never edit
   the invoice. It lowers amountDue first; the rest (or all of it on a PAID invoice) becomes wallet credit.
6. Late usage: events dated in {month} that arrive after its invoice is DUE follow the period plan's lateUsage:
   IGNORE (default) stores them NOT_BILLED_CYCLE_CLOSED and never bills them; BILL_ON_NEXT_INVOICE stores them
   ACCEPTED_LATE and the account's next invoice carries a LATE_USAGE_AMOUNT line for {month}. list_events(status=
   "NOT_BILLED_CYCLE_CLOSED") and list_events(status="ACCEPTED_LATE") show them.
Report: per account, the invoice number, total, credits applied, amount due and status; DRAFTs with their
closesAt; and any late usage."""


def design_price_change(
    pricePlanId: Annotated[str, Field(description="the plan accounts are on today (pp_...)")],
    goal: Annotated[str | None, Field(description="what the change should achieve, e.g. 'cheaper above 1M tokens'")] = None,
    customerId: Annotated[str | None, Field(description="only this customer's accounts in the simulation")] = None,
) -> str:
    """Design a price change with the pricing lab: quote candidates, replay real usage under them against the
    current plan, then roll the winner out as a new plan."""
    target = f"customerId=\"{customerId}\"" if customerId else "accountIds=[<the accounts on the plan>]"
    aim = f" Goal: {goal}." if goal else ""
    finding = "" if customerId else (
        'The accounts on it: list_invoices(status="DRAFT") names each open invoice\'s pricePlanId (or omit '
        f"accountIds to replay every account and read the periods whose pricePlanId is {pricePlanId}). ")
    return f"""Design a price change for the accounts on plan {pricePlanId}.{aim} Nobody's bill changes until a new
plan is attached; quotes and simulations only read.

{tools_line("get_price_plan", "list_rate_cards", "calculate_revenue", "simulate_price_plan", "update_price_plan",
            "finalize_price_plan", "create_price_plan", "update_account", "get_metrics")}
Resources: {expand(PRICE_PLAN, pricePlanId)} (the current plan with its rate cards).

1. The plan today: get_price_plan(pricePlanId="{pricePlanId}"): usage cards (meter, TIERED or VOLUME slabs, rates per
   currency, minimumRate/maximumRate), fixed fees, entitlements, minimum commitment, cycle, lateUsage.
2. Usage today: get_metrics USAGE (groupBy ACCOUNT_ID, aggregationPeriod MONTH, filter USAGE_METER_ID) shows the
   volumes candidates must price well; REVENUE the current charges.
3. Draft candidates as inline plans in create_price_plan's shape ({{name, pricingCycleConfig, supportedCurrencies,
   rateCards}}; every currency the accounts are invoiced in needs a rate). Quote each on typical volumes:
   calculate_revenue(pricePlan=<inline plan>, usage={{"<usageMeterId>": "<quantity>"}}) returns each card, slab and
   the total, exactly as an invoice would.
4. Replay real usage: simulate_price_plan(candidates=["{pricePlanId}", <up to {MAX_CANDIDATES - 1} inline plans>],
   {target}, lastCycles=3) (at most {MAX_CANDIDATES} candidates; lastCycles up to {MAX_LAST_CYCLES}, or
   startTime/endTime; simulate_price_plan needs scopes plans:read and billing:read: it shows what accounts
   were charged). {finding}Keep "{pricePlanId}" as the control: it must reproduce what the accounts were charged to
   the cent; if it does not for some account and period, name them and trust no candidate's number there. Read
   the totals per candidate and currency, and the accounts with the largest increase and decrease. Accounts
   without a plan are skipped with the reason; a candidate lacking an account's currency is reported unsupported.
5. Recommend one candidate with numbers: total revenue change, how many accounts pay more and the worst case.
6. Roll out only when the user approves. For every account on the plan, make the winner its next version:
   update_price_plan(pricePlanId="{pricePlanId}", rateCards=<the winner's whole rateCards>) then
   finalize_price_plan(pricePlanId="{pricePlanId}", migrationMode="NEXT_CYCLE") (each account moves when its
   current cycle ends; the plan's cycle and its accounts' currencies must stay). For some accounts only:
   create_price_plan under a NEW name (or keep plans in git and run `togai-engine plans apply FILE`: it creates the
   plans the file has that do not exist yet), then update_account(accountId, pricePlanId=<new>,
   effectiveFrom=<the start of a next cycle>) per account. A mid-cycle change splits the period: each part pays
   its share of fixed fees and minimums."""


PROMPTS: list[tuple[Any, str]] = [
    (onboard_partner, "Onboard a partner (customer, account, plan)"),
    (audit_overage_claim, "Audit an overage claim"),
    (check_feature_rollout, "Check a feature rollout (who is entitled)"),
    (load_daily_usage, "Load a day's usage"),
    (close_month, "Close a month"),
    (design_price_change, "Design a price change with the pricing lab"),
]


def register_prompts(server: MCPServer[Any]) -> None:
    for fn, title in PROMPTS:
        server.prompt(name=fn.__name__, title=title, description=" ".join((fn.__doc__ or "").split()))(fn)

    async def check_arguments(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """prompts/get with an unknown name, an argument the prompt does not take or a required argument missing:
        the SDK answers those with a bare 'Internal server error'; say which field and how to fix it instead."""
        if ctx.method == "prompts/get" and ctx.request_id is not None:
            params = ctx.params or {}
            name = params.get("name")
            given = params.get("arguments") or {}
            if not isinstance(given, dict):
                raise MCPError(INVALID_PARAMS, "arguments: should be an object of argument names to strings")
            prompt = next((p for p in await server.list_prompts() if p.name == name), None)
            if prompt is None:
                raise MCPError(INVALID_PARAMS, f"name: no prompt named {quote(name)}; prompts/list names them")
            taken = [argument.name for argument in prompt.arguments or []]
            for sent in given:
                if sent not in taken:  # the prompt's function would fail on it: an 'Internal server error'
                    # the name is the caller's text: cut as a quoted value is, in the field's path too
                    raise MCPError(INVALID_PARAMS, shorten_echoes(f"arguments.{sent}: prompt {name} takes no argument "
                                                                  f"{quote(sent)}; it takes {', '.join(taken)}", sent))
            for argument in prompt.arguments or []:
                if argument.required and not isinstance(given.get(argument.name), str):
                    raise MCPError(INVALID_PARAMS, f"arguments.{argument.name}: required by prompt {name} "
                                                   f"({argument.description}); pass it as a string")
        return await call_next(ctx)

    server.middleware.append(check_arguments)
