"""Apple model identifiers ("iPhone1,1") and their product names, loaded once from the shipped table."""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TABLE = Path(__file__).parent / "data" / "apple-device-codes.csv"


@dataclass(frozen=True)
class DeviceCode:
    code: str
    product_name: str
    family: str


@cache
def _table() -> dict[str, DeviceCode]:
    """Lower-cased code -> entry, in the file's order (family, then natural order)."""
    with TABLE.open(newline="", encoding="utf-8") as fh:
        return {row["code"].lower(): DeviceCode(**row) for row in csv.DictReader(fh)}


def all_codes() -> list[DeviceCode]:
    return list(_table().values())


def lookup(code: str) -> DeviceCode | None:
    """The entry for `code`, matched case-insensitively, or None."""
    return _table().get(code.strip().lower())


def suggest(code: str, limit: int = 5) -> list[str]:
    """Known codes closest to `code`, best first (for 'did you mean' messages)."""
    matches = difflib.get_close_matches(code.strip().lower(), list(_table()), n=limit, cutoff=0.6)
    return [_table()[m].code for m in matches]


def search(text: str, limit: int = 20) -> list[DeviceCode]:
    """Entries whose code or product name contains `text` (the dashboard's suggestions)."""
    needle = text.strip().lower()
    if not needle:
        return []
    hits = [e for e in _table().values() if needle in e.code.lower() or needle in e.product_name.lower()]
    return hits[:limit]
