"""Transcripts of the sandbox equivalence property (test_sandbox_equivalence.py): what a world answered, read
through the MCP client, with what legitimately differs between worlds taken out (generated ids become labels,
columns stamped with the instant of the call or run that wrote them go) and every amount kept; and where two
transcripts differ, one readable line per place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mcp import Client
from sqlalchemy import text

from equivalence_scenarios import iso
from helpers import call
from togai_engine.store.database import Database


@dataclass
class Transcript:
    answers: list[tuple[str, Any]]  # (step, its answer), every step but the advances
    final: dict[str, Any]  # per account: invoices, account, wallet, ledger, entitlements


async def answer(client: Client, tool: str, **arguments: Any) -> Any:
    """A step's answer: the tool's result, or its error (refusals must match across worlds too)."""
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        return {"error": result.content[0].text}
    return result.structured_content


async def account_state(client: Client, account: str) -> dict[str, Any]:
    listed = await call(client, "list_invoices", accountId=account, pageSize=100)
    assert listed.get("nextToken") is None, "more than 100 invoices: read the next page"
    invoices = [await call(client, "get_invoice", invoiceId=i["id"]) for i in listed["data"]]
    entries: list[dict[str, Any]] = []
    token = None
    while True:
        page = await call(client, "list_wallet_entries", accountId=account, pageSize=100,
                          **({"nextToken": token} if token else {}))
        entries += page["data"]
        if not (token := page.get("nextToken")):
            break
    # The ledger's order of appends may differ (one run issues several cycles' grants at once, where runs
    # at each instant issue them one by one): compare the entries by what they are, not by position.
    for entry in entries:
        assert entry["reversesEntryId"] is None, "no step voids an invoice: no REVERSAL expected"
    return {
        "invoices": sorted(invoices, key=lambda i: i["startDate"]),
        "account": await call(client, "get_account", accountId=account),
        "wallet": await answer(client, "get_wallet_balance", accountId=account),
        "ledger": sorted(entries, key=lambda e: (e["at"], e["kind"], e["amount"], e["grantId"],
                                                 e["invoiceId"] or "")),
        "entitlements": await call(client, "get_entitlements", accountId=account),
    }


ID = re.compile(r"\b(?:pp|inv|grant|um|cn|mt|cust)_[0-9a-f]{16}\b")
# Columns stamped with the instant of the run or call that wrote them, which differ between worlds by design:
# an invoice DUE at 3 Feb is closed by the run at 3 Feb in a running server, by the advance to 10 Feb in a
# sandbox (invoiceDate, the billed instant, is the same: its due_at). Nothing here is money.
WALL_CLOCK = {"statusUpdatedAt", "createdAt", "updatedAt", "recordedAt", "id"}


async def id_labels(db: Database) -> dict[str, str]:
    """Generated ids -> what they name, the same in every world."""
    async with db.unit_of_work() as session:
        plans_ = await session.execute(text("SELECT id, 'plan ' || name FROM price_plans"))
        meters = await session.execute(text("SELECT id, 'meter ' || name FROM usage_meters"))
        invoices = await session.execute(text(
            "SELECT id, 'invoice ' || account_id || ' ' || to_char(period_start AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN invoice_type = 'STANDARD' THEN '' ELSE ' advance' END "
            "FROM invoices"))
        notes = await session.execute(text("SELECT id, 'credit note ' || sequence_number FROM credit_notes"))
        grants = await session.execute(text(
            "SELECT id, account_id, source, idempotency_key, grantor_id, effective_from FROM credit_grants"))
        labels = {row[0]: row[1] for rows in (plans_, meters, invoices, notes) for row in rows}
        for grant_id, account, source, key, grantor, begins in grants:
            labels[grant_id] = f"grant {account} {source} {key or ''}{grantor or ''} from {iso(begins)}"
    # a rate-card grant's grantor names its plan by id
    return {k: ID.sub(lambda m: labels.get(m.group(0), m.group(0)), v) for k, v in labels.items()}


def normal(value: Any, labels: dict[str, str]) -> Any:
    if isinstance(value, dict):  # ids are keys too (a late usage line's quantities by meter)
        return {normal(k, labels): normal(v, labels) for k, v in value.items()
                if k not in WALL_CLOCK and k != "sandbox"}
    if isinstance(value, list):
        return [normal(v, labels) for v in value]
    if isinstance(value, str):
        return ID.sub(lambda m: labels.get(m.group(0), "<unknown id>"), value)
    return value


def differences(left: Any, right: Any, path: str = "") -> list[str]:
    """Where two normalised transcripts differ, one line per place: `path: left != right`."""
    if isinstance(left, dict) and isinstance(right, dict):
        found: list[str] = []
        for key in sorted(set(left) | set(right), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in left or key not in right:
                found.append(f"{where}: {left.get(key, '<absent>')!r} != {right.get(key, '<absent>')!r}")
            else:
                found += differences(left[key], right[key], where)
        return found
    if isinstance(left, list) and isinstance(right, list):
        found = [line for n, (a, b) in enumerate(zip(left, right, strict=False))
                 for line in differences(a, b, f"{path}[{n}]")]
        if len(left) != len(right):
            found.append(f"{path}: {len(left)} items != {len(right)} items; the extra ones: "
                         f"{left[len(right):] or right[len(left):]!r}")
        return found
    return [] if left == right else [f"{path}: {left!r} != {right!r}"]


def compare(first: str, a: Transcript, second: str, b: Transcript) -> list[str]:
    found = []
    for (step, answer_a), (_, answer_b) in zip(a.answers, b.answers, strict=True):
        found += differences(answer_a, answer_b, f"answer to {step}")
    found += differences(a.final, b.final, "at the end")
    return [f"{first} vs {second}: {line}" for line in found]


def coverage(transcript: Transcript) -> list[str]:
    """What a transcript exercised, for hypothesis' statistics (--hypothesis-show-statistics)."""
    invoices = [i for state in transcript.final.values() for i in state["invoices"]]
    entries = [e for state in transcript.final.values() for e in state["ledger"]]
    found = [f"DUE invoices: {min(sum(i['status'] == 'DUE' for i in invoices), 5)}+"]
    found += [f"ingest {a['status']}" for s, a in transcript.answers if s.startswith("Ingest") and "status" in a]
    found += [f"{s.split('(')[0]} refused" for s, a in transcript.answers if "error" in a]
    found += [f"ledger {kind}" for kind in sorted({e["kind"] for e in entries})]
    found += ["credits applied" for i in invoices if i["creditsApplied"] not in (None, "0.00")][:1]
    found += ["late usage line" for i in invoices for line in i["lineItems"] if line["type"] == "LATE_USAGE_AMOUNT"][:1]
    found += ["a period cut by a change" for state in transcript.final.values()
              for a, b in zip(state["invoices"], state["invoices"][1:], strict=False)
              if a["pricePlanName"] != b["pricePlanName"]][:1]
    return found
