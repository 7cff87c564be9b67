"""The audit log's hash chain: each entry commits to the one before it. Pure.

    hash(n) = sha256( hash(n-1) ‖ canonical JSON {seq, at, kind, subject, body} ),  hash(0) = "0" * 64

Changing, removing or reordering any entry breaks every hash after it; `verify` names the first entry
whose sequence, link or hash does not hold. (Cutting entries off the end leaves a shorter, valid chain:
compare `head` with a copy kept elsewhere to detect that.)

The canonical JSON is RFC 8785. Logs written before it was adopted hashed `json.dumps(sort_keys=True,
separators=(",", ":"), ensure_ascii=False)`, which writes some numbers differently (1.0 where RFC 8785
writes 1). Their entries keep that encoding: the store's migration records the first sequence number
linked with RFC 8785, once, and each entry is checked with the one encoding that applies to it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import rfc8785

from servers.governance.models import AuditReport

GENESIS = "0" * 64
Encoding = Literal["rfc8785", "sorted-json"]
"""How an entry's fields were made canonical: RFC 8785, or the sorted `json.dumps` of older logs."""


@dataclass(frozen=True)
class Entry:
    seq: int
    at: float
    kind: str
    subject: str
    body: dict[str, Any]
    prev_hash: str
    hash: str
    encoding: Encoding = "rfc8785"


def link(
    seq: int,
    at: float,
    kind: str,
    subject: str,
    body: dict[str, Any],
    prev_hash: str,
    encoding: Encoding = "rfc8785",
) -> str:
    fields: Any = {"seq": seq, "at": at, "kind": kind, "subject": subject, "body": body}
    if encoding == "rfc8785":
        canonical = rfc8785.dumps(fields)
    else:
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


def encoding_of(seq: int, rfc8785_from: int) -> Encoding:
    """The encoding entry `seq` was linked with, given the first sequence number linked with RFC 8785."""
    return "rfc8785" if seq >= rfc8785_from else "sorted-json"


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
        if _link_of(entry) != entry.hash:
            return Verdict(count, entry.seq, f"entry {entry.seq} ({entry.kind} {entry.subject}) was altered", None)
        previous, expected_seq = entry.hash, entry.seq + 1
    head = None if count == 0 else previous
    return Verdict(count, None, f"all {count} entries link and hash correctly", head)


def _link_of(entry: Entry) -> str | None:
    try:
        return link(entry.seq, entry.at, entry.kind, entry.subject, entry.body, entry.prev_hash, entry.encoding)
    except (rfc8785.CanonicalizationError, TypeError, ValueError):  # an altered body no encoder accepts
        return None


def report(verdict: Verdict) -> AuditReport:
    return AuditReport(
        entries=verdict.entries,
        intact=verdict.first_tampered is None,
        first_tampered=verdict.first_tampered,
        detail=verdict.detail,
        head=verdict.head,
    )
