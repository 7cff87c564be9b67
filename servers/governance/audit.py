"""The audit log's hash chain: each entry commits to the one before it. Pure.

    hash(n) = sha256( hash(n-1) ‖ canonical JSON {seq, at, kind, subject, body} ),  hash(0) = "0" * 64

Changing, removing or reordering any entry breaks every hash after it; `verify` names the first entry
whose sequence, link or hash does not hold. (Cutting entries off the end leaves a shorter, valid chain:
compare `head` with a copy kept elsewhere to detect that.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from servers.governance.models import AuditReport

GENESIS = "0" * 64


@dataclass(frozen=True)
class Entry:
    seq: int
    at: float
    kind: str
    subject: str
    body: dict[str, Any]
    prev_hash: str
    hash: str


def link(seq: int, at: float, kind: str, subject: str, body: dict[str, Any], prev_hash: str) -> str:
    canonical = json.dumps(
        {"seq": seq, "at": at, "kind": kind, "subject": subject, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(f"{prev_hash}{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Verdict:
    entries: int
    first_tampered: int | None
    detail: str
    head: str | None


def verify(entries: Iterable[Entry]) -> Verdict:
    previous, expected_seq, count = GENESIS, 1, 0
    for entry in entries:
        count += 1
        if entry.seq != expected_seq:
            return Verdict(count, entry.seq, f"entry {expected_seq} is missing (found {entry.seq} next)", None)
        if entry.prev_hash != previous:
            return Verdict(count, entry.seq, f"entry {entry.seq} does not link to entry {entry.seq - 1}", None)
        if link(entry.seq, entry.at, entry.kind, entry.subject, entry.body, entry.prev_hash) != entry.hash:
            return Verdict(count, entry.seq, f"entry {entry.seq} ({entry.kind} {entry.subject}) was altered", None)
        previous, expected_seq = entry.hash, entry.seq + 1
    head = None if count == 0 else previous
    return Verdict(count, None, f"all {count} entries link and hash correctly", head)


def report(verdict: Verdict) -> AuditReport:
    return AuditReport(
        entries=verdict.entries,
        intact=verdict.first_tampered is None,
        first_tampered=verdict.first_tampered,
        detail=verdict.detail,
        head=verdict.head,
    )
