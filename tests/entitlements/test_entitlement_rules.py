"""The pure entitlement decision: at the limit, one under, one over; boolean and unlimited features."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from togai_engine.entitlements.features import Feature, evaluate, plan_features

D = Decimal
START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
CALLS = Feature("api", "API calls", "meter_calls", D(10))


@pytest.mark.parametrize(("used", "quantity", "entitled", "remaining"), [
    (D(8), D(1), True, D(2)),    # one under after this use: 8 + 1 = 9 <= 10
    (D(9), D(1), True, D(1)),    # reaches the limit exactly: 9 + 1 = 10 <= 10
    (D(10), D(1), False, D(0)),  # at the limit: nothing more
    (D(11), D(1), False, D(0)),  # over (late events): remaining never below 0
    (D(7), D(4), False, D(3)),   # 7 + 4 = 11 > 10: a too-large request is refused whole
    (D("9.5"), D("0.5"), True, D("0.5")),
])
def test_metered_limits(used, quantity, entitled, remaining):
    result = evaluate(CALLS, used=used, quantity=quantity, cycle_start=START, cycle_end=END)
    assert (result.entitled, result.remaining, result.used, result.limit) == (entitled, remaining, used, D(10))
    assert result.reason == ("ENTITLED" if entitled else "LIMIT_REACHED")
    assert (result.featureType, result.resetsAt, result.cycleStart) == ("METERED", END, START)


def test_boolean_and_unlimited_features():
    sso = evaluate(Feature("sso", None, None, None), used=None, quantity=D(1), cycle_start=START, cycle_end=END)
    assert (sso.entitled, sso.reason, sso.featureType, sso.limit, sso.used) == (True, "ENTITLED", "BOOLEAN", None, None)
    unlimited = evaluate(Feature("calls", None, "m", None), used=D(10**9), quantity=D(5), cycle_start=START,
                         cycle_end=END)
    assert (unlimited.entitled, unlimited.limit, unlimited.remaining, unlimited.used) == (True, None, None, D(10**9))


def test_features_are_read_from_the_plan_cards():
    plan = {"rateCards": {"billingEntitlementRateCards": [
        {"featureId": "api", "displayName": "API", "usageMeterId": "m1", "featureConfigs": [{"featureCreditLimit": "5"}]},
        {"featureId": "sso", "featureConfigs": [{"featureCreditLimit": 1}]},
        {"featureId": "free", "usageMeterId": "m2", "featureConfigs": []},
    ]}}
    assert plan_features(plan) == [Feature("api", "API", "m1", D(5)), Feature("sso", None, None, D(1)),
                                   Feature("free", None, "m2", None)]
