"""Shapes shared by several domains (Togai field names, camelCase)."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Model(BaseModel):
    """Base of every input and output shape: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Address(Model):
    line1: str | None = Field(default=None, max_length=255)
    line2: str | None = Field(default=None, max_length=255)
    city: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=100)
    postalCode: str | None = Field(default=None, max_length=20)
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2 code, e.g. US")
    phoneNumber: str | None = Field(default=None, max_length=30)


class Page(Model, Generic[T]):
    data: list[T]
    nextToken: str | None = Field(default=None, description="pass to get the next page; null on the last page")
