"""get_metrics shapes (Togai's GetMetricsRequest / GetMetricsResponse)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from togai_engine.common.schemas import Model

MetricName = Literal["EVENTS", "USAGE", "METER_USAGE", "REVENUE"]
AggregationPeriod = Literal["HOUR", "DAY", "WEEK", "MONTH"]


class MetricFilter(Model):
    fieldName: str = Field(description="ACCOUNT_ID, CUSTOMER_ID, SCHEMA_NAME or EVENT_STATUS (EVENTS); "
                                       "ACCOUNT_ID, CUSTOMER_ID or USAGE_METER_ID (USAGE, REVENUE)")
    fieldValues: list[str] = Field(min_length=1, max_length=100,
                                   description="the values to keep; ACCOUNT_ID takes account ids or aliases")


class MetricQuery(Model):
    id: str = Field(min_length=1, max_length=100, description="your label; echoed in the result")
    name: MetricName = Field(description="EVENTS (raw events stored), USAGE (meter quantities), REVENUE (invoice "
                                         "amounts: usage, fixed fees, true-up)")
    aggregationPeriod: AggregationPeriod = Field(default="DAY", description="bucket size, in UTC")
    groupBy: str | None = Field(default=None, description="EVENTS: ACCOUNT_ID, SCHEMA_NAME or EVENT_STATUS; "
                                                          "USAGE, REVENUE: ACCOUNT_ID, USAGE_METER_ID or CUSTOMER_ID "
                                                          "(REVENUE by USAGE_METER_ID: entitlement overage under "
                                                          "its feature's meter, fixed fees and the true-up "
                                                          "under their rate card name)")
    filters: list[MetricFilter] = Field(default_factory=list, max_length=5)
    configs: dict[str, str] | None = Field(default=None, description='REVENUE only: {"CURRENCY": "INVOICE"} (the default: amounts in the accounts\' invoice currency); '
                                          "BASE is refused (no exchange rates are kept)")


class GroupedBy(Model):
    fieldName: str
    fieldValue: str


class MetricDataPoints(Model):
    groupedBy: GroupedBy | None = None
    currency: str | None = Field(default=None, description="REVENUE only: the ISO 4217 currency of metricValues "
                                                           "(each invoice's own; grouped by ACCOUNT_ID, an account "
                                                           "whose invoiceCurrency changed has one series per "
                                                           "currency, never a sum of two)")
    timestamps: list[datetime]
    metricValues: list[Decimal]

    @model_serializer(mode="wrap")
    # No return annotation: with one, pydantic would take it as the output schema instead of the fields'.
    def _currency_of_revenue_only(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data = handler(self)  # EVENTS and USAGE are quantities: no currency key at all
        if isinstance(data, dict) and data.get("currency") is None:
            data.pop("currency", None)
        return data


class MetricQueryResponse(Model):
    id: str
    name: str
    data: list[MetricDataPoints]


class GetMetricsResponse(Model):
    results: list[MetricQueryResponse]
