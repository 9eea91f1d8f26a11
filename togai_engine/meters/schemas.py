"""Usage meter shapes (Togai field names)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from togai_engine.common.numbers import WholeNumber
from togai_engine.common.schemas import Model

Aggregation = Literal["COUNT", "SUM", "MAX", "UNIQUE_COUNT", "LATEST"]
NegativeValues = Literal["ALLOW", "REJECT"]
NEGATIVE_VALUES_DESCRIPTION = (
    "what ingestion does with an event whose value for this meter is negative: ALLOW (default) meters it as it "
    "is (e.g. a correction that lowers the quantity); REJECT rejects the event (code NEGATIVE_VALUE) and "
    "stores nothing of it. Only SUM, MAX and LATEST values can be negative"
)


class ComputationIn(Model):
    id: str | None = Field(default=None, max_length=50, description="optional label of this computation")
    matcher: str | dict[str, Any] | None = Field(
        default=None,
        description="JSON Logic condition over attributes.<name> / dimensions.<name>, e.g. "
        '{"==": [{"var": "dimensions.region"}, "eu"]}; absent = every event of the schema',
    )
    computation: str | dict[str, Any] | int | float | None = Field(
        default=None,
        description='the event\'s value: an attribute name ("tokens"), a JSON Logic expression '
        '({"*": [{"var": "attributes.tokens"}, 0.5]}), or "1" for COUNT. For UNIQUE_COUNT '
        'the value counted distinct, e.g. "dimensions.user_id"',
    )
    order: WholeNumber = Field(default=1, description="evaluation order; the first matching computation gives the value")


class Computation(Model):
    id: str | None = None
    matcher: str | None = None
    computation: str | None = None
    order: int


class UsageMeter(Model):
    id: str
    name: str
    billableName: str | None = None
    displayName: str
    description: str | None = None
    type: str = "COUNTER"
    status: str = "ACTIVE"
    aggregation: Aggregation
    computations: list[Computation]
    eventSchemaName: str
    negativeValues: NegativeValues = Field(default="ALLOW", description=NEGATIVE_VALUES_DESCRIPTION)
    createdAt: datetime
    updatedAt: datetime


class UsageMeterCreate(Model):
    id: str | None = None
    name: str
    eventSchemaName: str
    aggregation: str
    computations: list[ComputationIn] = Field(default_factory=list, max_length=50)
    billableName: str | None = None
    description: str | None = None
    negativeValues: str = "ALLOW"
