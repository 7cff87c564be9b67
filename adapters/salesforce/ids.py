"""Salesforce record IDs: 15 case-sensitive characters, or 18 with a case-safe checksum.

The first three characters name the object (key prefix): 00Q Lead, 006 Opportunity, 001 Account,
003 Contact. The API returns 18-character IDs and accepts both forms.
"""

from __future__ import annotations

import re

_ID = re.compile(r"[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?")
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def checksum(id15: str) -> str:
    """The three characters that make a 15-character ID case-safe: one per five characters, each
    encoding which of them are upper case."""
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, char in enumerate(chunk) if "A" <= char <= "Z")
        suffix += _CHECKSUM_ALPHABET[bits]
    return suffix


def to_18(record_id: str) -> str:
    return record_id if len(record_id) == 18 else record_id + checksum(record_id)


def is_well_formed(record_id: str) -> bool:
    """15 alphanumerics, or 18 whose last three are the right checksum."""
    if _ID.fullmatch(record_id) is None:
        return False
    return len(record_id) == 15 or checksum(record_id[:15]) == record_id[15:]
