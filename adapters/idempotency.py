"""Fingerprints of creates made with an idempotency key: a key used again must carry the same request.

A fingerprint is the SHA-256 of the request's RFC 8785 canonical JSON (rfc8785). Fingerprints stored
before the adapters' store migration 2 were taken over `json.dumps(..., sort_keys=True)`; that migration
marks them with LEGACY, and `matches` still recognises them, so a key used before the change keeps working.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

LEGACY = "sorted-json:"
MARK_LEGACY_SQL = f"UPDATE requests SET fingerprint = '{LEGACY}' || fingerprint"


def fingerprint(request: Any) -> str:
    """Raises rfc8785.CanonicalizationError for what JSON cannot carry exactly (NaN, Infinity, integers
    beyond ±2^53); callers refuse such values first, naming them."""
    return hashlib.sha256(rfc8785.dumps(request)).hexdigest()


def matches(stored: str, request: Any) -> bool:
    """Whether a fingerprint stored for a key was taken over this request."""
    if stored.startswith(LEGACY):
        legacy = json.dumps(request, sort_keys=True).encode()
        return stored.removeprefix(LEGACY) == hashlib.sha256(legacy).hexdigest()
    return stored == fingerprint(request)
