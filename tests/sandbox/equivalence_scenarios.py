"""Scenarios of the sandbox equivalence property (test_sandbox_equivalence.py): a fixed set-up and steps.

The set-up: one meter, three plans (Metered: calendar months, 2 days of grace, tiers, a prorated fee, a
commitment, late usage billed next time, a metered and a boolean feature; Flat: months from the 15th, no
grace, volume pricing, a fee never prorated, 5.00 of credit each cycle; Weekly: weeks from Monday, 1 day of
grace, a card minimum, a ONE_TIME grant lasting 20 days) and three accounts at 2026-01-01 (a1 on Metered, a2
on Flat, a3 without a plan). Flat also has a prorated IN_ADVANCE fee and Weekly a ONE_TIME setup fee, so fees
invoiced a cycle ahead and credit notes for their unused share (a plan change or end after they are DUE) take part;
there are no seats. Steps: usage dated up to now, credit grants starting and expiring later, plan changes and
ends (scheduled, or back into an open period), entitlement checks, wallet reads and advances of the clock (by
hours, days, a month, or exactly onto the next cycle boundaries and grace ends). Every instant a step names is
fixed when it is drawn, so every world replays exactly the same calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from hypothesis import strategies as st
from mcp import Client

from conftest import START
from helpers import call
from togai_engine.common import validation
from togai_engine.common.durations import parse_duration

ACCOUNTS = ("a1", "a2", "a3")
FEATURES = ("tokens", "sso", "export")  # export is in no plan
HORIZON = START + relativedelta(months=24)  # far beyond any scenario's last instant


iso = validation.instant_text


def instant(value: str) -> datetime:
    return validation.parse_instant(value, "instant")


# --- the set-up -----------------------------------------------------------------------------------

def usage_card(meter_id: str, model: str, slabs: list[tuple[str, str]], **rate_config: str) -> dict[str, Any]:
    rate_value: dict[str, Any] = {"currency": "USD", "slabRates": [
        {"order": i, "rate": rate} for i, (_, rate) in enumerate(slabs, start=1)]}
    if rate_config:
        rate_value["rateConfig"] = rate_config
    return {"usageMeterId": meter_id, "ratePlan": {"pricingModel": model, "slabs": [
        {"order": i, "startAfter": after, "priceType": "PER_UNIT"} for i, (after, _) in enumerate(slabs, start=1)]},
        "rateValues": [rate_value]}


def feature(feature_id: str, limit: str | None = None, meter_id: str | None = None) -> dict[str, Any]:
    """A metered feature (a meter and its limit) or, with neither, a BOOLEAN one."""
    card: dict[str, Any] = {"featureId": feature_id}
    return card | ({"usageMeterId": meter_id, "featureConfigs": [{"featureCreditLimit": limit}]} if meter_id else {})


def credit_card(name: str, kind: str, amount: str, priority: int, **expiry: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "grantDetails": {"priority": priority, **expiry},
            "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": amount}]}}


def plans(meter_id: str) -> dict[str, dict[str, Any]]:
    """create_price_plan arguments by plan name."""
    return {
        # Calendar months, 2 days of grace; tiers, a prorated fee, a commitment, late usage billed next time.
        "Metered": {"pricingCycleConfig": {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"},
                                           "gracePeriod": 2},
                    "lateUsage": "BILL_ON_NEXT_INVOICE",
                    "rateCards": {
                        "usageRateCards": [usage_card(meter_id, "TIERED", [("0", "0.01"), ("1000", "0.005")])],
                        "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "20"}],
                                               "enableProration": True}],
                        "billingEntitlementRateCards": [feature("tokens", "3000", meter_id), feature("sso")],
                        "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "25"}]}}},
        # Months from the 15th, no grace; a fee never prorated, a prorated fee in advance, volume pricing, 5.00 of
        # credit each cycle.
        "Flat": {"pricingCycleConfig": {"interval": "MONTHLY", "startOffset": {"dayOffset": "15"},
                                        "gracePeriod": 0},
                 "rateCards": {
                     "usageRateCards": [usage_card(meter_id, "VOLUME", [("0", "0.002"), ("2000", "0.001")])],
                     "fixedFeeRateCards": [{"id": "base", "rateValues": [{"currency": "USD", "rate": "12"}]},
                                           {"id": "support", "rateValues": [{"currency": "USD", "rate": "6"}],
                                            "invoiceTiming": "IN_ADVANCE", "enableProration": True}],
                     "billingEntitlementRateCards": [feature("sso")],
                     "creditGrantRateCards": [credit_card("monthly", "RECURRING", "5.00", 1,
                                                          expiryType="PRICING_CYCLE")]}},
        # Weeks from Monday, 1 day of grace; a card minimum, a 3.00 setup fee, one 8.00 grant lasting 20 days.
        "Weekly": {"pricingCycleConfig": {"interval": "WEEKLY", "startOffset": {"dayOffset": "1"},
                                          "gracePeriod": 1},
                   "rateCards": {
                       "usageRateCards": [usage_card(meter_id, "TIERED", [("0", "0.003")], minimumRate="1.00")],
                       "fixedFeeRateCards": [{"id": "setup", "type": "ONE_TIME", "invoiceTiming": "IN_ADVANCE",
                                              "rateValues": [{"currency": "USD", "rate": "3"}]}],
                       "billingEntitlementRateCards": [feature("tokens", "1500", meter_id)],
                       "creditGrantRateCards": [credit_card("welcome", "ONE_TIME", "8.00", 0, expiryType="CUSTOM",
                                                            expiryDuration="P20D")]}},
    }


GRACE_DAYS = (0, 1, 2)  # the plans' grace periods


def calendar() -> set[datetime]:
    """Every cycle boundary and grace end of the three plans up to the horizon."""
    instants: set[datetime] = set()
    month = START
    while month < HORIZON:
        instants |= {month, month + timedelta(days=2), month.replace(day=15)}
        month += relativedelta(months=1)
    monday = datetime(2026, 1, 5, tzinfo=UTC)
    while monday < HORIZON:
        instants |= {monday, monday + timedelta(days=1)}
        monday += timedelta(days=7)
    return instants


CALENDAR = calendar()


async def set_up(client: Client) -> dict[str, str]:
    """The meter, the plans and the accounts (a1 on Metered, a2 on Flat from Jan 1, a3 without a plan);
    returns the plan ids by name."""
    meter = await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                       computations=[{"computation": "tokens"}])
    plan_ids = {name: (await call(client, "create_price_plan", name=name, **arguments))["id"]
                for name, arguments in plans(meter["id"]).items()}
    for account_id, plan in (("a1", "Metered"), ("a2", "Flat"), ("a3", None)):
        fields: dict[str, Any] = {"id": account_id, "name": account_id, "invoiceCurrency": "USD"}
        if plan:
            fields |= {"pricePlanId": plan_ids[plan], "effectiveFrom": iso(START)}
        await call(client, "create_customer", id=f"c_{account_id}", name="C", account=fields)
    return plan_ids


# --- steps ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Advance:
    to: str
    by: str | None = None  # the sandbox moves by this duration (else `to`), landing on `to`


@dataclass(frozen=True)
class Ingest:
    account: str
    event_id: str
    timestamp: str
    tokens: int


@dataclass(frozen=True)
class Grant:
    account: str
    key: str
    amount: str
    effective_from: str
    effective_until: str | None
    priority: int


@dataclass(frozen=True)
class ChangePlan:
    account: str
    plan: str
    effective_from: str


@dataclass(frozen=True)
class EndPlan:
    account: str
    effective_until: str


@dataclass(frozen=True)
class Check:
    account: str
    feature: str
    quantity: int


@dataclass(frozen=True)
class ReadWallet:
    account: str


@dataclass(frozen=True)
class Corrupt:
    """Data no policy covers (the account's currency changed under its plan behind the engine's back): its
    bill runs fail. Never drawn: the test that failures surface uses it."""

    account: str


Step = Advance | Ingest | Grant | ChangePlan | EndPlan | Check | ReadWallet | Corrupt


@dataclass(frozen=True)
class Scenario:
    steps: tuple[Step, ...]

    def passes(self, after: datetime, until: datetime) -> list[datetime]:
        """The background passes of the running server from `after` (excluded) to `until` (included): each
        cycle boundary and grace end (never more than six days apart), each instant a step names and the
        grace ends after it. (A pass costs ~15 ms: one every midnight too would double the test's time.)"""
        named: set[datetime] = set()
        for step in self.steps:
            if isinstance(step, Grant):
                named |= {instant(step.effective_from)} | ({instant(step.effective_until)}
                                                           if step.effective_until else set())
            elif isinstance(step, ChangePlan | EndPlan):
                at = instant(step.effective_from if isinstance(step, ChangePlan) else step.effective_until)
                named |= {at + timedelta(days=grace) for grace in GRACE_DAYS}
        return [*sorted(t for t in CALENDAR | named if after < t < until), until]


HOURS = st.integers(1, 24 * 40)
KINDS = ("advance",) * 4 + ("ingest",) * 4 + ("grant", "grant", "change", "change", "end", "check", "check",
                                                "wallet")


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Steps drawn with the time they happen at: every instant a step names is fixed here, so the worlds
    replay exactly the same calls."""
    now = START
    known = set(CALENDAR)
    steps: list[Step] = []
    for n in range(draw(st.integers(4, 16))):
        kind = draw(st.sampled_from(KINDS))
        account = draw(st.sampled_from(ACCOUNTS))
        if kind == "advance":
            how = draw(st.one_of(st.integers(1, 72).map(lambda h: f"PT{h}H"), st.integers(1, 20).map(lambda d: f"P{d}D"),
                                 st.just("P1M"), st.integers(1, 4)))
            if isinstance(how, int):  # exactly onto the next (second, third) boundary the scenario knows
                target, by = sorted(t for t in known if t > now)[how - 1], None
            else:
                target, by = now + parse_duration(how, "by"), how
            steps.append(Advance(iso(target), by))
            now = target
        elif kind == "ingest":
            back = timedelta(hours=draw(st.integers(0, 24 * 45)))
            steps.append(Ingest(account, f"e{n}", iso(max(START, now - back)), draw(st.integers(1, 2500))))
        elif kind == "grant":
            begins = now + timedelta(hours=draw(st.integers(0, 24 * 30)))
            lasts = draw(st.none() | HOURS)
            ends = None if lasts is None else begins + timedelta(hours=lasts)
            known |= {begins} | ({ends} if ends else set())
            cents = draw(st.integers(100, 4000))
            steps.append(Grant(account, f"g{n}", f"{cents // 100}.{cents % 100:02d}", iso(begins),
                               None if ends is None else iso(ends), draw(st.integers(0, 3))))
        elif kind in ("change", "end"):
            # from ten days back (a change inside an open period, or refused inside an invoiced one) to
            # forty ahead (a scheduled change), or exactly onto a boundary ahead
            how = draw(st.one_of(st.integers(-24 * 10, 24 * 40), st.sampled_from(("next", "second", "third"))))
            at = (sorted(t for t in known if t > now)[("next", "second", "third").index(how)] if isinstance(how, str)
                  else max(START, now + timedelta(hours=how)))
            known |= {at + timedelta(days=grace) for grace in GRACE_DAYS}
            steps.append(ChangePlan(account, draw(st.sampled_from(("Metered", "Flat", "Weekly"))), iso(at))
                         if kind == "change" else EndPlan(account, iso(at)))
        elif kind == "check":
            steps.append(Check(account, draw(st.sampled_from(FEATURES)), draw(st.integers(1, 3000))))
        else:
            steps.append(ReadWallet(account))
    # the last month closes and its grace ends, in every world
    steps.append(Advance(iso(now + parse_duration("P1M3D", "by")), "P1M3D"))
    return Scenario(tuple(steps))
