"""The engine's error types. The MCP layer maps each to a tool error in one place.

Every message says what was wrong and what to do next, so an agent can act on it.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    code = "ENGINE_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(EngineError):
    """An id (or alias) names nothing that exists."""

    code = "NOT_FOUND"


class Conflict(EngineError):
    """The request contradicts stored state (e.g. same id, different content)."""

    code = "CONFLICT"


class InvalidInput(EngineError):
    """A field of the request is wrong; `field` is its path, e.g. `address.country`."""

    code = "INVALID_INPUT"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


class PermissionDenied(EngineError):
    """The caller lacks the scope the operation needs."""

    code = "PERMISSION_DENIED"
