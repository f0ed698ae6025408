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


def _plain(text: str) -> str:
    """Lower case, runs of white space as one space: how typed text and the table are compared."""
    return " ".join(text.lower().split())


@cache
def _spellings() -> dict[str, list[DeviceCode]]:
    """Each code and each product name (plain) -> its entries (a name may have several codes)."""
    found: dict[str, list[DeviceCode]] = {}
    for entry in _table().values():
        for key in dict.fromkeys((_plain(entry.code), _plain(entry.product_name))):
            found.setdefault(key, []).append(entry)
    return found


def search(text: str, limit: int = 20) -> list[DeviceCode]:
    """Entries for what a person typed, a model identifier or a product name, whole or begun,
    in any case, best first: an exact code or name ("iPhone 13" is iPhone14,5); then names that
    go on from it ("iPhone 13 Pro"); then codes or names that start with it; then ones that
    contain it; each in the table's order. When nothing contains it, the closest spellings
    ("Wacth6,1" -> Watch6,1). The one lookup behind the dashboard's suggestions
    (/devices/codes) and the API's "did you mean".
    """
    needle = _plain(text)
    if not needle:
        return []
    ranked: list[tuple[int, int, DeviceCode]] = []
    for position, entry in enumerate(_table().values()):
        code, name = _plain(entry.code), _plain(entry.product_name)
        if needle in (code, name):
            rank = 0
        elif name.startswith(needle) and not name[len(needle)].isalnum():
            rank = 1
        elif code.startswith(needle) or name.startswith(needle):
            rank = 2
        elif needle in code or needle in name:
            rank = 3
        else:
            continue
        ranked.append((rank, position, entry))
    found = [entry for _, _, entry in sorted(ranked, key=lambda item: item[:2])]
    if not found:
        spellings = _spellings()
        for key in difflib.get_close_matches(needle, list(spellings), n=limit, cutoff=0.6):
            found.extend(entry for entry in spellings[key] if entry not in found)
    return found[:limit]


def described(entries: list[DeviceCode]) -> str:
    """'iPhone14,5 (iPhone 13), iPhone14,2 (iPhone 13 Pro)': codes with their product names."""
    return ", ".join(f"{entry.code} ({entry.product_name})" for entry in entries)
