"""Creating a customer together with its first account, in one transaction."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.schemas import Account, AccountCreate, AccountFields
from togai_engine.app.accounts import create_account
from togai_engine.common.schemas import Model
from togai_engine.customers import service as customers
from togai_engine.customers.schemas import Customer, CustomerCreate
from togai_engine.plans.schemas import RateCards


class InlineAccount(AccountFields):
    """create_customer's inline account: create_account's fields, its deal included."""

    rateCardOverrides: RateCards | None = Field(default=None, description="with pricePlanId: the account's deal")


class CustomerWithAccount(Model):
    customer: Customer
    account: Account | None = None


async def create_customer_with_account(
    session: AsyncSession, data: CustomerCreate, account: InlineAccount | None, now: datetime
) -> CustomerWithAccount:
    customer, _ = await customers.create_customer(session, data)
    created = None
    if account is not None:
        fields = account.model_dump(exclude_unset=True, exclude={"rateCardOverrides"})
        created, _ = await create_account(session, AccountCreate(customerId=customer.id, **fields), now,
                                          prefix="account.", rate_card_overrides=account.rateCardOverrides)
        customer = await customers.get_customer(session, customer.id)
    return CustomerWithAccount(customer=customer, account=created)
