"""The wallet engine's hooks billing calls (contract names), resolved when first needed."""

from __future__ import annotations

from types import ModuleType


def wallets() -> ModuleType:
    try:
        from togai_engine.wallets import service
    except ImportError as exc:
        raise RuntimeError(
            "billing needs togai_engine.wallets.service (apply_credits_to_invoice, reverse_invoice_credits, "
            f"issue_rate_card_grants) and it cannot be imported: {exc}"
        ) from exc
    return service
