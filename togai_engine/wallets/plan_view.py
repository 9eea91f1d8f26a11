"""Reads rate cards off billing's PricePlan in Togai's field names, whatever container it uses
(a pydantic model, a dataclass or a dict; cards at the top level or under `rateCards`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


def as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="python", by_alias=True)  # type: ignore[no-any-return]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return dict(vars(value))


def _field(container: Any, name: str) -> Any:
    if container is None:
        return None
    if isinstance(container, Mapping):
        return container.get(name)
    return getattr(container, name, None)


def rate_cards(plan: Any, kind: str) -> list[dict[str, Any]]:
    """The plan's cards of one kind, e.g. "creditGrantRateCards", each as a dict; [] when none."""
    for container in (plan, _field(plan, "rateCards"), _field(plan, "pricePlanDetails")):
        cards = _field(container, kind)
        if cards:
            return [as_dict(card) for card in cards]
    return []


def plan_id(plan: Any) -> str:
    value = _field(plan, "id")
    if not value:
        raise ValueError("the price plan has no id")
    return str(value)
