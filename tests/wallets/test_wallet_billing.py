"""The wallet inside billing: plan credit grants, real-time balance against accrued charges, credits
applied when an invoice becomes DUE, and given back when it is voided — all through the MCP tools."""

from __future__ import annotations

from typing import Any

from helpers import at, call, call_error


async def _setup(client: Any) -> None:
    meter = await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                       computations=[{"computation": "tokens"}])
    plan = await call(client, "create_price_plan", name="Credits", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 3},
        rateCards={
            "usageRateCards": [{"usageMeterId": meter["id"], "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
                "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}]}]}],
            "creditGrantRateCards": [{"name": "monthly", "grantDetails": {"priority": 1, "expiryType": "PRICING_CYCLE"},
                                      "rateDetails": {"currencySlabRateDetails": [
                                          {"currency": "USD", "creditAmount": "20"}]}}],
        })
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z"})


async def _tokens(client: Any, event_id: str, when: str, tokens: int) -> None:
    await call(client, "ingest_event", event={"id": event_id, "schemaName": "llm", "timestamp": when,
                                              "accountId": "acme", "attributes": {"tokens": str(tokens)}})


async def test_credits_across_a_billing_cycle(client, clock):
    await _setup(client)
    await call(client, "grant_credit", accountId="acme", amount="50.00", priority=5, purpose="PREPAID_CREDIT",
               idempotencyKey="prepaid-1")
    clock.set(at(2026, 1, 15))
    await _tokens(client, "e1", "2026-01-10T00:00:00Z", 3000)
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    # Plan credit 20.00 (January) + prepaid 50.00 = 70.00; accrued 3000 × 0.01 = 30.00; available 40.00.
    assert (wallet["balance"], wallet["accruedCharges"], wallet["availableBalance"], wallet["overage"]) == (
        "70.00", "30.00", "40.00", False)
    assert [(g["grantorId"], g["remaining"], g["effectiveUntil"]) for g in wallet["grants"]] == [
        (wallet["grants"][0]["grantorId"], "20.00", "2026-02-01T00:00:00Z"), (None, "50.00", None)]
    assert wallet["grants"][0]["grantorId"].endswith(":monthly")

    await _tokens(client, "e2", "2026-01-20T00:00:00Z", 10000)
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    # Accrued 13000 × 0.01 = 130.00 > 70.00: available 70.00 - 130.00 = -60.00, shown as overage.
    assert (wallet["availableBalance"], wallet["overage"]) == ("-60.00", True)
    financial = (await call(client, "get_account", accountId="acme"))["financial"]
    assert financial["wallet"] == {"currency": "USD", "balance": "70.00", "availableBalance": "-60.00"}

    clock.set(at(2026, 2, 4))  # January's grace period ends: its invoice becomes DUE
    # listed before any other read: the bill run happens on this call, and its applications are listed
    first = await call(client, "list_wallet_entries", accountId="acme")
    assert sorted(e["amount"] for e in first["data"] if e["kind"] == "APPLICATION") == ["-20.00", "-50.00"]
    assert first["balance"] == "20.00"  # February's plan credit, untouched
    jan = next(i for i in (await call(client, "list_invoices", accountId="acme"))["data"] if i["status"] == "DUE")
    # 130.00 due. Burn order: priority 1 first — January's plan credit (expired 1 Feb, but valid through
    # January) 20.00 — then the prepaid 50.00 (priority 5): 70.00 applied, 60.00 left to pay. February's plan
    # credit (started 1 Feb, during January's grace period) pays only February.
    assert (jan["totalAmount"], jan["creditsApplied"], jan["amountDue"]) == ("130.00", "70.00", "60.00")
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    assert (wallet["balance"], wallet["accruedCharges"]) == ("20.00", "0.00")
    assert [(g["remaining"], g["effectiveFrom"]) for g in wallet["grants"]] == [("20.00", "2026-02-01T00:00:00Z")]

    voided = await call(client, "update_invoice_status", invoiceId=jan["id"], status="VOID")
    assert voided["status"] == "VOID"
    await call(client, "update_invoice_status", invoiceId=jan["id"], status="VOID")  # repeating is a no-op
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    # Given back once: the prepaid 50.00; January's 20.00 comes back expired and leaves again at once.
    # Balance 20.00 (February) + 50.00 = 70.00.
    assert wallet["balance"] == "70.00"
    assert sorted(g["remaining"] for g in wallet["grants"]) == ["20.00", "50.00"]

    # The ledger behind that balance, newest first (8 entries):
    # - prepaid: GRANT +50.00, APPLICATION -50.00 to January's invoice, REVERSAL +50.00 at the void;
    # - February's plan credit: GRANT +20.00 (1 Feb);
    # - January's plan credit: GRANT +20.00 (1 Jan); held through January's grace period (its expiry is not
    #   recorded while it may still pay January), it paid January's invoice: APPLICATION -20.00; at the
    #   void REVERSAL +20.00, which expires at once: EXPIRY -20.00. Its entries add up to 0.
    # 50 - 50 + 50 + 20 + 20 - 20 + 20 - 20 = 70.00, the balance.
    ledger = await call(client, "list_wallet_entries", accountId="acme", pageSize=100)
    entries = ledger["data"]
    assert (ledger["currency"], ledger["balance"], ledger["nextToken"]) == ("USD", "70.00", None)
    grant_of = {e["amount"]: e["grantId"] for e in entries if e["kind"] == "GRANT" and e["at"] == "2026-01-01T00:00:00Z"}
    january, prepaid = grant_of["20.00"], grant_of["50.00"]
    february = next(e["grantId"] for e in entries if e["kind"] == "GRANT" and e["at"] == "2026-02-01T00:00:00Z")
    name = {prepaid: "prepaid", january: "january", february: "february"}
    assert sorted((name[e["grantId"]], e["kind"], e["amount"], e["at"][:10]) for e in entries) == [
        ("february", "GRANT", "20.00", "2026-02-01"),
        ("january", "APPLICATION", "-20.00", "2026-02-04"), ("january", "EXPIRY", "-20.00", "2026-02-04"),
        ("january", "GRANT", "20.00", "2026-01-01"), ("january", "REVERSAL", "20.00", "2026-02-04"),
        ("prepaid", "APPLICATION", "-50.00", "2026-02-04"), ("prepaid", "GRANT", "50.00", "2026-01-01"),
        ("prepaid", "REVERSAL", "50.00", "2026-02-04")]
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    applications = {e["id"]: e for e in entries if e["kind"] == "APPLICATION"}
    assert {e["invoiceId"] for e in applications.values()} == {jan["id"]}
    reversed_ = {e["reversesEntryId"]: e for e in entries if e["kind"] == "REVERSAL"}
    assert set(reversed_) == set(applications)  # each application given back exactly once
    for application_id, reversal in reversed_.items():  # by the same grant and amount
        application = applications[application_id]
        assert (reversal["grantId"], reversal["amount"]) == (application["grantId"], application["amount"][1:])
    # pages of 4 give the same entries, without gap or repeat
    pages, token = [], None
    while True:
        page = await call(client, "list_wallet_entries", accountId="acme", pageSize=4,
                          **({"nextToken": token} if token else {}))
        pages.append(page["data"])
        token = page["nextToken"]
        if token is None:
            break
    assert [len(p) for p in pages] == [4, 4] and [e for p in pages for e in p] == entries
    await call(client, "create_customer", id="cust_other", name="Other", account={"id": "other", "name": "O"})
    first = await call(client, "list_wallet_entries", accountId="acme", pageSize=4)
    error = await call_error(client, "list_wallet_entries", accountId="other", nextToken=first["nextToken"])
    assert "nextToken" in error  # a token of acme's ledger is refused for another account
    assert "does not exist" in await call_error(client, "list_wallet_entries", accountId="nobody")


async def test_amounts_past_28_digits_stay_exact_on_the_invoice_the_wallet_the_note_and_revenue(client, clock):
    # A plan accepts a rate of up to 40 significant digits: a platform fee of 10^27 (28 digits) beside 0.01 per
    # token. 1 token in January: 0.01 + 1000000000000000000000000000.00 = 1000000000000000000000000000.01, 30
    # digits, which Python's default decimal context (28 digits) rounds to 10^27, dropping the cent.
    meter = await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                       computations=[{"computation": "tokens"}])
    plan = await call(client, "create_price_plan", name="Enterprise", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 3},
        rateCards={
            "usageRateCards": [{"name": "tokens", "usageMeterId": meter["id"], "ratePlan": {
                "pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
                "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}]}]}],
            "fixedFeeRateCards": [{"id": "platform", "invoiceTiming": "IN_ARREARS",
                                   "rateValues": [{"currency": "USD", "rate": "1000000000000000000000000000"}]}]})
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z"})
    await call(client, "grant_credit", accountId="acme", amount="2000000000000000000000000000.00", priority=5,
               purpose="PREPAID_CREDIT", idempotencyKey="prepaid-big")
    clock.set(at(2026, 1, 15))
    await _tokens(client, "e1", "2026-01-10T00:00:00Z", 1)

    wallet = await call(client, "get_wallet_balance", accountId="acme")
    # accrued: January's DRAFT, 1000000000000000000000000000.01; available 2 × 10^27 - that = 10^27 - 0.01
    assert (wallet["balance"], wallet["accruedCharges"], wallet["availableBalance"]) == (
        "2000000000000000000000000000.00", "1000000000000000000000000000.01", "999999999999999999999999999.99")

    clock.set(at(2026, 2, 4))  # January's grace period ends: DUE, paid from the wallet in full
    january = next(i for i in (await call(client, "list_invoices", accountId="acme"))["data"] if i["status"] == "DUE")
    january = await call(client, "get_invoice", invoiceId=january["id"])
    assert [line["value"] for line in january["lineItems"]] == ["0.01", "1000000000000000000000000000.00"]
    assert (january["totalAmount"], january["creditsApplied"], january["amountDue"]) == (
        "1000000000000000000000000000.01", "1000000000000000000000000000.01", "0.00")
    ledger = await call(client, "list_wallet_entries", accountId="acme")
    assert [(e["kind"], e["amount"]) for e in ledger["data"]] == [
        ("APPLICATION", "-1000000000000000000000000000.01"), ("GRANT", "2000000000000000000000000000.00")]
    # 2 × 10^27 - (10^27 + 0.01) = 10^27 - 0.01; February's DRAFT accrues its fee, 10^27: 0.01 short
    wallet = await call(client, "get_wallet_balance", accountId="acme")
    assert ledger["balance"] == wallet["balance"] == "999999999999999999999999999.99"
    assert (wallet["accruedCharges"], wallet["availableBalance"], wallet["overage"]) == (
        "1000000000000000000000000000.00", "-0.01", True)

    # A note crediting both lines in full: 0.01 + 10^27; nothing is owed, so all of it goes to the wallet
    result = await call(client, "create_credit_note", invoiceId=january["id"], reason="ORDER_CHANGE", lines=[
        {"rateCardName": "tokens", "amount": "0.01"},
        {"rateCardName": "platform", "amount": "1000000000000000000000000000.00"}])
    note = result["creditNote"]
    assert (note["amount"], note["creditedFromDue"], note["creditedToWallet"]) == (
        "1000000000000000000000000000.01", "0.00", "1000000000000000000000000000.01")
    assert (result["invoice"]["creditNotesTotal"], result["invoice"]["creditableAmount"]) == (
        "1000000000000000000000000000.01", "0.00")
    # 10^27 - 0.01 + 10^27 + 0.01 = 2 × 10^27, the grant again
    assert result["walletBalance"] == "2000000000000000000000000000.00"

    # REVENUE over January, one series: the invoice's totalAmount, to the cent
    revenue = await call(client, "get_metrics", startTime="2026-01-01T00:00:00Z", endTime="2026-02-01T00:00:00Z",
                         metricQueries=[{"id": "q", "name": "REVENUE", "aggregationPeriod": "MONTH"}])
    assert revenue["results"][0]["data"][0]["metricValues"] == ["1000000000000000000000000000.01"]
