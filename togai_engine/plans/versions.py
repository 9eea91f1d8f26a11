"""Plan versions (Togai's PricePlanV2 `version` and `status`): the DRAFT of the next version and its activation.

Version 1 is what create_price_plan stored, ACTIVE at once. `save_draft` writes version n+1 as the plan's one
DRAFT (a second update replaces it); `activate_draft` makes it ACTIVE. ACTIVE versions never change; which
accounts move to a new version is the app layer's migration (app/plan_versions.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.common.locks import advisory_lock_sql
from togai_engine.common.schemas import Model
from togai_engine.errors import InvalidInput, NotFound
from togai_engine.plans.models import PricePlanRow, PricePlanVersionRow
from togai_engine.plans.schemas import (
    LATE_USAGE_DESCRIPTION,
    LateUsagePolicy,
    PricePlan,
    PricePlanCreate,
    PricingCycleConfigInput,
    PricingRule,
    RateCards,
)
from togai_engine.plans.service import get_plan, get_version, version_plan

MigrationMode = Literal["IMMEDIATE", "IMMEDIATE_IGNORE_OVERRIDE", "NEXT_CYCLE", "NEXT_CYCLE_IGNORE_OVERRIDE",
                        "START_OF_CURRENT_CYCLE", "NONE"]


class PlanVersionUpdate(Model):
    """The editable content of a new version: rateCards is the whole new set; the rest default to the latest
    ACTIVE version's."""

    rateCards: RateCards
    pricingCycleConfig: PricingCycleConfigInput | None = None
    supportedCurrencies: list[str] | None = Field(default=None, min_length=1, max_length=20)
    description: str | None = Field(default=None, max_length=255)
    lateUsage: LateUsagePolicy | None = Field(default=None, description=LATE_USAGE_DESCRIPTION)
    pricingRules: list[PricingRule] | None = None


class PlanVersionInfo(Model):
    version: int
    status: Literal["ACTIVE", "DRAFT"]
    createdAt: datetime
    finalizedAt: datetime | None = None
    migrationMode: MigrationMode | None = Field(default=None, description="how accounts moved when it was finalized")


class PricePlanWithVersions(PricePlan):
    """One version of a plan (get_price_plan's `version`), with every version's status."""

    versions: list[PlanVersionInfo] = Field(default_factory=list)


class MigratedAccount(Model):
    accountId: str
    fromVersion: int
    effectiveFrom: datetime = Field(description="the instant it is priced by the new version from")
    billingProblem: str | None = Field(default=None, description=(
        "null when its bill run bills it; else the run's failure, before the move (the finalize closes its due "
        "periods first: it was then moved as its stored billing progress stood) and/or after it, and what that "
        "leaves uninvoiced (get_account's financial.billingProblem names it too)"))


class SkippedAccount(Model):
    accountId: str
    reason: str


class FinalizeResult(Model):
    pricePlanId: str
    version: int
    status: Literal["ACTIVE"] = "ACTIVE"
    migrationMode: MigrationMode
    migratedAccounts: list[MigratedAccount] = Field(default_factory=list)
    skippedAccounts: list[SkippedAccount] = Field(default_factory=list)


PLAN_LOCK_CLASS = 0x706C616E  # "plan": the key space of lock_plan's and hold_plan's locks


async def lock_plan(session: AsyncSession, plan_id: str) -> PricePlanRow:
    """The plan's lock, exclusive: version changes of one plan run one at a time, and an attach of the plan (which
    holds it shared: hold_plan) waits for them as they wait for attaches under way, so a finalize's accounts on the
    plan are all its accounts (app/plan_versions.py). Before any account lock (billing README, "Lock order").

    An advisory lock, not a row lock on price_plans: every invoice and association written for the plan checks its
    foreign key with FOR KEY SHARE on that row, so a close of an account on the plan (holding the account's lock
    and fence, maybe the invoice counter) waited for a finalize that waited for that account's lock."""
    await session.execute(text(advisory_lock_sql(PLAN_LOCK_CLASS, ":plan", exclusive=True)), {"plan": plan_id})
    row = await session.scalar(select(PricePlanRow).where(PricePlanRow.id == plan_id))
    if row is None:
        raise NotFound(f"pricePlanId: price plan {plan_id!r} does not exist; list_price_plans shows the ids")
    return row


async def hold_plan(session: AsyncSession, plan_id: str) -> None:
    """The plan's lock, shared, until the transaction ends: taken by a call that attaches the plan, before the
    account's lock (billing README, "Lock order"), so it waits for a finalize of the plan under way (and then
    attaches the version that finalize made ACTIVE) and a finalize waits for it (and then migrates the account)."""
    await session.execute(text(advisory_lock_sql(PLAN_LOCK_CLASS, ":plan", exclusive=False)), {"plan": plan_id})


async def draft_row(session: AsyncSession, plan_id: str) -> PricePlanVersionRow | None:
    return await session.scalar(select(PricePlanVersionRow).where(
        PricePlanVersionRow.plan_id == plan_id, PricePlanVersionRow.status == "DRAFT"))


def next_content(base: PricePlan, update: PlanVersionUpdate) -> PricePlanCreate:
    return PricePlanCreate(
        name=base.name,
        description=update.description if update.description is not None else base.description,
        pricingCycleConfig=update.pricingCycleConfig or base.pricingCycleConfig,
        supportedCurrencies=update.supportedCurrencies or base.supportedCurrencies,
        rateCards=update.rateCards,
        lateUsage=update.lateUsage or base.lateUsage,
        pricingRules=update.pricingRules if update.pricingRules is not None else base.pricingRules,
    )


async def save_draft(session: AsyncSession, plan_id: str, content: PricePlanCreate, now: datetime) -> PricePlan:
    """Writes `content` (validated) as the plan's DRAFT: replaces the DRAFT there is, else version n+1.
    The caller holds lock_plan."""
    definition = content.model_dump(mode="json", exclude_none=True)
    row = await draft_row(session, plan_id)
    if row is None:
        latest = await session.scalar(select(func.max(PricePlanVersionRow.version))
                                      .where(PricePlanVersionRow.plan_id == plan_id))
        row = PricePlanVersionRow(plan_id=plan_id, version=(latest or 0) + 1, status="DRAFT",
                                  definition=definition, created_at=now)
        session.add(row)
    else:
        row.definition = definition
        row.created_at = now
    await session.flush()
    return version_plan(row)


async def require_draft(session: AsyncSession, plan_id: str) -> PricePlanVersionRow:
    row = await draft_row(session, plan_id)
    if row is None:
        raise InvalidInput("pricePlanId", f"price plan {plan_id!r} has no DRAFT version to finalize; "
                                          "update_price_plan drafts the next version")
    return row


async def activate_draft(session: AsyncSession, plan_id: str, mode: MigrationMode, now: datetime) -> PricePlan:
    """The plan's DRAFT, now ACTIVE. The caller holds lock_plan."""
    row = await require_draft(session, plan_id)
    row.status = "ACTIVE"
    row.finalized_at = now
    row.migration_mode = mode
    await session.flush()
    # parsed from the row, not taken from the cache: a call that activated this version and then rolled back (an
    # unexpected error) may have cached the content its DRAFT had then
    return version_plan(row, fresh=True)


async def list_versions(session: AsyncSession, plan_id: str) -> list[PlanVersionInfo]:
    rows = await session.scalars(select(PricePlanVersionRow).where(PricePlanVersionRow.plan_id == plan_id)
                                 .order_by(PricePlanVersionRow.version))
    return [PlanVersionInfo(version=r.version, status=r.status,  # type: ignore[arg-type]
                            createdAt=r.created_at, finalizedAt=r.finalized_at,
                            migrationMode=r.migration_mode)  # type: ignore[arg-type]
            for r in rows]


async def plan_with_versions(session: AsyncSession, plan_id: str, version: str | int | None) -> PricePlanWithVersions:
    """`version`: ACTIVE (default: the latest ACTIVE, what attaching gives), LATEST (the DRAFT when there is
    one) or a number."""
    chosen = "ACTIVE" if version is None else version
    plan = await get_plan(session, plan_id)
    versions = await list_versions(session, plan_id)
    if isinstance(chosen, str) and chosen.strip().upper() == "LATEST":
        draft = await draft_row(session, plan_id)
        if draft is not None:
            plan = version_plan(draft)
    elif not (isinstance(chosen, str) and chosen.strip().upper() == "ACTIVE"):
        number = _version_number(chosen)
        plan = await get_version(session, plan_id, number)
    return PricePlanWithVersions(**dict(plan), versions=versions)


def _version_number(value: str | int) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise InvalidInput("version", f"give LATEST, ACTIVE or a version number 1, 2, ...; got {value!r}")
    return int(text)
