"""Usage meter tools: create_usage_meter, list_usage_meters."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_server.reads import pure_read
from mcp_server.registry import NextToken, PageSize, tool, uow
from togai_engine.common.schemas import Page
from togai_engine.meters import service as meters
from togai_engine.meters.schemas import (
    NEGATIVE_VALUES_DESCRIPTION,
    ComputationIn,
    NegativeValues,
    UsageMeter,
    UsageMeterCreate,
)

AggregationName = Literal["COUNT", "SUM", "MAX", "UNIQUE_COUNT", "LATEST"]


@tool("create_usage_meter", scope="meters:write", idempotent=True, title="Create usage meter")
async def create_usage_meter(
    ctx: Context,
    name: Annotated[str, Field(description="unique meter name (1-50 letters, digits, spaces, _ or -)")],
    eventSchemaName: Annotated[str, Field(description="the schemaName of the events this meter counts")],
    aggregation: Annotated[AggregationName, Field(
        description="COUNT (matching events), SUM (of the computed values), MAX, UNIQUE_COUNT (distinct values "
                    "of an attribute or dimension), LATEST (value of the newest event)")],
    computations: Annotated[list[ComputationIn] | None, Field(
        max_length=50,
        description="ordered computations; the first whose matcher is true (or absent) gives the event's value. "
                    "COUNT may omit them; SUM e.g. [{\"computation\": \"tokens\", \"order\": 1}]")] = None,
    billableName: Annotated[str | None, Field(max_length=255, description=(
        "the meter's display name (displayName = billableName, else name). Invoice lines name the usage rate "
        "card's displayName: give the card one to label its line"))] = None,
    description: Annotated[str | None, Field(max_length=255)] = None,
    negativeValues: Annotated[NegativeValues, Field(description=NEGATIVE_VALUES_DESCRIPTION)] = "ALLOW",
    id: Annotated[str | None, Field(
        description="meter id you choose (1-50 chars), so plan files can name it; generated as um_... if absent")] = None,
) -> UsageMeter:
    """Create an ACTIVE usage meter that turns events of one schema into a billable quantity.
    Matchers and computations are JSON Logic over attributes.<name> (numbers) and dimensions.<name>
    (text); unsupported operators or unknown variables are rejected, naming the spot. The meter also
    counts the events already stored for its schema. negativeValues REJECT makes ingestion reject events
    whose value for this meter is negative (code NEGATIVE_VALUE); ALLOW (default) meters them, e.g. as
    corrections. Creating the same name again with the same definition returns the existing meter, so a
    retry is safe; a different definition is a conflict."""
    data = UsageMeterCreate(id=id, name=name, eventSchemaName=eventSchemaName, aggregation=aggregation,
                            computations=computations or [], billableName=billableName, description=description,
                            negativeValues=negativeValues)
    async with uow(ctx) as u:
        meter, _ = await meters.create_usage_meter(u.session, data, u.now)
        u.changed(meter.id)
        return meter


@tool("list_usage_meters", scope="meters:read", read_only=True, idempotent=True, title="List usage meters")
async def list_usage_meters(
    ctx: Context,
    eventSchemaName: Annotated[str | None, Field(description="only meters of this event schema")] = None,
    aggregation: AggregationName | None = None,
    pageSize: PageSize = 20,
    nextToken: NextToken = None,
) -> Page[UsageMeter]:
    """List usage meters, oldest first, with their schema, aggregation and computations."""
    async with pure_read(ctx) as u:
        return await meters.list_usage_meters(u.session, event_schema_name=eventSchemaName, aggregation=aggregation,
                                              page_size=pageSize, next_token=nextToken)
