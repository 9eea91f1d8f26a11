"""Shapes shared by several domains (Togai field names, camelCase)."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

T = TypeVar("T")


class Model(BaseModel):
    """Base of every input and output shape: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SandboxMarked(Model):
    """A record a sandbox server answers with says so (`sandbox: true`), so a sandbox invoice is never taken
    for a real one; a server on the real clock leaves the field out."""

    sandbox: bool | None = Field(default=None, description="true on a sandbox server (its time is a test "
                                                            "clock): not a real record")

    @model_serializer(mode="wrap")
    # No return annotation: with one, pydantic would take it as the output schema instead of the fields'.
    def _only_in_sandbox(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data = handler(self)
        if isinstance(data, dict) and data.get("sandbox") is None:
            data.pop("sandbox", None)
        return data


class CloseFailure(Model):
    """An account a bill run could not bill: it keeps its state and is retried by the next run or read."""

    accountId: str
    reason: str = Field(description="what is wrong with the account's data, and how to fix it")


class Address(Model):
    line1: str | None = Field(default=None, max_length=255)
    line2: str | None = Field(default=None, max_length=255)
    city: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=100)
    postalCode: str | None = Field(default=None, max_length=20)
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2 code, e.g. US")
    phoneNumber: str | None = Field(default=None, max_length=30)


PROFILE_PROBLEM = "why a stored field is shown as null: it no longer validates (a hand edit); null when none"


class Page(Model, Generic[T]):
    data: list[T]
    nextToken: str | None = Field(default=None, description="pass to get the next page; null on the last page")
