"""Checks that protect money when account fields change."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


async def check_currency_change(session: AsyncSession, account_id: str) -> None:
    """Changing the invoice currency is allowed until money exists in the old one (later domains add checks)."""
    return None
