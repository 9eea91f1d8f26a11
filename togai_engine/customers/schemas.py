from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from togai_engine.common.schemas import PROFILE_PROBLEM, Address, Model


class CustomerCreate(Model):
    id: str | None = None
    name: str = Field(min_length=1, max_length=255)
    primaryEmail: str | None = None
    address: Address | None = None
    metadata: dict[str, str] | None = None


class CustomerUpdate(Model):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    primaryEmail: str | None = None
    address: Address | None = None
    metadata: dict[str, str] | None = None


class Customer(Model):
    id: str
    name: str
    primaryEmail: str | None
    address: Address | None
    metadata: dict[str, str] | None
    status: Literal["ACTIVE", "ARCHIVED"]
    accountIds: list[str] = Field(default_factory=list)
    createdAt: datetime
    updatedAt: datetime
    problem: str | None = Field(default=None, description=PROFILE_PROBLEM)
