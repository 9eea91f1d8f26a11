"""Metrics tool: get_metrics."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_server.reads import pure_read
from mcp_server.registry import AN_INSTANT, tool
from mcp_server.views import METRICS_VIEW
from togai_engine.common.validation import Instant
from togai_engine.metrics import service as metrics
from togai_engine.metrics.schemas import GetMetricsResponse, MetricQuery


@tool("get_metrics", scope="metrics:read", read_only=True, idempotent=True, title="Get metrics",
      view=METRICS_VIEW)
async def get_metrics(
    ctx: Context,
    startTime: Annotated[Instant, Field(
        description=f"inclusive start: {AN_INSTANT}")],
    endTime: Annotated[Instant, Field(
        description=f"exclusive end: {AN_INSTANT}")],
    metricQueries: Annotated[list[MetricQuery], Field(min_length=1, max_length=5, description="1 to 5 queries")],
) -> GetMetricsResponse:
    """Time series of EVENTS (raw events stored; groupBy ACCOUNT_ID, SCHEMA_NAME or EVENT_STATUS),
    USAGE (meter quantities, exactly as invoiced; groupBy ACCOUNT_ID, USAGE_METER_ID or CUSTOMER_ID) or
    REVENUE (the whole invoice in its currency, which each series names: usage amounts, fixed fees, minimum-commitment true-up; summed
    over a DUE/PAID invoice's period it equals its totalAmount, over an open period the DRAFT so far; VOID
    invoices count nothing. Usage falls in the buckets where it accrues, an IN_ADVANCE fee in the period's
    first bucket, an IN_ARREARS fee and the true-up in its last. groupBy ACCOUNT_ID, CUSTOMER_ID or
    USAGE_METER_ID: there a fixed fee's series has fieldValue = its rate card name and the true-up's
    "minimum_commitment"), bucketed by aggregationPeriod HOUR/DAY/WEEK/MONTH in UTC over [startTime,
    endTime). Filters: ACCOUNT_ID, CUSTOMER_ID, and SCHEMA_NAME (EVENTS) or USAGE_METER_ID (USAGE, REVENUE:
    keeps those meters' usage amounts only, no fee or true-up). At most 300 points per series: use a longer
    period for long ranges. Values are decimal strings."""
    async with pure_read(ctx) as u:
        return await metrics.get_metrics(u.session, startTime, endTime, metricQueries)
