"""Governance's tools through an MCP client, in both protocol eras."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import anyio
import mcp_types as types
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from mcp import Client
from mcp.shared.exceptions import MCPError

from servers.common.identity import new_agent_did
from tests.helpers import high_s_twin, scaled
from tests.servers.governance.conftest import APPROVERS, PAYEE, PAYER, Harness, call, refused, sign

pytestmark = pytest.mark.anyio

TOOLS = {
    "evaluate_action",
    "explain",
    "verify_agent_action",
    "submit_approval",
    "reject_approval",
    "ask_host_approval",
    "get_decision",
    "list_pending_approvals",
    "get_policy",
    "set_policy",
    "set_agent_profile",
    "verify_audit",
}


async def audit_count(client: Client) -> int:
    return int((await call(client, "verify_audit"))["entries"])


async def test_every_tool_is_described_and_annotated(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    assert all(tool.description and tool.annotations for tool in tools.values())
    assert tools["explain"].annotations.read_only_hint is True  # type: ignore[union-attr]
    assert tools["verify_agent_action"].annotations.read_only_hint is True  # type: ignore[union-attr]


async def test_an_approved_payment_carries_a_receipt_signed_by_governance(client: Client, harness: Harness) -> None:
    decision = await call(client, "evaluate_action", agent_id=harness.agent, action=harness.payment("25"))
    assert decision["outcome"] == "approved"
    assert decision["reasons"][0]["rule_id"] == "routine_payment"
    assert decision["policy_version"].startswith("sha256:")
    receipt = decision["receipt"]
    assert (receipt["payer"], receipt["payee"], receipt["amount"]) == (PAYER.address, PAYEE.address, "25")
    assert receipt["decision_id"] == decision["decision_id"]
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "ApprovalReceipt": [
                {"name": "decisionId", "type": "string"},
                {"name": "payer", "type": "address"},
                {"name": "payee", "type": "address"},
                {"name": "amount", "type": "uint256"},
                {"name": "expiresAt", "type": "uint256"},
            ],
        },
        "primaryType": "ApprovalReceipt",
        "domain": {"name": "StateSet Agent Mesh", "version": "1", "chainId": 31337},
        "message": {
            "decisionId": receipt["decision_id"],
            "payer": receipt["payer"],
            "payee": receipt["payee"],
            "amount": 25_000_000,
            "expiresAt": receipt["expires_at"],
        },
    }
    signer = Account.recover_message(encode_typed_data(full_message=typed), signature=receipt["signature"])
    assert signer == harness.governance.address == (await call(client, "get_policy"))["governance_address"]
    assert receipt["expires_at"] == int(harness.clock()) + 600
    assert any("pay exactly 25 USDC" in condition for condition in decision["conditions"])
    stored = await call(client, "get_decision", decision_id=decision["decision_id"])
    assert stored == decision


async def test_a_denied_action_says_why_with_values_and_offers_computed_alternatives(
    client: Client, harness: Harness
) -> None:
    decision = await call(client, "evaluate_action", agent_id=harness.agent, action=harness.payment("150"))
    assert decision["outcome"] == "denied" and decision["receipt"] is None
    assert decision["reasons"][0]["message"] == "a single payment may not exceed 100 USDC (amount 150 USDC > 100 USDC)"
    kinds = {a["kind"]: a for a in decision["alternatives"]}
    assert kinds["reduce_amount"]["amount"] == "50"
    assert kinds["request_approval"]["amount"] == "100"
    assert decision["risk"]["level"] in {"low", "medium", "high", "critical"}


@pytest.mark.parametrize(
    ("action", "says"),
    [
        ({"type": "wire", "amount": "1"}, "action type 'wire' is not known to the active policy"),
        (
            {"type": "payment", "amount": "1.0000001", "payer": PAYER.address, "counterparty": PAYEE.address},
            "amount '1.0000001' is not a USDC amount",
        ),
        ({"type": "payment", "amount": 5, "payer": PAYER.address, "counterparty": PAYEE.address}, "is a number"),
        ({"type": "payment", "amount": "5", "counterparty": PAYEE.address}, "a payment needs action.payer"),
        (
            {"type": "payment", "amount": "5", "payer": PAYER.address, "counterparty": "acme"},
            "action.counterparty 'acme' is not an Ethereum address",
        ),
        (
            {
                "type": "payment",
                "amount": "5",
                "payer": PAYER.address,
                "counterparty": PAYEE.address,
                "currency": "EUR",
            },
            "currency",
        ),
        ({"type": "create_lead", "payload": {"jurisdiction": "Germany"}}, "is not an ISO 3166 alpha-2 code"),
    ],
)
async def test_bad_actions_are_clear_errors_that_record_nothing(
    client: Client, harness: Harness, action: dict[str, Any], says: str
) -> None:
    before = await audit_count(client)
    message = await refused(client, "evaluate_action", agent_id=harness.agent, action=action)
    assert says in message
    assert await audit_count(client) == before


async def test_an_agent_id_must_be_an_agent_did(client: Client, harness: Harness) -> None:
    message = await refused(client, "evaluate_action", agent_id="bob", action=harness.payment("1"))
    assert "agent_id 'bob' is not an agent DID" in message


async def test_explain_shows_every_rule_and_changes_nothing(client: Client, harness: Harness) -> None:
    before = await audit_count(client)
    explained = await call(client, "explain", agent_id=harness.agent, action=harness.payment("75"))
    assert explained["outcome"] == "pending_approval"
    rules = {rule["rule_id"]: rule for rule in explained["rules"]}
    assert rules["large_payment"]["matched"] and rules["large_payment"]["conditions"] == ["amount 75 USDC > 50 USDC"]
    assert not rules["per_transaction_limit"]["matched"]
    assert await audit_count(client) == before
    assert await call(client, "list_pending_approvals") == {"result": []}


async def pending(client: Client, harness: Harness, amount: str = "75") -> dict[str, Any]:
    decision = await call(client, "evaluate_action", agent_id=harness.agent, action=harness.payment(amount))
    assert decision["outcome"] == "pending_approval"
    return decision


async def vote(client: Client, decision: dict[str, Any], index: int, *, approve: bool = True) -> dict[str, Any]:
    approval = decision["approval"]
    signature = sign(APPROVERS[index], approval["to_sign"]["approve" if approve else "reject"])
    tool = "submit_approval" if approve else "reject_approval"
    return await call(
        client, tool, approval_id=approval["approval_id"], approver=APPROVERS[index].address, signature=signature
    )


async def test_a_quorum_of_distinct_approvers_approves_and_issues_the_receipt(client: Client, harness: Harness) -> None:
    decision = await pending(client, harness)
    approval = decision["approval"]
    assert (approval["required"], approval["status"], approval["workflow"]) == (2, "pending", "finance")
    assert approval["to_sign"]["approve"]["message"]["requestHash"] == decision["request_hash"]
    listed = await call(client, "list_pending_approvals")
    assert [d["decision_id"] for d in listed["result"]] == [decision["decision_id"]]
    after_one = await vote(client, decision, 0)
    assert after_one["outcome"] == "pending_approval" and after_one["receipt"] is None
    after_two = await vote(client, decision, 2)
    assert after_two["outcome"] == "approved" and after_two["approval"]["status"] == "approved"
    assert after_two["receipt"]["amount"] == "75"
    assert [v["approver"] for v in after_two["approval"]["votes"]] == [APPROVERS[0].address, APPROVERS[2].address]
    assert (await call(client, "list_pending_approvals"))["result"] == []


async def test_one_rejection_denies(client: Client, harness: Harness) -> None:
    decision = await pending(client, harness)
    await vote(client, decision, 0)
    rejected = await vote(client, decision, 1, approve=False)
    assert rejected["outcome"] == "denied" and rejected["approval"]["status"] == "rejected"
    assert rejected["reasons"][-1]["rule_id"] == "approval_rejected"


async def test_bad_votes_are_clear_errors_that_change_nothing(client: Client, harness: Harness) -> None:
    decision = await pending(client, harness)
    approval = decision["approval"]
    approval_id = approval["approval_id"]
    await vote(client, decision, 0)
    before = await audit_count(client)
    outsider = Account.create()
    other = await pending(client, harness, amount="60")
    cases = [
        (
            {"approver": outsider.address, "signature": sign(outsider, approval["to_sign"]["approve"])},
            "is not an approver",
        ),
        (
            {"approver": APPROVERS[0].address, "signature": sign(APPROVERS[0], approval["to_sign"]["approve"])},
            "has already voted",
        ),
        (
            {
                "approver": APPROVERS[1].address,
                "signature": sign(APPROVERS[1], other["approval"]["to_sign"]["approve"]),
            },
            "over this request's ApprovalVote",
        ),
        (
            {"approver": APPROVERS[1].address, "signature": sign(outsider, approval["to_sign"]["approve"])},
            "over this request's ApprovalVote",
        ),
        ({"approver": APPROVERS[1].address, "signature": "0x1234"}, "is not a signature"),
        ({"approver": "host", "signature": sign(APPROVERS[1], approval["to_sign"]["approve"])}, "is not an approver"),
    ]
    for arguments, says in cases:
        message = await refused(client, "submit_approval", approval_id=approval_id, **arguments)
        assert says in message, message
    message = await refused(
        client, "submit_approval", approval_id="apr_nope", approver=APPROVERS[1].address, signature="0x" + "00" * 65
    )
    assert "no approval request 'apr_nope'" in message
    assert await audit_count(client) == before + 1  # only the second pending decision was recorded
    state = await call(client, "get_decision", decision_id=decision["decision_id"])
    assert state["outcome"] == "pending_approval" and len(state["approval"]["votes"]) == 1


async def test_an_expired_request_is_denied_and_takes_no_more_votes(client: Client, harness: Harness) -> None:
    decision = await pending(client, harness)
    await vote(client, decision, 0)
    harness.clock.advance(3600)
    message = await refused(
        client,
        "submit_approval",
        approval_id=decision["approval"]["approval_id"],
        approver=APPROVERS[1].address,
        signature=sign(APPROVERS[1], decision["approval"]["to_sign"]["approve"]),
    )
    assert f"approval request {decision['approval']['approval_id']!r} is expired" in message
    state = await call(client, "get_decision", decision_id=decision["decision_id"])
    assert state["outcome"] == "denied" and state["reasons"][-1]["rule_id"] == "approval_timeout"
    assert state["receipt"] is None


async def test_the_requester_and_agents_of_the_same_owner_may_not_approve(client: Client, harness: Harness) -> None:
    colleague = new_agent_did()
    await call(
        client, "set_agent_profile", profile={"agent_id": harness.agent, "owner": "acme", "address": PAYER.address}
    )
    await call(
        client, "set_agent_profile", profile={"agent_id": colleague, "owner": "acme", "address": APPROVERS[0].address}
    )
    decision = await pending(client, harness)
    assert decision["approval"]["excluded"] == sorted([PAYER.address, APPROVERS[0].address, harness.agent, colleague])
    message = await refused(
        client,
        "submit_approval",
        approval_id=decision["approval"]["approval_id"],
        approver=APPROVERS[0].address,
        signature=sign(APPROVERS[0], decision["approval"]["to_sign"]["approve"]),
    )
    assert "it is the requester, the wallet it pays from, or an agent of the same owner" in message
    await vote(client, decision, 1)
    assert (await vote(client, decision, 2))["outcome"] == "approved"


async def test_an_agent_did_approver_signs_with_the_address_on_its_profile(client: Client, harness: Harness) -> None:
    approver_agent, key = new_agent_did(), Account.create()
    policy = {
        "name": "agents-approve",
        "workflows": {"peer": {"approvers": [approver_agent], "required": 1, "timeout": "1h"}},
        "rules": {"payment": [{"id": "review", "effect": "require_approval", "workflow": "peer"}]},
    }
    await call(client, "set_policy", policy=policy)
    decision = await pending(client, harness)
    to_sign = decision["approval"]["to_sign"]["approve"]
    arguments = {
        "approval_id": decision["approval"]["approval_id"],
        "approver": approver_agent,
        "signature": sign(key, to_sign),
    }
    assert "has no address on record" in await refused(client, "submit_approval", **arguments)
    await call(client, "set_agent_profile", profile={"agent_id": approver_agent, "address": Account.create().address})
    assert "is not " in await refused(client, "submit_approval", **arguments)  # signed by a key not on record
    await call(client, "set_agent_profile", profile={"agent_id": approver_agent, "address": key.address})
    assert (await call(client, "submit_approval", **arguments))["outcome"] == "approved"


async def test_velocity_and_history_come_from_earlier_decisions(client: Client, harness: Harness) -> None:
    for _ in range(9):
        assert (await call(client, "evaluate_action", agent_id=harness.agent, action=harness.payment("50")))[
            "outcome"
        ] == "approved"
    decision = await call(client, "evaluate_action", agent_id=harness.agent, action=harness.payment("50.000001"))
    assert decision["outcome"] == "denied" and decision["reasons"][0]["rule_id"] == "daily_budget"
    assert any("daily_budget: 500.000001 of 500 USDC" in note for note in decision["monitoring"])
    harness.clock.advance(24 * 3600)
    again = await call(client, "evaluate_action", agent_id=harness.agent, action=harness.payment("50"))
    assert again["outcome"] == "approved"


async def test_set_policy_validates_versions_and_takes_effect(client: Client, harness: Harness) -> None:
    old = await call(client, "get_policy")
    message = await refused(client, "set_policy", policy="name: x\nrules: {payment: [{id: a, effect: maybe}]}")
    assert "rules.payment[0].effect: 'maybe' is not one of" in message
    assert (await call(client, "get_policy"))["version"] == old["version"]
    new = await call(client, "set_policy", policy={"name": "frozen", "rules": {"payment": []}})
    assert new["version"] != old["version"] and new["name"] == "frozen"
    decision = await call(client, "evaluate_action", agent_id=harness.agent, action=harness.payment("1"))
    assert decision["outcome"] == "denied" and decision["policy_version"] == new["version"]
    policy_text = (await client.read_resource("governance://policy")).contents[0].text  # type: ignore[union-attr]
    assert json.loads(policy_text)["version"] == new["version"]


async def test_the_person_at_the_host_approves_through_elicitation_in_both_eras(harness: Harness, era: str) -> None:
    asked: list[str] = []

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    async with Client(
        harness.server, mode="auto" if era == "2026-07-28" else "legacy", elicitation_callback=answer
    ) as c:
        decision = await call(c, "evaluate_action", agent_id=harness.agent, action={"type": "treasury"})
        assert decision["approval"]["approvers"] == ["host"]
        approved = await call(c, "ask_host_approval", approval_id=decision["approval"]["approval_id"])
    assert approved["outcome"] == "approved" and approved["approval"]["votes"][0]["approver"] == "host"
    assert "requests treasury" in asked[0] and decision["request_hash"][:18] in asked[0]


async def test_a_host_that_declines_records_nothing(harness: Harness) -> None:
    async def decline(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    async with Client(harness.server, elicitation_callback=decline) as c:
        decision = await call(c, "evaluate_action", agent_id=harness.agent, action={"type": "treasury"})
        message = await refused(c, "ask_host_approval", approval_id=decision["approval"]["approval_id"])
        assert "did not answer" in message
        state = await call(c, "get_decision", decision_id=decision["decision_id"])
    assert state["outcome"] == "pending_approval" and state["approval"]["votes"] == []


async def test_the_audit_chain_reports_the_first_tampered_entry(client: Client, harness: Harness) -> None:
    for amount in ("1", "2", "75"):
        await call(client, "evaluate_action", agent_id=harness.agent, action=harness.payment(amount))
    intact = await call(client, "verify_audit")
    assert intact["intact"] and intact["entries"] == 3
    with sqlite3.connect(harness.db.path) as raw:  # someone edits the log behind governance's back
        raw.execute(
            'UPDATE audit SET body = replace(body, \'"outcome": "approved"\', \'"outcome": "denied"\') WHERE seq = 2'
        )
    report = await call(client, "verify_audit")
    assert not report["intact"] and report["first_tampered"] == 2
    assert "entry 2" in report["detail"] and "was altered" in report["detail"]


async def test_resources_hold_the_policy_pending_requests_decisions_and_audit(client: Client, harness: Harness) -> None:
    decision = await pending(client, harness)
    pending_text = (await client.read_resource("governance://approvals/pending")).contents[0].text  # type: ignore[union-attr]
    assert [d["decision_id"] for d in json.loads(pending_text)] == [decision["decision_id"]]
    stored = (await client.read_resource(f"governance://decisions/{decision['decision_id']}")).contents[0].text  # type: ignore[union-attr]
    assert json.loads(stored)["request_hash"] == decision["request_hash"]
    audit = json.loads((await client.read_resource("governance://audit")).contents[0].text)  # type: ignore[union-attr]
    assert audit[0]["intact"] and audit[1]["kind"] == "decision"
    with pytest.raises(MCPError) as caught:
        await client.read_resource("governance://decisions/dec_missing")
    assert caught.value.code == types.INVALID_PARAMS


async def test_votes_and_decisions_notify_subscribers(harness: Harness) -> None:
    async with Client(harness.server) as actor, Client(harness.server) as watcher:
        decision = await pending(actor, harness)
        uris = [f"governance://decisions/{decision['decision_id']}", "governance://approvals/pending"]
        async with watcher.listen(resource_subscriptions=uris) as events:
            await vote(actor, decision, 0)
            seen: set[str] = set()
            with anyio.fail_after(scaled(5)):
                async for event in events:
                    seen.add(event.uri)  # type: ignore[attr-defined]
                    if seen == set(uris):
                        break


async def test_the_high_s_twin_of_an_approvers_signature_is_refused_and_records_nothing(
    client: Client, harness: Harness
) -> None:
    decision = await pending(client, harness)
    approval = decision["approval"]
    before = await audit_count(client)
    twin = high_s_twin(sign(APPROVERS[1], approval["to_sign"]["approve"]))
    message = await refused(
        client, "submit_approval", approval_id=approval["approval_id"], approver=APPROVERS[1].address, signature=twin
    )
    assert "has a high s value; only low-s signatures (EIP-2) are accepted" in message
    assert await audit_count(client) == before
    state = await call(client, "get_decision", decision_id=decision["decision_id"])
    assert state["approval"]["votes"] == []
