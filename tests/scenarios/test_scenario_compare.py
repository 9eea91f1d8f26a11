"""Comparing expectations with what the engine said (no database): only what is written is compared, an
account's invoices and a written lines list in full, values as text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mcp_server.scenarios.compare import compare
from mcp_server.scenarios.model import Expectations
from mcp_server.scenarios.observe import Observation


def invoice(start: datetime, **fields: Any) -> dict[str, Any]:
    return {"start": start, "period": start.date().isoformat(), "status": "DUE", "plan": "Pro", "total": "71.00",
            "end": "2026-02-01", "amountDue": "71.00",
            "lines": [{"name": "tokens", "amount": "52.00", "quantity": "520000", "description": "Tokens"},
                      {"name": "base", "amount": "19.00", "quantity": "1", "description": "Base fee"}]} | fields


JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)


def differences(expected: dict[str, Any], seen: Observation) -> list[str]:
    return [d.render("s.yaml") for d in compare(("expect",), Expectations.model_validate(expected), seen)]


def test_only_written_keys_are_compared_and_as_text() -> None:
    seen = Observation(invoices={"acme": [invoice(JAN)]})
    assert differences({"invoices": {"acme": {"2026-01-01": {"total": "71.00"}}}}, seen) == []
    assert differences({"invoices": {"acme": {"2026-01-01": {"total": "71.0", "end": "2026-02-01T00:00:00Z"}}}},
                       seen) == ['s.yaml › expect › invoices › acme › 2026-01-01 › total: expected "71.0", got "71.00"']


def test_an_accounts_invoices_and_a_written_lines_list_are_compared_in_full() -> None:
    seen = Observation(invoices={"acme": [invoice(JAN), invoice(FEB, status="DRAFT")]})
    lines = [{"name": "base", "amount": "19.00"}, {"name": "seats", "amount": "5.00"}]
    assert differences({"invoices": {"acme": {"2026-01-01": {"lines": lines}, "2026-03-01": {}}}}, seen) == [
        "s.yaml › expect › invoices › acme › 2026-01-01 › lines › seats: expected this line; the invoice has none "
        "of that name (its lines: tokens, base)",
        's.yaml › expect › invoices › acme › 2026-01-01 › lines › tokens: unexpected line (amount "52.00"): a '
        "written lines list names every line of the invoice",
        "s.yaml › expect › invoices › acme › 2026-03-01: expected an invoice for this period; acme has none (its "
        "periods: 2026-01-01, 2026-02-01)",
        's.yaml › expect › invoices › acme › 2026-02-01: unexpected invoice (DRAFT, total "71.00"): list every '
        "invoice of an account you expect (--update-golden adds it)",
    ]
    swapped = [{"name": "base"}, {"name": "tokens", "quantity": "520000"}]
    assert differences({"invoices": {"acme": {"2026-01-01": {"lines": swapped}, "2026-02-01": {}}}}, seen) == [
        "s.yaml › expect › invoices › acme › 2026-01-01 › lines: expected the lines in the order base, tokens; "
        "the invoice has tokens, base"]


def test_wallets_entitlements_and_metrics() -> None:
    seen = Observation(
        wallets={"acme": {"balance": "30.00", "overage": False}, "nobody": "could not be read: no account"},
        entitlements=[{"entitled": False, "reason": "LIMIT_REACHED", "used": "80000"}],
        metrics=[{"calls": {"": {"2026-01-01": "12"}}, "revenue": {"acme": {"2026-01-01": "19.00"}}}])
    expected = {
        "wallets": {"acme": {"balance": "30.00", "overage": True}, "nobody": {"balance": "0.00"}},
        "entitlements": [{"accountId": "acme", "featureId": "f", "entitled": True, "used": "80000"}],
        "metrics": [{"startTime": "2026-01-01", "endTime": "2026-02-01", "metricQueries": [{"id": "calls"}],
                     "values": {"calls": {"2026-01-01T00:00:00Z": "12", "2026-01-02": "1"},
                                "revenue": {"acme": {"2026-01-01": "19.0"}}, "other": {"2026-01-01": "1"}}}],
    }
    assert differences(expected, seen) == [
        "s.yaml › expect › wallets › acme › overage: expected true, got false",
        "s.yaml › expect › wallets › nobody: could not be read: no account",
        "s.yaml › expect › entitlements[0] › entitled: expected true, got false",
        's.yaml › expect › metrics[0] › values › calls › 2026-01-02: expected "1"; the series has no bucket '
        "starting then (its buckets: 2026-01-01)",
        's.yaml › expect › metrics[0] › values › revenue › acme › 2026-01-01: expected "19.0", got "19.00"',
        "s.yaml › expect › metrics[0] › values › other: no query has this id (the ids: calls, revenue)",
    ]


def test_a_value_written_as_null_expects_null() -> None:
    """A field written `null` is compared too: --update-golden writes null where the engine says null (the total
    of a DRAFT that cannot be computed, the limit of an unlimited feature), and such an expectation must fail once
    the engine says a value, not pass whatever it says."""
    seen = Observation(
        invoices={"acme": [invoice(JAN, trueUp=None)]},
        wallets={"acme": {"balance": "30.00", "accruedCharges": None}},
        entitlements=[{"entitled": True, "reason": "ENTITLED", "used": "10", "limit": "1000", "remaining": "990"}])
    expected = {
        "invoices": {"acme": {"2026-01-01": {"total": None, "trueUp": None,
                                             "lines": [{"name": "tokens", "quantity": None}, {"name": "base"}]}}},
        "wallets": {"acme": {"balance": None, "accruedCharges": None}},
        "entitlements": [{"accountId": "acme", "featureId": "f", "limit": None}],
    }
    assert differences(expected, seen) == [
        's.yaml › expect › invoices › acme › 2026-01-01 › total: expected null, got "71.00"',
        's.yaml › expect › invoices › acme › 2026-01-01 › lines › tokens › quantity: expected null, got "520000"',
        's.yaml › expect › wallets › acme › balance: expected null, got "30.00"',
        's.yaml › expect › entitlements[0] › limit: expected null, got "1000"',
    ]
