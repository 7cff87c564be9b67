"""Bad input at governance: policies that would stall or crash the reader, values canonical JSON cannot
carry, and an audit log edited behind governance's back, column by column."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import rfc8785
import yaml
from mcp import Client

from servers.common.db import Database
from servers.governance import audit
from servers.governance.store import MIGRATIONS, GovernanceStore
from tests.helpers import scaled
from tests.servers.governance.conftest import POLICY, Harness, call, refused

pytestmark = pytest.mark.anyio

BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]" for prev, name in zip("abcdefgh", "bcdefghi", strict=True)),
    ]
)


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        ("a: " + "[" * 40_000 + "]" * 40_000, "nests more than 16 levels deep at line 1"),
        ("name: x\nrules: {}\n" + "a: " + "[" * 17 + "]" * 17, "nests more than 16 levels deep at line 3"),
        (BILLION_LAUGHS, "the policy sets the YAML anchor &a at line 1, column 4; a policy is plain data"),
        ("name: " + "x" * 140_000, "the policy is 140006 bytes long; at most 131072 bytes are accepted"),
        (
            "9" * 5000,
            "the policy's value '9999999999999999999999999999999999999999'… at line 1, column 1 is not a valid int",
        ),
        ("name: x\nrules: {}\nwhen: 2001-02-30", "value '2001-02-30' at line 3, column 7 is not a valid timestamp"),
        ("name: !!float x\nrules: {}", "value 'x' at line 1, column 7 is not a valid float; quote it"),
        ("name: 2001-02-03\nrules: {}", "name: date datetime.date(2001, 2, 3) is not JSON data; quote it"),
        ("name: x\nrules: {1: []}", "rules: the key 1 is not text; quote it"),
        ("name: x\nrules: {}\ncompliance: {blocked_categories: [a, a]}", "'a' is listed twice"),
        (
            "name: x\nrules: {payment: [{id: r, effect: deny, when: {reputation_below: .nan}}]}",
            "rules.payment[0].when.reputation_below: nan is not a finite number",
        ),
        (
            "name: x\n"
            "rules: {payment: [{id: r, effect: deny, when: {velocity: {window: 1h, max_count: 9007199254740992}}}]}",
            "max_count: 9007199254740992 is beyond ±9007199254740991, the integers JSON keeps exact",
        ),
    ],
)
async def test_a_policy_that_would_stall_or_crash_the_reader_is_refused_fast_and_changes_nothing(
    client: Client, policy: str, says: str
) -> None:
    before = await call(client, "get_policy")
    audited = (await call(client, "verify_audit"))["entries"]
    started = time.perf_counter()
    message = await refused(client, "set_policy", policy=policy)
    assert time.perf_counter() - started < scaled(2)  # the 80 KB nesting alone took 54 s, blocking every server
    assert says in message, message
    assert await call(client, "get_policy") == before
    assert (await call(client, "verify_audit"))["entries"] == audited


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        ("name: &n test\nrules: {}", "sets the YAML anchor &n at line 1, column 7"),
        ("name: x\nrules: {payment: &r []}\naction_types: *r", "sets the YAML anchor &r at line 2, column 18"),
        ("name: x\nrules: {}\naction_types: *r", "uses the YAML alias *r at line 3, column 15"),
        (POLICY.replace("  desk:\n", "  desk: &desk\n"), "sets the YAML anchor &desk at line 13, column 9"),
    ],
)
async def test_a_policy_with_any_yaml_anchor_or_alias_is_refused_and_changes_nothing(
    client: Client, policy: str, says: str
) -> None:
    """An alias only multiplies data: a bounded expansion still turned 345 bytes into megabytes stored in the
    audit log and served back by get_policy. A policy is plain data; the first anchor or alias is named."""
    before = await call(client, "get_policy")
    audited = (await call(client, "verify_audit"))["entries"]
    message = await refused(client, "set_policy", policy=policy)
    assert says in message and "a policy is plain data, so YAML anchors and aliases are refused" in message, message
    assert message.endswith("write the repeated value out where it is used")
    assert await call(client, "get_policy") == before
    assert (await call(client, "verify_audit"))["entries"] == audited


async def test_a_policy_as_an_object_holds_at_most_128_kb_of_text(client: Client) -> None:
    before = await call(client, "get_policy")
    names = [f"{index:04d}" + "x" * 996 for index in range(140)]  # 140 KB of valid, distinct counterparties
    policy = {"name": "x", "rules": {}, "compliance": {"blocked_counterparties": names}}
    message = await refused(client, "set_policy", policy=policy)
    assert message == "the policy holds more than 131072 characters of keys and text"
    assert await call(client, "get_policy") == before
    accepted = await call(client, "set_policy", policy=policy | {"compliance": {"blocked_counterparties": names[:100]}})
    assert len(accepted["document"]["compliance"]["blocked_counterparties"]) == 100


async def test_a_policy_as_an_object_is_bounded_too(client: Client) -> None:
    deep: Any = "x"
    for _ in range(20):
        deep = {"a": deep}
    message = await refused(client, "set_policy", policy={"name": "x", "rules": {}, "compliance": deep})
    assert "nests more than 16 levels deep" in message


async def test_an_action_payload_canonical_json_cannot_carry_is_refused_and_not_recorded(
    client: Client, harness: Harness
) -> None:
    audited = (await call(client, "verify_audit"))["entries"]
    action = harness.payment("1", payload={"units": 2**60})
    message = await refused(client, "evaluate_action", agent_id=harness.agent, action=action)
    assert "action.payload cannot be hashed as canonical JSON: 1152921504606846976 exceeds" in message
    assert "send numbers as strings" in message
    assert (await call(client, "verify_audit"))["entries"] == audited


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"blob": "x" * 1_000_000}, "payload is 1000011 bytes as JSON; at most 16384 bytes are accepted"),
        ({f"k{index}": index for index in range(65)}, "holds 65 items; at most 64 items are accepted"),
        ({"k" * 65: 1}, "holds 65 characters; at most 64 characters are accepted"),
        (json.loads('{"a":' * 17 + "1" + "}" * 17), "payload nests more than 16 levels deep, the most accepted"),
    ],
)
async def test_an_oversized_action_payload_is_refused_and_stores_nothing(
    client: Client, harness: Harness, payload: dict[str, Any], says: str
) -> None:
    """Forty evaluate_action calls with megabyte payloads once made governance.db 288 MB: each decision and
    audit entry keeps the action whole. The payload is bounded; a refusal names its size and the limit."""
    audited = (await call(client, "verify_audit"))["entries"]
    for tool in ("evaluate_action", "explain"):
        message = await refused(client, tool, agent_id=harness.agent, action=harness.payment("1", payload=payload))
        assert says in message, message
    assert (await call(client, "verify_audit"))["entries"] == audited
    with sqlite3.connect(harness.db.path) as raw:
        assert raw.execute("SELECT count(*) FROM decisions").fetchone() == (0,)
    room = {"blob": "x" * 16_000}  # just under the bound: accepted, and kept whole
    decision = await call(client, "evaluate_action", agent_id=harness.agent, action=harness.payment("1", payload=room))
    assert decision["action"]["payload"] == room


async def test_the_policy_version_is_the_hash_of_its_rfc8785_form(client: Client) -> None:
    view = await call(client, "set_policy", policy=POLICY.replace("required: 2", "required: 2.0"))
    expected = hashlib.sha256(rfc8785.dumps(yaml.safe_load(POLICY.replace("required: 2", "required: 2.0"))))
    assert view["version"] == "sha256:" + expected.hexdigest()


COLUMNS = {
    "seq": "seq = seq + 100",
    "at": "at = at + 1",
    "kind": "kind = 'vote'",
    "subject": "subject = subject || 'x'",
    "body": 'body = replace(body, \'"outcome": "approved"\', \'"outcome": "denied"\')',
    "prev_hash": "prev_hash = '" + "f" * 64 + "'",
    "hash": "hash = '" + "e" * 64 + "'",
    "at (to text)": "at = 'noon'",
    "body (to text)": "body = 'not json'",
}


@pytest.mark.parametrize("column", list(COLUMNS))
async def test_changing_any_column_of_an_audit_entry_is_found_and_named(
    client: Client, harness: Harness, column: str
) -> None:
    for amount in ("1", "2", "3"):
        await call(client, "evaluate_action", agent_id=harness.agent, action=harness.payment(amount))
    assert (await call(client, "verify_audit"))["intact"]
    with sqlite3.connect(harness.db.path) as raw:  # someone edits the log behind governance's back
        raw.execute(f"UPDATE audit SET {COLUMNS[column]} WHERE seq = 2")
    report = await call(client, "verify_audit")
    assert not report["intact"] and report["first_tampered"] in (2, 3, 102), report
    assert ("entry 2" in report["detail"] or "entry 102" in report["detail"]) and report["head"] is None


async def test_a_log_written_before_rfc8785_still_verifies_and_grows_with_the_new_encoding(tmp_path: Path) -> None:
    path = tmp_path / "governance.db"
    legacy = {"seq": 0, "amount": 1.0, "ratio": 1e21, "name": "Zoë"}  # numbers the two encodings write differently
    async with Database.open(path, MIGRATIONS[:1]):  # the schema as the previous release left it
        pass
    with sqlite3.connect(path) as raw:
        previous = audit.GENESIS
        for seq in (1, 2):
            at, body = 1_790_000_000.0 + seq, legacy | {"seq": seq}
            digest = audit.link(seq, at, "decision", f"dec-{seq}", body, previous, "sorted-json")
            assert digest != audit.link(seq, at, "decision", f"dec-{seq}", body, previous, "rfc8785")
            raw.execute(
                "INSERT INTO audit VALUES (?, ?, 'decision', ?, ?, ?, ?)",
                (seq, at, f"dec-{seq}", json.dumps(body, sort_keys=True), previous, digest),
            )
            previous = digest
    async with Database.open(path, MIGRATIONS) as db:  # migration 2 records where RFC 8785 begins
        store = GovernanceStore(db)
        await store.write(lambda tx: tx.append_audit("decision", "dec-3", legacy | {"seq": 3}, 1_790_000_003.0))
        entries = await store.read(lambda tx: tx.audit_entries())
    assert [entry.encoding for entry in entries] == ["sorted-json", "sorted-json", "rfc8785"]
    assert audit.verify(entries).first_tampered is None
    with sqlite3.connect(path) as raw:  # moving the boundary makes entries read in the wrong encoding
        raw.execute("UPDATE audit_encoding SET rfc8785_from = 1")
    async with Database.open(path, MIGRATIONS) as db:
        entries = await GovernanceStore(db).read(lambda tx: tx.audit_entries())
    assert audit.verify(entries).first_tampered == 1
