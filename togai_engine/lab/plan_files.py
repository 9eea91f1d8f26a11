"""Plan files: price plans kept in git as JSON or YAML, in create_price_plan's shape.

A file holds a list of plans (or {"plans": [...]}); for `simulate` an item may also be a stored plan's
id. Numbers are read as exact decimals (YAML's 0.10 and JSON's 0.1 never pass through a float).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from togai_engine.errors import InvalidInput


class _DecimalLoader(yaml.SafeLoader):
    """YAML's safe loader, with floats as Decimal."""


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(text)
    except InvalidOperation:  # .inf, .nan: left to validation, which rejects them by name
        return text


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _decimal)


def load_plan_file(path: Path) -> list[Any]:
    """The plans in `path`: JSON when it ends in .json, YAML otherwise (JSON is valid YAML too)."""
    return load_pricing_file(path)[1]


def load_pricing_file(path: Path) -> tuple[list[Any], list[Any]]:
    """(meters, plans) in `path`: a list of plans, or {plans: [...]} optionally with
    meters: [...] in create_usage_meter's shape (give them ids, so plans can name them)."""
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text, parse_float=Decimal)
        else:
            data = yaml.load(text, Loader=_DecimalLoader)  # a SafeLoader subclass: no arbitrary objects
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(str(path), f"is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: "
                                      f"{exc}") from None
    meters: list[Any] = []
    if isinstance(data, dict) and set(data) <= {"plans", "meters"} and "plans" in data:
        meters = data.get("meters") or []
        if not isinstance(meters, list):
            raise InvalidInput(f"{path}: meters", "must be a list of usage meters in create_usage_meter's shape")
        data = data["plans"]
    if not isinstance(data, list) or not data:
        raise InvalidInput(str(path), "must hold a non-empty list of plans (or {plans: [...]}), each in "
                                      "create_price_plan's shape {name, pricingCycleConfig, rateCards, ...}")
    return meters, data
