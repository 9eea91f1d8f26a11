"""Every field of the price plan schema is honoured: a field accepted and then ignored is worse than a refusal.

Each leaf field of `PricePlanCreate` has a proof, and the two sets must match exactly (a new field without a
proof fails here, and so does a proof for a field that no longer exists):

- `Changes(value)`: the field is read by invoice composition. Setting it to `value` in a plan that has every
  kind of card must change what the invoice says: a line's amount, quantity, name or description, or the
  totals. The lines' `details` are not compared, because echoing a field there is not honouring it.
- `ProvedBy(test, word)`: the field acts outside one invoice (cycles, entitlements, the wallet, validation,
  the plan's own views...). The named test must exist and its source must mention `word`.
"""

from __future__ import annotations

import ast
import copy
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from togai_engine.cycles import Cycle
from togai_engine.invoices.compose import ComposedInvoice, ComposedLine, compose_invoice
from togai_engine.plans.schemas import PricePlan, PricePlanCreate
from togai_engine.plans.validation import normalize_plan

ROOT = Path(__file__).resolve().parents[2]
JAN = Cycle(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
# The account started on January 11: a partial first period, so proration has something to do.
FIRST_PERIOD = Cycle(datetime(2026, 1, 11, tzinfo=UTC), JAN.end)
QUANTITIES = {"api": Decimal(150), "other": Decimal(7)}
SEATS = [(FIRST_PERIOD.start, datetime(2026, 1, 21, tzinfo=UTC), 4), (datetime(2026, 1, 21, tzinfo=UTC), JAN.end, 9)]


@dataclass(frozen=True)
class Changes:
    value: Any
    item: int | None = None  # which slab (or slab rate) to change; the last one by default


@dataclass(frozen=True)
class ProvedBy:
    test: str  # tests/...py::test_name
    word: str


FIELD_PROOFS: dict[str, Changes | ProvedBy] = {
    "name": ProvedBy("tests/plans/test_price_plans.py::test_create_get_list_and_rate_cards", "name"),
    "description": ProvedBy("tests/plans/test_price_plans.py::test_create_get_list_and_rate_cards", "description"),
    "pricingCycleConfig.interval": ProvedBy("tests/cycles/test_cycles.py::test_anniversary_annual_on_29_february",
                                            "ANNUALLY"),
    "pricingCycleConfig.startOffset.dayOffset": ProvedBy(
        "tests/cycles/test_cycles.py::test_anniversary_ignores_configured_offsets", "dayOffset"),
    "pricingCycleConfig.startOffset.monthOffset": ProvedBy(
        "tests/cycles/test_cycles.py::test_anniversary_annual_on_29_february", "monthOffset"),
    "pricingCycleConfig.gracePeriod": ProvedBy(
        "tests/sandbox/test_sandbox_clock.py::test_accounts_and_invoices_say_sandbox_only_on_a_sandbox", "gracePeriod"),
    "pricingCycleConfig.anniversaryCycle": ProvedBy(
        "tests/cycles/test_cycles.py::test_anniversary_monthly_on_the_31st_is_last_day", "anniversary"),
    "supportedCurrencies": ProvedBy(
        "tests/invoices/test_compose.py::test_a_currency_the_plan_does_not_support_is_refused", "currenc"),
    "lateUsage": ProvedBy(
        "tests/billing/test_late_usage.py::test_the_late_periods_plan_decides_whether_its_late_usage_is_billed",
        "BILL_ON_NEXT_INVOICE"),
    # usage rate cards
    "rateCards.usageRateCards[].name": Changes("api_calls"),
    "rateCards.usageRateCards[].displayName": Changes("API calls"),
    "rateCards.usageRateCards[].usageMeterId": Changes("other"),
    "rateCards.usageRateCards[].ratePlan.pricingModel": Changes("VOLUME"),
    "rateCards.usageRateCards[].ratePlan.slabs[].order": ProvedBy(
        "tests/plans/test_price_plans.py::test_slabs_out_of_order_are_reported_before_the_first_slab_start", "order"),
    "rateCards.usageRateCards[].ratePlan.slabs[].startAfter": Changes("120"),
    "rateCards.usageRateCards[].ratePlan.slabs[].priceType": Changes("FLAT", item=0),
    "rateCards.usageRateCards[].ratePlan.slabs[].slabConfig.packageSize": Changes("7"),
    "rateCards.usageRateCards[].rateValues[].currency": ProvedBy(
        "tests/invoices/test_compose.py::test_a_currency_the_plan_does_not_support_is_refused", "currenc"),
    "rateCards.usageRateCards[].rateValues[].slabRates[].order": ProvedBy(
        "tests/plans/test_price_plans.py::test_structural_errors_name_the_field", "slabRates"),
    "rateCards.usageRateCards[].rateValues[].slabRates[].rate": Changes("0.5"),
    "rateCards.usageRateCards[].rateValues[].slabRates[].flatRate": Changes("3"),
    "rateCards.usageRateCards[].rateValues[].rateConfig.minimumRate": Changes("500"),
    "rateCards.usageRateCards[].rateValues[].rateConfig.maximumRate": Changes("1"),
    # license (seat) cards: 4 seats from January 11, 9 from January 21 (below)
    "rateCards.licenseRateCards[].id": Changes("editors"),
    "rateCards.licenseRateCards[].name": Changes("seats_card"),
    "rateCards.licenseRateCards[].displayName": Changes("Editor seats"),
    "rateCards.licenseRateCards[].ratePlan.pricingModel": Changes("VOLUME"),
    "rateCards.licenseRateCards[].ratePlan.slabs[].order": ProvedBy(
        "tests/plans/test_price_plans.py::test_slabs_out_of_order_are_reported_before_the_first_slab_start", "order"),
    "rateCards.licenseRateCards[].ratePlan.slabs[].startAfter": Changes("8"),
    "rateCards.licenseRateCards[].ratePlan.slabs[].priceType": Changes("FLAT", item=0),
    "rateCards.licenseRateCards[].ratePlan.slabs[].slabConfig.packageSize": Changes("4"),
    "rateCards.licenseRateCards[].rateValues[].currency": ProvedBy(
        "tests/invoices/test_compose.py::test_a_currency_the_plan_does_not_support_is_refused", "currenc"),
    "rateCards.licenseRateCards[].rateValues[].slabRates[].order": ProvedBy(
        "tests/plans/test_price_plans.py::test_structural_errors_name_the_field", "slabRates"),
    "rateCards.licenseRateCards[].rateValues[].slabRates[].rate": Changes("7"),
    "rateCards.licenseRateCards[].rateValues[].slabRates[].flatRate": Changes("4"),
    "rateCards.licenseRateCards[].rateValues[].rateConfig.minimumRate": Changes("900"),
    "rateCards.licenseRateCards[].rateValues[].rateConfig.maximumRate": Changes("1"),
    "rateCards.licenseRateCards[].enableProration": Changes(True),
    "rateCards.licenseRateCards[].config.maxQuantity": ProvedBy(
        "tests/tools/test_licenses.py::test_refusals_name_the_field_and_the_fix", "maxQuantity"),
    "rateCards.licenseRateCards[].invoiceTiming": ProvedBy(
        "tests/tools/test_licenses.py::test_an_inline_plan_with_unsupported_license_fields_is_refused", "IN_ADVANCE"),
    # fixed fees
    "rateCards.fixedFeeRateCards[].id": Changes("platform"),
    "rateCards.fixedFeeRateCards[].name": Changes("base"),
    "rateCards.fixedFeeRateCards[].displayName": Changes("Platform fee"),
    "rateCards.fixedFeeRateCards[].rateValues[].currency": ProvedBy(
        "tests/invoices/test_compose.py::test_a_currency_the_plan_does_not_support_is_refused", "currenc"),
    "rateCards.fixedFeeRateCards[].rateValues[].rate": Changes("31"),
    "rateCards.fixedFeeRateCards[].invoiceTiming": ProvedBy(
        "tests/billing/test_fixed_fee_timing.py::"
        "test_an_in_advance_fee_is_invoiced_a_cycle_ahead_and_credited_when_cancelled_mid_cycle", "IN_ADVANCE"),
    "rateCards.fixedFeeRateCards[].type": ProvedBy(
        "tests/billing/test_fixed_fee_timing.py::"
        "test_a_setup_fee_is_charged_once_per_association_even_across_a_plan_change", "ONE_TIME"),
    "rateCards.fixedFeeRateCards[].recurrenceConfig.interval": ProvedBy(
        "tests/billing/test_fixed_fee_timing.py::"
        "test_recurrence_config_charges_cycles_1_and_4_of_seven_counted_from_a_partial_first_period", "interval"),
    "rateCards.fixedFeeRateCards[].recurrenceConfig.offset": ProvedBy(
        "tests/billing/test_fixed_fee_timing.py::"
        "test_recurrence_config_charges_cycles_1_and_4_of_seven_counted_from_a_partial_first_period", "offset"),
    "rateCards.fixedFeeRateCards[].enableProration": Changes(True),
    # billing entitlements
    "rateCards.billingEntitlementRateCards[].name": ProvedBy(
        "tests/plans/test_price_plans.py::test_create_get_list_and_rate_cards", "name"),
    "rateCards.billingEntitlementRateCards[].featureId": ProvedBy(
        "tests/entitlements/test_entitlement_rules.py::test_features_are_read_from_the_plan_cards", "featureId"),
    "rateCards.billingEntitlementRateCards[].displayName": ProvedBy(
        "tests/entitlements/test_entitlement_rules.py::test_features_are_read_from_the_plan_cards", "displayName"),
    "rateCards.billingEntitlementRateCards[].usageMeterId": ProvedBy(
        "tests/entitlements/test_entitlement_rules.py::test_features_are_read_from_the_plan_cards", "usageMeterId"),
    "rateCards.billingEntitlementRateCards[].featureConfigs[].featureCreditLimit": ProvedBy(
        "tests/entitlements/test_entitlement_rules.py::test_features_are_read_from_the_plan_cards",
        "featureCreditLimit"),
    # credit grants
    "rateCards.creditGrantRateCards[].id": ProvedBy(
        "tests/billing/test_scenarios.py::test_credit_grant_cards_pay_part_of_the_invoice", "id"),
    "rateCards.creditGrantRateCards[].name": ProvedBy(
        "tests/billing/test_scenarios.py::test_credit_grant_cards_pay_part_of_the_invoice", "name"),
    "rateCards.creditGrantRateCards[].displayName": ProvedBy(
        "tests/wallets/test_wallet_pure.py::test_credit_grant_cards_issue_per_cycle_with_their_expiry", "displayName"),
    "rateCards.creditGrantRateCards[].type": ProvedBy(
        "tests/wallets/test_rate_card_grant_cycles.py::"
        "test_a_one_time_grant_comes_with_the_first_period_when_one_run_closes_it", "ONE_TIME"),
    "rateCards.creditGrantRateCards[].grantDetails.priority": ProvedBy(
        "tests/wallets/test_wallet_billing.py::test_credits_across_a_billing_cycle", "priority"),
    "rateCards.creditGrantRateCards[].grantDetails.expiryType": ProvedBy(
        "tests/billing/test_scenarios.py::test_credit_grant_cards_pay_part_of_the_invoice", "expiryType"),
    "rateCards.creditGrantRateCards[].grantDetails.expiryDuration": ProvedBy(
        "tests/wallets/test_rate_card_grant_cycles.py::"
        "test_a_one_time_grant_comes_with_the_first_period_when_one_run_closes_it", "expiryDuration"),
    "rateCards.creditGrantRateCards[].rateDetails.currencySlabRateDetails[].currency": ProvedBy(
        "tests/billing/test_scenarios.py::test_credit_grant_cards_pay_part_of_the_invoice", "currency"),
    "rateCards.creditGrantRateCards[].rateDetails.currencySlabRateDetails[].creditAmount": ProvedBy(
        "tests/billing/test_scenarios.py::test_credit_grant_cards_pay_part_of_the_invoice", "creditAmount"),
    "rateCards.creditGrantRateCards[].grantDetails.applicableEntityIds": ProvedBy(
        "tests/wallets/test_applicable_grants.py::test_a_grant_for_one_card_pays_only_its_line_and_the_fee_stays_due",
        "applicableEntityIds"),
    "rateCards.creditGrantRateCards[].invoiceTiming": ProvedBy(
        "tests/billing/test_prepaid_credits.py::test_prepaid_credits_are_sold_in_advance_and_granted_only_once_paid",
        "prepaid for"),
    "rateCards.creditGrantRateCards[].rateDetails.pricingModel": ProvedBy(
        "tests/billing/test_prepaid_credits.py::test_prepaid_credits_in_volume_slabs_and_one_time", "VOLUME"),
    "rateCards.creditGrantRateCards[].rateDetails.currencySlabRateDetails[].slabDetails[].startAfter": ProvedBy(
        "tests/billing/test_prepaid_credits.py::test_prepaid_credits_in_volume_slabs_and_one_time", "startAfter"),
    "rateCards.creditGrantRateCards[].rateDetails.currencySlabRateDetails[].slabDetails[].priceType": ProvedBy(
        "tests/billing/test_prepaid_credits.py::test_prepaid_cards_are_validated_naming_the_field", "PACKAGE"),
    "rateCards.creditGrantRateCards[].rateDetails.currencySlabRateDetails[].slabDetails[].rate": ProvedBy(
        "tests/billing/test_prepaid_credits.py::test_prepaid_credits_are_sold_in_advance_and_granted_only_once_paid",
        "rate"),
    "rateCards.creditGrantRateCards[].rateDetails.currencySlabRateDetails[].slabDetails[].slabConfig.packageSize":
        ProvedBy("tests/billing/test_prepaid_credits.py::test_credits_sold_in_packages", "packageSize"),
    # entitlement overage
    "rateCards.entitlementOverageRateCards[].name": Changes("extra_calls"),
    "rateCards.entitlementOverageRateCards[].displayName": Changes("Extra calls"),
    "rateCards.entitlementOverageRateCards[].featureId": Changes("api"),
    "rateCards.entitlementOverageRateCards[].ratePlan.pricingModel": Changes("VOLUME"),
    "rateCards.entitlementOverageRateCards[].ratePlan.slabs[].order": ProvedBy(
        "tests/plans/test_price_plans.py::test_slabs_out_of_order_are_reported_before_the_first_slab_start", "order"),
    "rateCards.entitlementOverageRateCards[].ratePlan.slabs[].startAfter": Changes("3"),
    "rateCards.entitlementOverageRateCards[].ratePlan.slabs[].priceType": Changes("FLAT", item=0),
    "rateCards.entitlementOverageRateCards[].ratePlan.slabs[].slabConfig.packageSize": Changes("1"),
    "rateCards.entitlementOverageRateCards[].rateValues[].currency": ProvedBy(
        "tests/invoices/test_entitlement_overage.py::"
        "test_overage_cards_that_cannot_be_honoured_are_refused_naming_the_field", "EUR"),
    "rateCards.entitlementOverageRateCards[].rateValues[].slabRates[].order": ProvedBy(
        "tests/plans/test_price_plans.py::test_structural_errors_name_the_field", "slabRates"),
    "rateCards.entitlementOverageRateCards[].rateValues[].slabRates[].rate": Changes("0.9"),
    "rateCards.entitlementOverageRateCards[].rateValues[].slabRates[].flatRate": Changes("3"),
    "rateCards.entitlementOverageRateCards[].rateValues[].rateConfig.minimumRate": Changes("500"),
    "rateCards.entitlementOverageRateCards[].rateValues[].rateConfig.maximumRate": Changes("1"),
    "rateCards.entitlementOverageRateCards[].maxQuantity": Changes("2"),
    "rateCards.entitlementOverageRateCards[].billingConfig": ProvedBy(
        "tests/invoices/test_entitlement_overage.py::"
        "test_overage_cards_that_cannot_be_honoured_are_refused_naming_the_field", "billingConfig"),
    # minimum commitment
    "rateCards.minimumCommitment.displayName": Changes("Committed spend"),
    "rateCards.minimumCommitment.rateValues[].currency": ProvedBy(
        "tests/invoices/test_compose.py::test_a_currency_the_plan_does_not_support_is_refused", "currenc"),
    "rateCards.minimumCommitment.rateValues[].rate": Changes("900"),
    # pricing rules (the base plan has none, so each is proved on invoices through the tools)
    "pricingRules[].name": ProvedBy(
        "tests/invoices/test_pricing_rules.py::test_a_discount_fires_over_its_threshold_and_not_at_it", "name"),
    "pricingRules[].order": ProvedBy(
        "tests/invoices/test_pricing_rules.py::"
        "test_update_caps_a_card_and_a_percentage_fee_is_added_on_the_capped_total", "order"),
    "pricingRules[].invoiceTiming": ProvedBy(
        "tests/invoices/test_pricing_rules.py::test_rules_are_checked_against_the_plan", "IN_ADVANCE"),
    "pricingRules[].condition": ProvedBy(
        "tests/invoices/test_pricing_rules.py::test_a_discount_fires_over_its_threshold_and_not_at_it", "condition"),
    "pricingRules[].computation": ProvedBy(
        "tests/invoices/test_pricing_rules.py::test_a_discount_fires_over_its_threshold_and_not_at_it", "computation"),
    "pricingRules[].action.type": ProvedBy(
        "tests/invoices/test_pricing_rules.py::"
        "test_update_caps_a_card_and_a_percentage_fee_is_added_on_the_capped_total", "UPDATE"),
    "pricingRules[].action.target": ProvedBy(
        "tests/invoices/test_pricing_rules.py::"
        "test_update_caps_a_card_and_a_percentage_fee_is_added_on_the_capped_total", "target"),
    "pricingRules[].action.description": ProvedBy(
        "tests/invoices/test_pricing_rules.py::"
        "test_update_caps_a_card_and_a_percentage_fee_is_added_on_the_capped_total", "description"),
}

# A plan with every kind of card. Usage card: 150 units, TIERED, slab 1 (0, 100] at 0.10 plus a flat 2.00,
# slab 2 PACKAGE of 10 above 100 at 1.00. Fixed fee 20.00, not prorated. Commitment 1,000.00. Overage of
# feature `calls` (meter `other`, 7 used, limit 2): 5 over, capped at 4; TIERED, slab 1 (0, 2] at 0.50 plus a
# flat 1.00, slab 2 PACKAGE of 2 above 2 at 1.00.
BASE_PLAN: dict[str, Any] = {
    "name": "every-field",
    "pricingCycleConfig": {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}},
    "supportedCurrencies": ["USD"],
    "rateCards": {
        "usageRateCards": [{
            "usageMeterId": "api",
            "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"},
                {"order": 2, "startAfter": "100", "priceType": "PACKAGE", "slabConfig": {"packageSize": "10"}}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.10", "flatRate": "2"},
                                                            {"order": 2, "rate": "1"}],
                            "rateConfig": {}}],
        }],
        "licenseRateCards": [{
            "id": "seats",
            "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"},
                {"order": 2, "startAfter": "5", "priceType": "PACKAGE", "slabConfig": {"packageSize": "3"}}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "10", "flatRate": "1"},
                                                            {"order": 2, "rate": "6"}],
                            "rateConfig": {}}],
            "config": {"maxQuantity": "50"},
        }],
        "fixedFeeRateCards": [{"id": "base_fee", "rateValues": [{"currency": "USD", "rate": "20"}]}],
        "billingEntitlementRateCards": [{"featureId": "api", "usageMeterId": "api",
                                         "featureConfigs": [{"featureCreditLimit": "1000"}]},
                                        {"featureId": "calls", "usageMeterId": "other",
                                         "featureConfigs": [{"featureCreditLimit": "2"}]}],
        "entitlementOverageRateCards": [{
            "featureId": "calls", "maxQuantity": "4",
            "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"},
                {"order": 2, "startAfter": "2", "priceType": "PACKAGE", "slabConfig": {"packageSize": "2"}}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.50", "flatRate": "1"},
                                                            {"order": 2, "rate": "1"}],
                            "rateConfig": {}}],
        }],
        "creditGrantRateCards": [{"id": "credits", "rateDetails": {"currencySlabRateDetails": [
            {"currency": "USD", "creditAmount": "5"}]}}],
        "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "1000"}]},
    },
}


def _models_in(annotation: Any) -> list[tuple[type[BaseModel], str]]:
    """The pydantic models an annotation holds, each with "[]" when it sits in a list."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, "")]
    suffix = "[]" if origin in (list, tuple) else ""
    if origin in (typing.Union, types.UnionType, list, tuple):
        return [(model, suffix + inner) for arg in typing.get_args(annotation) for model, inner in _models_in(arg)]
    return []


def leaf_fields(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        inner = _models_in(field.annotation)
        if not inner:
            yield prefix + name
        for sub, suffix in inner:
            yield from leaf_fields(sub, f"{prefix}{name}{suffix}.")


def _set(plan: dict[str, Any], path: str, value: Any, item: int | None = None) -> dict[str, Any]:
    """`plan` with the field at `path` set to `value` in the first item of each list but slabs and slab rates,
    where it is the last (so that a change keeps the slabs valid) unless `item` says which."""
    changed = copy.deepcopy(plan)
    node: Any = changed
    parts = path.split(".")
    for part in parts[:-1]:
        key, listed = part.removesuffix("[]"), part.endswith("[]")
        node = node.setdefault(key, {})
        if listed:
            node = node[-1 if item is None else item] if key in ("slabs", "slabRates") else node[0]
    node[parts[-1]] = value
    return changed


def _compose(plan_data: dict[str, Any]) -> ComposedInvoice:
    data = normalize_plan(PricePlanCreate.model_validate(plan_data))
    plan = PricePlan.model_validate({**data.model_dump(), "id": "pp_fields", "createdAt": JAN.start})
    license_id = plan_data["rateCards"]["licenseRateCards"][0]["id"]
    return compose_invoice(plan, "USD", FIRST_PERIOD, JAN, QUANTITIES, licenses={license_id: SEATS})


def _said(line: ComposedLine) -> tuple[Any, ...]:
    return (line.line_type, line.description, line.value, line.rate_card_name, line.quantity,
            tuple(_said(child) for child in line.children))


def _what_the_invoice_says(invoice: ComposedInvoice) -> tuple[Any, ...]:
    return (invoice.sub_total, invoice.true_up, invoice.total, tuple(_said(line) for line in invoice.lines))


def test_every_schema_field_has_a_proof_and_every_proof_a_field() -> None:
    fields = list(leaf_fields(PricePlanCreate))
    missing = [f for f in fields if f not in FIELD_PROOFS]
    stale = [f for f in FIELD_PROOFS if f not in fields]
    assert not missing, f"plan fields accepted with no proof that they are honoured: {missing}"
    assert not stale, f"proofs for fields the schema no longer has: {stale}"


@pytest.mark.parametrize("path", [p for p, proof in FIELD_PROOFS.items() if isinstance(proof, Changes)])
def test_a_field_read_by_composition_changes_the_invoice(path: str) -> None:
    proof = FIELD_PROOFS[path]
    assert isinstance(proof, Changes)
    before = _what_the_invoice_says(_compose(BASE_PLAN))
    after = _what_the_invoice_says(_compose(_set(BASE_PLAN, path, proof.value, proof.item)))
    assert after != before, f"{path} = {proof.value!r} changes nothing the invoice says"


def _test_source(reference: str) -> str:
    file, name = reference.split("::")
    source = (ROOT / file).read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return ast.get_source_segment(source, node) or ""
    raise AssertionError(f"{reference} does not exist")


@pytest.mark.parametrize("path", [p for p, proof in FIELD_PROOFS.items() if isinstance(proof, ProvedBy)])
def test_a_field_proved_elsewhere_names_a_test_that_uses_it(path: str) -> None:
    proof = FIELD_PROOFS[path]
    assert isinstance(proof, ProvedBy)
    assert proof.word in _test_source(proof.test), f"{proof.test} does not mention {proof.word!r} ({path})"
