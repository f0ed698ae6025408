"""The shipped HealthKit quantity-type table and bioweb.quantitytypes (no app, no database)."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from bioweb import quantitytypes
from bioweb.quantitytypes import HK_PREFIX, TABLE, QuantityType

# The types issue 11 requires: short identifier, canonical unit, aggregation style.
REQUIRED = [
    ("heartRate", "count/min", "discrete"),
    ("restingHeartRate", "count/min", "discrete"),
    ("heartRateVariabilitySDNN", "ms", "discrete"),
    ("stepCount", "count", "cumulative"),
    ("distanceWalkingRunning", "m", "cumulative"),
    ("activeEnergyBurned", "kcal", "cumulative"),
    ("basalEnergyBurned", "kcal", "cumulative"),
    ("flightsClimbed", "count", "cumulative"),
    ("bodyMass", "kg", "discrete"),
    ("bodyMassIndex", "count", "discrete"),
    ("bodyFatPercentage", "%", "discrete"),
    ("height", "m", "discrete"),
    ("bodyTemperature", "degC", "discrete"),
    ("oxygenSaturation", "%", "discrete"),
    ("respiratoryRate", "count/min", "discrete"),
    ("bloodPressureSystolic", "mmHg", "discrete"),
    ("bloodPressureDiastolic", "mmHg", "discrete"),
    ("bloodGlucose", "mg/dL", "discrete"),
    ("vo2Max", "ml/(kg*min)", "discrete"),
    ("environmentalAudioExposure", "dBASPL", "discrete"),
]

# Types HealthKit measures in percent (fractions 0..1).
PERCENT_TYPES = [
    "bodyFatPercentage",
    "oxygenSaturation",
    "atrialFibrillationBurden",
    "peripheralPerfusionIndex",
    "bloodAlcoholContent",
    "walkingAsymmetryPercentage",
    "walkingDoubleSupportPercentage",
    "appleWalkingSteadiness",
]

# Short forms that are Apple's Swift names rather than the mechanical "drop the prefix, lower-case the
# first letter" (which would give vO2Max and uVExposure).
SWIFT_NAMES = {"HKQuantityTypeIdentifierVO2Max": "vo2Max", "HKQuantityTypeIdentifierUVExposure": "uvExposure"}

CATEGORIES = {
    "Activity",
    "Body measurements",
    "Vital signs",
    "Lab and test results",
    "Hearing",
    "Mobility",
    "Nutrition",
    "Reproductive health",
    "Alcohol consumption",
    "UV exposure",
    "Diving",
    "Other",
}


def _raw_rows() -> list[dict[str, str]]:
    with TABLE.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _get(identifier: str) -> QuantityType:
    qtype = quantitytypes.lookup(identifier)
    assert qtype is not None, identifier
    return qtype


@pytest.mark.parametrize(("identifier", "unit", "aggregation"), REQUIRED)
def test_required_type_present(identifier: str, unit: str, aggregation: str) -> None:
    qtype = _get(identifier)
    assert qtype.identifier == identifier
    assert qtype.unit == unit
    assert qtype.aggregation == aggregation
    assert qtype.is_cumulative is (aggregation == "cumulative")
    assert unit in qtype.units


@pytest.mark.parametrize(("identifier", "unit", "aggregation"), REQUIRED)
def test_long_identifier_resolves_to_short(identifier: str, unit: str, aggregation: str) -> None:
    qtype = _get(identifier)
    assert quantitytypes.lookup(qtype.hk_identifier) is qtype
    assert quantitytypes.lookup(f"  {qtype.hk_identifier} ") is qtype


def test_long_identifier_prefix_is_tolerated_in_any_case() -> None:
    assert _get("hkquantitytypeidentifierHeartRate").identifier == "heartRate"
    assert _get("HKQuantityTypeIdentifierVO2Max").identifier == "vo2Max"


def test_short_identifier_is_case_sensitive() -> None:
    assert quantitytypes.lookup("heartrate") is None
    assert quantitytypes.lookup("HeartRate") is None
    assert quantitytypes.lookup("HKQuantityTypeIdentifierheartRate") is None
    assert quantitytypes.lookup("") is None
    assert quantitytypes.lookup("other") is None


@pytest.mark.parametrize(
    ("identifier", "sent", "stored"),
    [
        ("heartRate", "bpm", "count/min"),
        ("heartRate", "BPM", "count/min"),
        ("heartRate", "count/min", "count/min"),
        ("heartRate", " count/min ", "count/min"),
        ("heartRate", "count/s", "count/s"),
        ("restingHeartRate", "beats/min", "count/min"),
        ("respiratoryRate", "breaths/min", "count/min"),
        ("bodyMass", "lbs", "lb"),
        ("bodyMass", "lb", "lb"),
        ("bodyMass", "st", "st"),
        ("bodyTemperature", "°F", "degF"),
        ("bodyTemperature", "celsius", "degC"),
        ("bloodGlucose", "mmol/L", "mmol<180.1558800000541>/L"),
        ("bloodGlucose", "mg/dl", "mg/dL"),
        ("distanceWalkingRunning", "km", "km"),
        ("distanceWalkingRunning", "miles", "mi"),
        ("activeEnergyBurned", "kJ", "kJ"),
        ("oxygenSaturation", "percent", "%"),
        ("environmentalAudioExposure", "dBA", "dBASPL"),
        ("dietaryWater", "ml", "mL"),
        ("vo2Max", "mL/kg/min", "ml/(kg*min)"),
    ],
)
def test_unit_and_alias_resolve(identifier: str, sent: str, stored: str) -> None:
    assert quantitytypes.resolve_unit(_get(identifier), sent) == stored


@pytest.mark.parametrize(
    ("identifier", "sent"),
    [
        ("heartRate", "kg"),
        ("heartRate", ""),
        ("bodyMass", "count/min"),
        ("bodyMass", "KG"),  # HealthKit unit strings are case-sensitive; only aliases are not
        ("stepCount", "m"),
        ("oxygenSaturation", "count"),
        ("bloodGlucose", "mmol"),
        ("activeEnergyBurned", "cal"),  # HealthKit's "cal" is the small calorie, not one of the type's units
        ("dietaryWater", "gal"),
    ],
)
def test_unit_that_does_not_fit_is_refused(identifier: str, sent: str) -> None:
    assert quantitytypes.resolve_unit(_get(identifier), sent) is None


def test_fitting_units_lists_units_then_aliases() -> None:
    heart = _get("heartRate")
    fitting = quantitytypes.fitting_units(heart)
    assert fitting[0] == "count/min"
    assert "bpm" in fitting
    assert "kg" not in fitting
    assert len(fitting) == len(set(fitting))
    assert fitting[: len(heart.units)] == list(heart.units)
    assert quantitytypes.fitting_units(_get("bodyMass"))[:4] == ["kg", "lb", "g", "st"]


def test_every_fitting_unit_resolves() -> None:
    for qtype in quantitytypes.all_types():
        for sent in quantitytypes.fitting_units(qtype):
            assert quantitytypes.resolve_unit(qtype, sent) in qtype.units, (qtype.identifier, sent)


def test_csv_has_no_duplicate_identifiers() -> None:
    rows = _raw_rows()
    for column in ("identifier", "hk_identifier"):
        counts = Counter(row[column] for row in rows)
        assert [value for value, n in counts.items() if n > 1] == [], column
    assert len(quantitytypes.all_types()) == len(rows)


def test_csv_header_and_fields() -> None:
    with TABLE.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header == [
        "identifier",
        "hk_identifier",
        "name",
        "unit",
        "units",
        "aliases",
        "aggregation",
        "category",
    ]
    for row in _raw_rows():
        assert all(value == value.strip() and value for key, value in row.items() if key != "aliases"), row
        assert row["aggregation"] in ("cumulative", "discrete"), row
        assert row["category"] in CATEGORIES, row


def test_every_row_canonical_unit_is_accepted_and_aliases_point_into_units() -> None:
    for qtype in quantitytypes.all_types():
        assert qtype.units[0] == qtype.unit, qtype.identifier
        assert len(set(qtype.units)) == len(qtype.units), qtype.identifier
        for alias, target in qtype.aliases:
            assert target in qtype.units, (qtype.identifier, alias)
            assert alias not in qtype.units, (qtype.identifier, alias)


def test_aliases_are_unambiguous_within_a_type() -> None:
    """Aliases match without regard to case, so no two may fold together with different units, and none
    may fold onto a unit of the type while meaning another."""
    for qtype in quantitytypes.all_types():
        targets: dict[str, str] = {}
        for alias, target in qtype.aliases:
            assert targets.setdefault(alias.casefold(), target) == target, (qtype.identifier, alias)
        for unit in qtype.units:
            assert targets.get(unit.casefold(), unit) == unit, (qtype.identifier, unit)


def test_short_identifier_derives_from_long() -> None:
    for qtype in quantitytypes.all_types():
        assert qtype.hk_identifier.startswith(HK_PREFIX)
        suffix = qtype.hk_identifier[len(HK_PREFIX) :]
        expected = SWIFT_NAMES.get(qtype.hk_identifier, suffix[0].lower() + suffix[1:])
        assert qtype.identifier == expected


@pytest.mark.parametrize("identifier", PERCENT_TYPES)
def test_percent_types_say_so(identifier: str) -> None:
    qtype = _get(identifier)
    assert qtype.unit == "%"
    assert qtype.units == ("%",)
    assert qtype.is_fraction


def test_only_percent_types_are_fractions() -> None:
    fractions = {q.identifier for q in quantitytypes.all_types() if q.is_fraction}
    assert fractions == set(PERCENT_TYPES)
    for qtype in quantitytypes.all_types():
        if "Percentage" in qtype.identifier:
            assert qtype.is_fraction, qtype.identifier


def test_suggest_proposes_close_matches() -> None:
    assert quantitytypes.suggest("heartrate")[0] == "heartRate"
    assert quantitytypes.suggest("vO2Max")[0] == "vo2Max"
    assert quantitytypes.suggest("HKQuantityTypeIdentifierStepcount")[0] == "stepCount"
    assert quantitytypes.suggest("stepcont")[0] == "stepCount"
    assert quantitytypes.suggest("zzzz") == []
    assert len(quantitytypes.suggest("distance", limit=3)) <= 3


def test_all_types_order_and_categories() -> None:
    types = quantitytypes.all_types()
    assert types[0].identifier == "stepCount"
    assert {q.category for q in types} <= CATEGORIES
    # Rows of one category are contiguous.
    seen: list[str] = []
    for qtype in types:
        if not seen or seen[-1] != qtype.category:
            assert qtype.category not in seen, qtype.identifier
            seen.append(qtype.category)


def test_cumulative_and_discrete_examples() -> None:
    cumulative = {
        "stepCount",
        "distanceCycling",
        "dietaryEnergyConsumed",
        "appleExerciseTime",
        "insulinDelivery",
    }
    discrete = {
        "walkingHeartRateAverage",
        "leanBodyMass",
        "basalBodyTemperature",
        "walkingSpeed",
        "uvExposure",
    }
    for identifier in cumulative:
        assert _get(identifier).is_cumulative, identifier
    for identifier in discrete:
        assert not _get(identifier).is_cumulative, identifier
