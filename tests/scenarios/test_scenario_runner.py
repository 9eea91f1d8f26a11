"""The runner's reading of advance_clock: an account the bill run could not bill fails the scenario, with why."""

from __future__ import annotations

import pytest

from mcp_server.scenarios.calls import ScenarioFailed
from mcp_server.scenarios.runner import _require_billed


def test_an_account_the_clock_could_not_bill_fails_the_step_with_the_engines_reason() -> None:
    moved = {"now": "2026-02-04T00:00:00Z", "failed": [
        {"accountId": "acme", "reason": "no rate in EUR for plan Starter"}]}
    with pytest.raises(ScenarioFailed) as raised:
        _require_billed(moved, ("steps", 2, "at"))
    assert raised.value.path == ("steps", 2, "at")
    assert raised.value.message == "advance_clock could not bill 1 account(s): acme: no rate in EUR for plan Starter"
    _require_billed({"now": "2026-02-04T00:00:00Z", "failed": []}, ("steps", 3, "at"))  # nothing failed: no error
