"""Idempotency keys: what makes two calls with one key the same payment or proposal. Pure.

A keyed request is stored with its fingerprint; a later call with the key either is the same request (the
first answer is returned, nothing moves again) or is refused. Fingerprints written before migration 4 are
the hex of the sorted `json.dumps`, and are compared as they were computed then.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import rfc8785

from servers.common.receipts import ApprovalReceipt

Fingerprint = bytes | str
"""32 bytes; or 64 hex digits, written before migration 4."""


@dataclass(frozen=True)
class PaymentRequest:
    """What makes two calls with one idempotency key the same payment (or proposal)."""

    payer: str
    payee: str
    amount: int
    memo: str
    approval: ApprovalReceipt | None

    def fingerprint(self) -> bytes:
        """SHA-256 of the request's RFC 8785 canonical JSON, numbers as strings: RFC 8785 refuses integers
        beyond 2^53, and amounts and expiries may be larger."""
        approval = None if self.approval is None else self.approval.model_dump(mode="json")
        fields: dict[str, Any] = {
            "from": self.payer,
            "to": self.payee,
            "amount": str(self.amount),
            "memo": self.memo,
            "approval": None if approval is None else {k: _text(v) for k, v in approval.items()},
        }
        return hashlib.sha256(rfc8785.dumps(fields)).digest()

    def matches(self, stored: Fingerprint | None) -> bool:
        """Whether `stored`, an earlier request's fingerprint, is this request's."""
        if isinstance(stored, str):  # written before migration 4, as it was computed then
            approval = None if self.approval is None else self.approval.model_dump(mode="json")
            fields = {
                "from": self.payer,
                "to": self.payee,
                "amount": self.amount,
                "memo": self.memo,
                "approval": approval,
            }
            return stored == hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
        return stored == self.fingerprint()


def _text(value: object) -> object:
    return str(value) if isinstance(value, int) else value
