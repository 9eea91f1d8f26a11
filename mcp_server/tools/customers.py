"""Customer tools: create_customer, get_customer, update_customer, list_customers."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_server.arguments import sent_arguments
from mcp_server.reads import pure_read
from mcp_server.registry import NextToken, PageSize, model_input, tool, uow
from togai_engine.app.onboarding import CustomerWithAccount, InlineAccount, create_customer_with_account
from togai_engine.common.schemas import Address, Page
from togai_engine.customers import service as customers
from togai_engine.customers.schemas import Customer, CustomerCreate, CustomerUpdate


@tool("create_customer", scope="customers:write", title="Create customer")
async def create_customer(
    ctx: Context,
    name: Annotated[str, Field(min_length=1, max_length=255, description="legal name")],
    id: Annotated[str | None, Field(description="customer id (1-50 chars); generated as cust_... if absent. "
                                    "Pass the same id when retrying: same content returns the existing customer")] = None,
    primaryEmail: Annotated[str | None, Field(description="billing contact email")] = None,
    address: Annotated[Address | None, Field(description="postal address; country is ISO 3166-1 alpha-2")] = None,
    metadata: Annotated[dict[str, str] | None, Field(description="free-form string tags")] = None,
    account: Annotated[dict[str, Any] | None, Field(
        description="optionally create the customer's first account inline: create_account's fields "
                    "without customerId, e.g. {id, name, invoiceCurrency, aliases, pricePlanId, effectiveFrom, "
                    "rateCardOverrides}")] = None,
) -> CustomerWithAccount:
    """Create a customer: the legal entity that is billed. Use create_account (or the inline `account`
    field) to give it a billing account. Safe to retry with the same id."""
    data = CustomerCreate(id=id, name=name, primaryEmail=primaryEmail, address=address, metadata=metadata)
    inline = model_input(InlineAccount, "account", account) if account is not None else None
    async with uow(ctx) as u:
        result = await create_customer_with_account(u.session, data, inline, u.now)
        u.changed(result.customer.id, result.account.id if result.account else "")
        # the inline account is an account record: marked on a sandbox as create_account's is
        return result.model_copy(update={"account": u.app.marked(result.account)}) if result.account else result


@tool("get_customer", scope="customers:read", read_only=True, idempotent=True, title="Get customer")
async def get_customer(ctx: Context, customerId: Annotated[str, Field(description="the customer's id")]) -> Customer:
    """Get a customer's profile, metadata, status and the ids of its accounts."""
    async with pure_read(ctx) as u:
        return await customers.get_customer(u.session, customerId)


@tool("update_customer", scope="customers:write", destructive=True, idempotent=True, title="Update customer")
async def update_customer(
    ctx: Context,
    customerId: Annotated[str, Field(description="the customer's id")],
    name: Annotated[str | None, Field(min_length=1, max_length=255)] = None,
    primaryEmail: Annotated[str | None, Field(description="billing contact email; null clears it")] = None,
    address: Annotated[Address | None, Field(description="replaces the stored address; null clears it")] = None,
    metadata: Annotated[dict[str, str] | None, Field(
        description="replaces the stored metadata; null clears it")] = None,
) -> Customer:
    """Update a customer's profile (name, primaryEmail, address, metadata). Billing details live on
    accounts: use update_account for those. Fields you omit are left as they are; an explicit null clears
    primaryEmail, address or metadata (name cannot be null)."""
    fields = sent_arguments(ctx, {"name": name, "primaryEmail": primaryEmail, "address": address,
                                  "metadata": metadata})
    async with uow(ctx) as u:
        result = await customers.update_customer(u.session, customerId, CustomerUpdate(**fields))
        u.changed(customerId)
        return result


@tool("list_customers", scope="customers:read", read_only=True, idempotent=True, title="List customers")
async def list_customers(ctx: Context, pageSize: PageSize = 20, nextToken: NextToken = None) -> Page[Customer]:
    """List customers, oldest first, a page at a time. Pass nextToken from the previous page to continue. A stored
    metadata or address that no longer reads (edited by hand) is shown null, and the customer's `problem` says
    which and how to fix it."""
    async with pure_read(ctx) as u:
        return await customers.list_customers(u.session, pageSize, nextToken)

