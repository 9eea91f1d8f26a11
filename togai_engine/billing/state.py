"""Loading what billing needs about many accounts in a few array queries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.billing.schedule import Association, Timeline, account_timeline
from togai_engine.cycles import run_starts
from togai_engine.plans.overrides import PlanRef, ResolvedPlans, effective_plans, plan_ref
from togai_engine.plans.schemas import PricePlan
from togai_engine.store.database import raw_connection


async def transaction_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under `session`, inside the session's transaction.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily with its first statement: a raw statement sent
    before that would run in autocommit, and its FOR UPDATE locks would vanish at once.
    """
    conn = await raw_connection(session)
    if not conn.is_in_transaction():
        await session.execute(text("SELECT 1"))
    return conn


@dataclass
class AccountState:
    id: str
    customer_id: str
    currency: str
    net_term_days: int
    billed_until: datetime | None = None
    associations: list[Association] = field(default_factory=list)
    billed_due: datetime | None = None  # the invoice date of the period ending at billed_until (its due instant)

    def timeline(self, plans: dict[str, PricePlan], now: datetime) -> Timeline:
        return account_timeline(self.associations, plans, self.billed_until, now, self.billed_due)

    def association_at(self, instant: datetime) -> Association | None:
        for association in self.associations:
            if association.effective_from <= instant and (
                association.effective_until is None or instant < association.effective_until
            ):
                return association
        return None


async def load_states(
    session: AsyncSession, account_ids: Sequence[str], conn: Any | None = None
) -> tuple[dict[str, AccountState], ResolvedPlans]:
    """Accounts (with a plan or not), their billing progress and associations, and the plans they use keyed
    by `Association.plan_key` (each association's version with its overrides). An account's deal that cannot be
    applied raises why only where its plan is looked up (ResolvedPlans): inside that account's guard."""
    await session.flush()
    conn = conn or await transaction_connection(session)
    ids = sorted(set(account_ids))
    states = {
        r["id"]: AccountState(r["id"], r["customer_id"], r["invoice_currency"], r["net_term_days"], r["billed_until"])
        for r in await conn.fetch(
            "SELECT a.id, a.customer_id, a.invoice_currency, a.net_term_days, b.billed_until FROM accounts a "
            "LEFT JOIN account_billing b ON b.account_id = a.id WHERE a.id = ANY($1::text[])", ids)
    }
    billed = [(state.id, state.billed_until) for state in states.values() if state.billed_until is not None]
    if billed:
        # the last invoiced period's due instant, which the next period's waits for (billing README): a plan
        # attached after it was invoiced starts past billed_until, where the timeline no longer walks it
        for r in await conn.fetch(
                "SELECT account_id, invoice_date FROM invoices WHERE invoice_type = 'STANDARD' AND status <> 'DRAFT' "
                "AND (account_id, period_end) IN (SELECT * FROM unnest($1::text[], $2::timestamptz[]))",
                [a for a, _ in billed], [until for _, until in billed]):
            states[r["account_id"]].billed_due = r["invoice_date"]
    refs: dict[PlanRef, Any] = {}
    for r in await conn.fetch(
        "SELECT id, account_id, price_plan_id, effective_from, effective_until, anchor, version, "
        "rate_card_overrides::text AS rate_card_overrides FROM plan_associations WHERE account_id = ANY($1::text[]) "
        "ORDER BY account_id, effective_from", ids,
    ):
        overrides = _json(r["rate_card_overrides"])
        states[r["account_id"]].associations.append(Association(
            r["id"], r["account_id"], r["price_plan_id"], r["effective_from"], r["effective_until"], r["anchor"],
            r["version"], bool(overrides)))
        refs[plan_ref(r["price_plan_id"], r["version"], r["id"], overrides, r["account_id"])] = overrides
    for state in states.values():
        runs = run_starts([(a.plan_id, a.effective_from, a.effective_until) for a in state.associations])
        covered = run_starts([("", a.effective_from, a.effective_until) for a in state.associations])
        state.associations[:] = [replace(a, plan_since=since, usage_since=begun)
                                 for a, since, begun in zip(state.associations, runs, covered, strict=True)]
    return states, await effective_plans(session, refs)


def _json(value: str | None) -> Any:
    """jsonb selected as its text, parsed here: SQLAlchemy's connections decode jsonb and a bare asyncpg one does
    not, so a str fetched as jsonb could be either (a hand-edited deal stored as a JSON string failed every run)."""
    return None if value is None else json.loads(value)
