"""Pure parts of the wallet: ISO durations, the burn order, credit-grant rate cards."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from dateutil.relativedelta import relativedelta

from togai_engine.common.durations import parse_duration
from togai_engine.cycles.cycles import Cycle
from togai_engine.errors import InvalidInput
from togai_engine.plans.schemas import CreditGrantRateCard
from togai_engine.wallets.burn import Spendable, plan_burn
from togai_engine.wallets.plan_view import as_dict
from togai_engine.wallets.rate_cards import RateCardGrant, granted_when_paid, grants_for_cycle

D = Decimal
JAN = Cycle(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))


@pytest.mark.parametrize(("text", "expected"), [
    ("P1M", relativedelta(months=1)),
    ("P20D", relativedelta(days=20)),
    ("P1Y2M3W4DT5H6M7S", relativedelta(years=1, months=2, weeks=3, days=4, hours=5, minutes=6, seconds=7)),
    ("PT12H", relativedelta(hours=12)),
])
def test_durations(text, expected):
    assert parse_duration(text, "d") == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "1M", "P1.5D", "P0D", "p1d", None, 5])
def test_bad_durations_name_the_field(text):
    with pytest.raises(InvalidInput, match=r"^grantDetails\.expiryDuration: "):
        parse_duration(text, "grantDetails.expiryDuration")


def _grant(grant_id: str, priority: int, until: int | None, start: int, amount: str, left: str | None = None) -> Spendable:
    return Spendable(grant_id=grant_id, priority=priority,
                     effective_from=datetime(2026, 1, start, tzinfo=UTC),
                     effective_until=None if until is None else datetime(2026, 3, until, tzinfo=UTC),
                     amount=D(amount), spendable=D(left or amount))


def test_burn_order_keys_in_turn():
    grants = [
        _grant("z-never", 0, None, 1, "5.00"),
        _grant("y-late", 0, 20, 1, "5.00"),
        _grant("x-soon-later-start", 0, 10, 2, "5.00"),
        _grant("w-soon-early-start-big", 0, 10, 1, "9.00"),
        _grant("v-soon-early-start-small", 0, 10, 1, "5.00"),
        _grant("a-low-priority", 1, 1, 1, "5.00"),
    ]
    # Enough to take a little from every grant but the last two in order:
    # v 5.00, w 9.00, x 5.00, y 5.00 = 24.00; 25.00 leaves 1.00 for z-never; a-low-priority untouched.
    assert plan_burn(grants, D("25.00")) == [
        ("v-soon-early-start-small", D("5.00")), ("w-soon-early-start-big", D("9.00")),
        ("x-soon-later-start", D("5.00")), ("y-late", D("5.00")), ("z-never", D("1.00")),
    ]


def test_burn_skips_spent_grants_and_stops_at_the_amount():
    grants = [_grant("a", 0, None, 1, "10.00", "0.00"), _grant("b", 1, None, 1, "10.00", "3.50")]
    assert plan_burn(grants, D("2.00")) == [("b", D("2.00"))]
    assert plan_burn(grants, D("0")) == []
    assert plan_burn(grants, D("100")) == [("b", D("3.50"))]


def test_line_aware_burn_pays_restricted_grants_only_their_cards_lines():
    def scoped(grant_id: str, priority: int, amount: str, *cards: str) -> Spendable:
        return replace(_grant(grant_id, priority, None, 1, amount), applicable=frozenset(cards))

    lines = [("api", D("25.00")), ("platform", D("25.00")), (None, D("5.00"))]  # None: e.g. the true-up
    # api-only 40.00 pays the api line, 25.00, and nothing else: 30.00 stays due
    assert plan_burn([scoped("api40", 0, "40.00", "api")], D("55.00"), lines=lines) == [("api40", D("25.00"))]
    # a general 30.00 with a better priority pays the lines no restricted grant may pay first (platform 25.00,
    # then the 5.00 line), leaving api to the restricted grant: 30.00 + 25.00 = all 55.00
    assert plan_burn([_grant("general", 0, None, 1, "30.00"), scoped("api40", 1, "40.00", "api")], D("55.00"),
                     lines=lines) == [("general", D("30.00")), ("api40", D("25.00"))]
    # a general grant bigger than the other lines goes on into the restricted lines (priority comes first):
    # 40.00 = platform 25.00 + 5.00 + api 10.00; the restricted grant pays the api line's other 15.00
    assert plan_burn([_grant("general", 0, None, 1, "40.00"), scoped("api40", 1, "40.00", "api")], D("55.00"),
                     lines=lines) == [("general", D("40.00")), ("api40", D("15.00"))]
    # two cards: 10.00 of each line it names, in invoice order: api 25.00 then platform 5.00 of 30.00
    assert plan_burn([scoped("both", 0, "30.00", "api", "platform")], D("55.00"), lines=lines) == [
        ("both", D("30.00"))]
    # without lines (one line of no card) a restricted grant pays nothing, an unrestricted one as before
    assert plan_burn([scoped("api40", 0, "40.00", "api")], D("55.00")) == []


def test_credit_grant_cards_issue_per_cycle_with_their_expiry():
    cards = [
        {"name": "monthly", "grantDetails": {"priority": 2, "expiryType": "PRICING_CYCLE"},
         "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": "15"}]}},
        {"id": "addon_bonus", "type": "ONE_TIME", "grantDetails": {"expiryType": "NO_EXPIRY"},
         "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": 10}]}},
        as_dict(CreditGrantRateCard.model_validate(
            {"name": "custom", "displayName": "Ten-day credit",
             "grantDetails": {"expiryType": "CUSTOM", "expiryDuration": "P10D"},
             "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": "5.005"}]}})),
        {"name": "euro-only",
         "rateDetails": {"currencySlabRateDetails": [{"currency": "EUR", "creditAmount": "7"}]}},
    ]
    grants = grants_for_cycle(cards, "plan_1", "USD", JAN)
    assert [(g.grantor_id, g.amount, g.priority, g.effective_from, g.effective_until, g.one_time, g.purpose)
            for g in grants] == [
        ("plan_1:monthly", D("15.00"), 2, JAN.start, JAN.end, False, "monthly"),
        ("plan_1:addon_bonus", D("10.00"), 100, JAN.start, None, True, "addon_bonus"),
        # 5.005 rounds half-up to 5.01; expires 10 days after the cycle start.
        ("plan_1:custom", D("5.01"), 100, JAN.start, datetime(2026, 1, 11, tzinfo=UTC), False, "Ten-day credit"),
    ]


def test_custom_expiry_needs_a_duration():
    card = {"name": "c", "grantDetails": {"expiryType": "CUSTOM"},
            "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": "1"}]}}
    with pytest.raises(InvalidInput, match=r"creditGrantRateCards\[0\]\.grantDetails\.expiryDuration"):
        grants_for_cycle([card], "plan_1", "USD", JAN)


def test_burn_of_large_lines_gives_exactly_what_they_sum_to():
    lines = [("tokens", D("0.01")), ("platform", D("1000000000000000000000000000.00"))]
    due = D("1000000000000000000000000000.01")  # 0.01 + 10^27: 30 digits, more than the default context's 28
    # one grant of 2 × 10^27 pays the whole invoice: the cent and the fee
    assert plan_burn([_grant("big", 0, None, 1, "2000000000000000000000000000.00")], due, lines=lines) == [
        ("big", due)]
    # a grant of 10^27 - 0.01 (29 digits) gives all it holds, not 10^27; a second grant pays the last 0.02
    assert plan_burn([_grant("a", 0, None, 1, "999999999999999999999999999.99"), _grant("b", 1, None, 1, "1.00")],
                     due, lines=lines) == [("a", D("999999999999999999999999999.99")), ("b", D("0.02"))]


def test_a_window_paid_for_before_it_starts_keeps_it() -> None:
    """granted_when_paid (invoices README, "PREPAID credits"): February's credits paid on 20 January, when the only
    period billing knows not DUE yet is January's (February's is not opened before it starts), keep February: a
    later period they pay is past the periods known. Only a window that can pay none of them, nor a later one, is
    moved to the payment."""
    def utc(month: int, day: int) -> datetime:
        return datetime(2026, month, day, tzinfo=UTC)

    february = RateCardGrant(grantor_id="pp:credits", amount=Decimal("100"), priority=10, effective_from=utc(2, 1),
                             effective_until=utc(3, 1), one_time=False, purpose="Credits")
    assert granted_when_paid(february, utc(1, 20), [(utc(2, 1), utc(2, 1))]) == february
    # paid on 2 March with March under way (February DUE): moved, from the payment to March's end
    moved = granted_when_paid(february, utc(3, 2), [(utc(4, 1), utc(4, 1))])
    assert (moved.effective_from, moved.effective_until) == (utc(3, 2), utc(4, 1))
