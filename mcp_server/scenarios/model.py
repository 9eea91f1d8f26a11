"""The shape of a scenario file (README.md here describes it for users). Unknown keys are errors."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _as_written(value: Any) -> Any:
    """An expected amount or quantity as the text the engine must return. A quoted string is taken as is; an
    unquoted number keeps the digits written (the loader reads YAML floats as Decimal), so `71.00` is "71.00"."""
    if isinstance(value, bool):
        raise ValueError('write it as a quoted decimal string, e.g. "71.00"; got a boolean')
    if isinstance(value, int | Decimal):
        return str(value)
    return value


Exact = Annotated[str, BeforeValidator(_as_written)]
InvoiceStatus = Literal["DRAFT", "DUE", "PAID", "VOID"]


class LineExpect(Strict):
    """A top-level invoice line, named by its rate card name (the description for a line without one)."""

    name: str
    amount: Exact | None = None
    quantity: Exact | None = None
    description: str | None = None


class InvoiceExpect(Strict):
    status: InvoiceStatus | None = None
    plan: str | None = Field(default=None, description="the price plan's name")
    end: str | None = Field(default=None, description="the period's end, named as periods are")
    total: Exact | None = None
    subTotal: Exact | None = None
    trueUp: Exact | None = None
    creditsApplied: Exact | None = None
    amountDue: Exact | None = None
    creditNotesTotal: Exact | None = None
    lines: list[LineExpect] | None = None


class WalletExpect(Strict):
    balance: Exact | None = None
    availableBalance: Exact | None = None
    accruedCharges: Exact | None = None
    scheduledCredits: Exact | None = None
    overage: bool | None = None


class EntitlementExpect(Strict):
    """check_entitlement's arguments (accountId, featureId, quantity) and the answer's fields to compare."""

    accountId: str
    featureId: str
    quantity: Exact | None = None
    entitled: bool | None = None
    reason: Literal["ENTITLED", "NO_ACTIVE_PLAN", "FEATURE_NOT_IN_PLAN", "LIMIT_REACHED",
                    "ACCOUNT_ARCHIVED"] | None = None
    used: Exact | None = None
    limit: Exact | None = None
    remaining: Exact | None = None


# per query id: {bucket: value}, or with groupBy {group value: {bucket: value}}
MetricValues = dict[str, dict[str, Exact | dict[str, Exact]]]


class MetricExpect(Strict):
    """get_metrics' arguments and the values expected per query id, bucket (and group)."""

    startTime: str
    endTime: str
    metricQueries: list[dict[str, Any]] = Field(min_length=1)
    values: MetricValues


class Expectations(Strict):
    invoices: dict[str, dict[str, InvoiceExpect]] = Field(default_factory=dict)
    wallets: dict[str, WalletExpect] = Field(default_factory=dict)
    entitlements: list[EntitlementExpect] = Field(default_factory=list)
    metrics: list[MetricExpect] = Field(default_factory=list)


class Setup(Strict):
    pricing: str | None = Field(default=None, description="a `plans apply` file, relative to the scenario file")
    meters: list[dict[str, Any]] = Field(default_factory=list)
    plans: list[dict[str, Any]] = Field(default_factory=list)
    customers: list[dict[str, Any]] = Field(default_factory=list)
    accounts: list[dict[str, Any]] = Field(default_factory=list)


class Step(Strict):
    at: str | None = None
    advance: str | None = None
    events: list[dict[str, Any]] = Field(default_factory=list)
    eventsFile: str | None = None
    do: list[dict[str, dict[str, Any] | None]] = Field(default_factory=list)
    expect: Expectations | None = None
    expectError: str | None = Field(default=None, min_length=1)


class Scenario(Strict):
    scenario: str = Field(min_length=1)
    start: str
    setup: Setup = Field(default_factory=Setup)
    steps: list[Step] = Field(default_factory=list)
    expect: Expectations | None = None
