"""HealthKit quantity types (heartRate, stepCount, ...), their units and aggregation styles, loaded once
from the shipped table (bioweb/data/healthkit-quantity-types.csv; sources and decisions beside it).

Identifiers are HealthKit's short form (``heartRate``); the long form
(``HKQuantityTypeIdentifierHeartRate``) is accepted everywhere and resolves to the short one.
Units are HealthKit unit strings (``count/min``, ``kg``, ``mg/dL``, ``%``) and, like HealthKit's, they
are case-sensitive (``mL`` is a millilitre, ``ML`` would be a megalitre); the aliases people send
(``bpm``, ``lbs``, ``mmol/L``) are matched without regard to case and resolve to a unit of the type.
``%`` values are fractions from 0 to 1, as HealthKit sends them.
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, cast

TABLE = Path(__file__).parent / "data" / "healthkit-quantity-types.csv"
HK_PREFIX = "HKQuantityTypeIdentifier"

Aggregation = Literal["cumulative", "discrete"]


@dataclass(frozen=True)
class QuantityType:
    """One row of the table. `units` starts with the canonical `unit`; `aliases` are (alias, unit) pairs,
    each unit being one of `units`."""

    identifier: str
    hk_identifier: str
    name: str
    unit: str
    units: tuple[str, ...]
    aliases: tuple[tuple[str, str], ...]
    aggregation: Aggregation
    category: str

    @property
    def is_cumulative(self) -> bool:
        """True when the natural figure over a period is a sum (steps, energy), False for discrete types."""
        return self.aggregation == "cumulative"

    @property
    def is_fraction(self) -> bool:
        """True for `%` types, whose values are fractions from 0 to 1 (0.97, not 97)."""
        return self.unit == "%"


def _split(field: str) -> tuple[str, ...]:
    return tuple(part for part in field.split("|") if part)


def _row(row: dict[str, str]) -> QuantityType:
    """One CSV row as an entry; a row that breaks the table's rules stops the load (ValueError)."""
    where = f"{TABLE.name}: {row['identifier']}"
    units = _split(row["units"])
    if not units or units[0] != row["unit"]:
        raise ValueError(f"{where}: units must start with the canonical unit {row['unit']!r}")
    aliases: list[tuple[str, str]] = []
    for pair in _split(row["aliases"]):
        alias, sep, target = pair.partition("=")
        if not sep or not alias or target not in units:
            raise ValueError(f"{where}: alias {pair!r} is not alias=unit with a unit of the row")
        aliases.append((alias, target))
    aggregation = row["aggregation"]
    if aggregation not in ("cumulative", "discrete"):
        raise ValueError(f"{where}: unknown aggregation {aggregation!r}")
    if not row["hk_identifier"].startswith(HK_PREFIX):
        raise ValueError(f"{where}: hk_identifier must start with {HK_PREFIX}")
    return QuantityType(
        identifier=row["identifier"],
        hk_identifier=row["hk_identifier"],
        name=row["name"],
        unit=row["unit"],
        units=units,
        aliases=tuple(aliases),
        aggregation=cast(Aggregation, aggregation),
        category=row["category"],
    )


@cache
def _table() -> dict[str, QuantityType]:
    """Short identifier -> entry, in the file's order (category, then the table's own order)."""
    with TABLE.open(newline="", encoding="utf-8") as fh:
        return {entry.identifier: entry for entry in map(_row, csv.DictReader(fh))}


@cache
def _by_hk_suffix() -> dict[str, QuantityType]:
    """The long identifier without its prefix ("HeartRate", "VO2Max") -> entry."""
    return {entry.hk_identifier[len(HK_PREFIX) :]: entry for entry in _table().values()}


@cache
def _by_folded() -> dict[str, QuantityType]:
    """Case-folded short identifier -> entry, for suggestions only (lookups are case-sensitive)."""
    return {identifier.casefold(): entry for identifier, entry in _table().items()}


def all_types() -> list[QuantityType]:
    """Every quantity type of the table, in the file's order."""
    return list(_table().values())


def lookup(sample_type: str) -> QuantityType | None:
    """The entry for a HealthKit quantity type identifier, or None.

    Accepts the short form, case-sensitively as HealthKit spells it (``heartRate``, ``vo2Max``), and the
    long form (``HKQuantityTypeIdentifierHeartRate``), whose prefix is matched without regard to case.
    Surrounding whitespace is ignored.
    """
    text = sample_type.strip()
    entry = _table().get(text)
    if entry is not None:
        return entry
    if text[: len(HK_PREFIX)].casefold() == HK_PREFIX.casefold():
        return _by_hk_suffix().get(text[len(HK_PREFIX) :])
    return None


def resolve_unit(qtype: QuantityType, unit: str) -> str | None:
    """The HealthKit unit string to store for `unit` sent with a sample of `qtype`, or None when it does
    not fit the type.

    A unit of the type (``count/min``, ``lb``) resolves to itself, matched exactly (HealthKit unit strings
    are case-sensitive); an alias (``bpm``, ``LBS``, ``mmol/L``) resolves to its unit, matched without
    regard to case. Nothing is converted: a metric in ``lb`` stores pounds.
    """
    text = unit.strip()
    if text in qtype.units:
        return text
    folded = text.casefold()
    for alias, target in qtype.aliases:
        if alias.casefold() == folded:
            return target
    return None


def fitting_units(qtype: QuantityType) -> list[str]:
    """What may be sent as the unit of `qtype`, for error messages: its units (canonical first), then its
    aliases, without repeats ("count/min, count/s, bpm, ...")."""
    seen: dict[str, None] = dict.fromkeys(qtype.units)
    for alias, _target in qtype.aliases:
        seen.setdefault(alias, None)
    return list(seen)


def suggest(sample_type: str, limit: int = 5) -> list[str]:
    """Known short identifiers closest to `sample_type`, best first (for "did you mean" messages).

    Compares without regard to case, so ``heartrate`` proposes ``heartRate``; a long identifier is
    compared by its part after the prefix.
    """
    text = sample_type.strip()
    if text[: len(HK_PREFIX)].casefold() == HK_PREFIX.casefold():
        text = text[len(HK_PREFIX) :]
    folded = text.casefold()
    matches = difflib.get_close_matches(folded, list(_by_folded()), n=limit, cutoff=0.6)
    return [_by_folded()[m].identifier for m in matches]
