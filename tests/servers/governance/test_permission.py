"""Who may do what in governance (issue 12, "Permission"), through the SDK's `Client` in both protocol eras,
each connection opened as one principal: an agent with its own token, a person who approves, an operator.

The attacks of the issue, each of which succeeded before: the same agent under fresh DIDs got every payment
approved; an agent marked critical was approved under a new DID; the requesting agent answered its own host
approval. Besides: an agent names no owner, reads no other agent's decisions, sets no policy.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from servers.common.auth import AGENT_SCOPES, ALL_SCOPES, PERSON_SCOPES, Principal, acting_as
from servers.common.gate import FORBIDDEN
from servers.common.identity import new_agent_did
from servers.governance.settings import DEFAULT_POLICY
from tests.helpers import ERAS
from tests.servers.governance.conftest import APPROVERS, Harness, call, refused, sign

pytestmark = pytest.mark.anyio

OPERATOR = Principal("did:stateset:operator:ops", ALL_SCOPES)
PERSON = Principal("did:stateset:person:alice", PERSON_SCOPES)


def agent(did: str | None = None, *extra: str) -> Principal:
    """An agent's token: its own DID and the scopes agents get, plus `extra`."""
    return Principal(did or new_agent_did(), AGENT_SCOPES | set(extra))


class ClientAs(Client):
    """A client whose every request is `principal`'s: the in-memory transport serves each request in the
    sender's context, so the principal is set around each call, not only around connecting."""

    def __init__(self, server: Any, principal: Principal, **options: Any) -> None:
        super().__init__(server, **options)
        self.principal = principal

    async def __aenter__(self) -> ClientAs:
        with acting_as(self.principal):
            await super().__aenter__()
        return self

    async def call_tool(self, *args: Any, **kwargs: Any) -> types.CallToolResult:
        with acting_as(self.principal):
            return await super().call_tool(*args, **kwargs)

    async def read_resource(self, *args: Any, **kwargs: Any) -> types.ReadResourceResult:
        with acting_as(self.principal):
            return await super().read_resource(*args, **kwargs)

    async def list_tools(self, *args: Any, **kwargs: Any) -> types.ListToolsResult:
        with acting_as(self.principal):
            return await super().list_tools(*args, **kwargs)


@asynccontextmanager
async def connected(harness: Harness, principal: Principal, era: str, **options: Any) -> AsyncIterator[Client]:
    async with ClientAs(harness.server, principal, mode=ERAS[era], **options) as client:
        assert client.protocol_version == era
        yield client


async def forbidden(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that the caller may not call: a protocol error (-32003); its message."""
    with pytest.raises(MCPError) as caught:
        await client.call_tool(tool, arguments)
    assert caught.value.code == FORBIDDEN, caught.value
    return caught.value.message


async def forbidden_read(client: Client, uri: str) -> str:
    with pytest.raises(MCPError) as caught:
        await client.read_resource(uri)
    assert caught.value.code == FORBIDDEN, caught.value
    return caught.value.message


async def read(client: Client, uri: str) -> Any:
    return json.loads((await client.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]


async def entries(client: Client) -> int:
    return int((await call(client, "verify_audit"))["entries"])


async def test_an_agent_evaluates_explains_and_verifies_only_as_itself(harness: Harness, era: str) -> None:
    me, other = agent(), new_agent_did()
    async with connected(harness, me, era) as client, connected(harness, OPERATOR, era) as operator:
        for tool in ("evaluate_action", "explain", "verify_agent_action"):
            message = await forbidden(client, tool, agent_id=other, action=harness.payment("10"))
            assert f"{me.did} may not act for {other}" in message and "governance:admin" in message
        assert await entries(operator) == 0  # nothing recorded: no decision, no profile of either
        with pytest.raises(MCPError):
            await operator.read_resource(f"governance://agents/{other}/flags")
        mine = await call(client, "evaluate_action", agent_id=me.did, action=harness.payment("10"))
        assert (mine["agent_id"], mine["outcome"]) == (me.did, "approved")
        # the same DID in another spelling is still the caller; an operator acts for any agent
        shouting = me.did.upper().replace("DID:STATESET:AGENT:", "did:stateset:agent:")
        assert (await call(client, "explain", agent_id=shouting, action=harness.payment("10")))["outcome"] == "approved"
        theirs = await call(operator, "evaluate_action", agent_id=other, action=harness.payment("10"))
        assert theirs["agent_id"] == other


async def test_fresh_dids_do_not_give_an_agent_a_new_daily_budget(harness: Harness, era: str) -> None:
    """The attack: the agent spent its 500 USDC a day, then asked again under fresh DIDs and was approved."""
    me = agent()
    async with connected(harness, me, era) as client:
        for _ in range(10):
            assert (await call(client, "evaluate_action", agent_id=me.did, action=harness.payment("50")))[
                "outcome"
            ] == "approved"
        spent = await call(client, "evaluate_action", agent_id=me.did, action=harness.payment("50"))
        assert spent["outcome"] == "denied" and spent["reasons"][0]["rule_id"] == "daily_budget"
        before = await entries(client)
        for _ in range(3):
            fresh = new_agent_did()
            assert fresh in await forbidden(client, "evaluate_action", agent_id=fresh, action=harness.payment("50"))
        assert await entries(client) == before


async def test_an_agent_marked_critical_is_not_approved_under_a_new_did(harness: Harness, era: str) -> None:
    me = agent()
    async with connected(harness, OPERATOR, era) as operator, connected(harness, me, era) as client:
        await call(operator, "set_policy", policy=DEFAULT_POLICY.read_text())  # above `low`, a person approves
        await call(
            operator, "set_agent_profile", profile={"agent_id": me.did, "owner": "acme", "threat_level": "critical"}
        )
        marked = await call(client, "evaluate_action", agent_id=me.did, action=harness.payment("10"))
        assert marked["outcome"] == "pending_approval" and "elevated_threat" in [
            r["rule_id"] for r in marked["reasons"]
        ]
        rotated = new_agent_did()
        assert rotated in await forbidden(client, "evaluate_action", agent_id=rotated, action=harness.payment("10"))


async def test_only_an_admin_names_an_agents_owner(harness: Harness, era: str) -> None:
    me = agent()
    async with connected(harness, me, era) as client, connected(harness, OPERATOR, era) as operator:
        message = await forbidden(
            client, "evaluate_action", agent_id=me.did, action=harness.payment("10"), owner="acme"
        )
        assert "owner" in message and "governance:admin" in message
        assert await entries(operator) == 0
        with pytest.raises(MCPError):
            await operator.read_resource(f"governance://agents/{me.did}/flags")  # governance has not seen it
        await call(client, "evaluate_action", agent_id=me.did, action=harness.payment("10"))
        assert (await read(client, f"governance://agents/{me.did}/flags"))["owner"] is None  # its own owner
        named = new_agent_did()
        await call(operator, "evaluate_action", agent_id=named, action=harness.payment("10"), owner="acme")
        assert (await read(operator, f"governance://agents/{named}/flags"))["owner"] == "acme"


async def test_a_fresh_did_without_an_owner_starts_at_the_lowest_trust_any_agent_has(
    harness: Harness, era: str
) -> None:
    """A DID no admin vouched for could be any known agent under a new name: it takes on the worst of them."""
    known, fresh = new_agent_did(), agent()
    async with connected(harness, OPERATOR, era) as operator, connected(harness, fresh, era) as client:
        await call(operator, "set_policy", policy=DEFAULT_POLICY.read_text())
        clean = await call(operator, "evaluate_action", agent_id=new_agent_did(), action=harness.payment("10"))
        assert clean["outcome"] == "approved"  # in a mesh with no suspect agent, a newcomer decides alone
        marked = {"agent_id": known, "owner": "acme", "threat_level": "critical", "reputation": 20}
        await call(operator, "set_agent_profile", profile=marked)

        dry = await call(client, "explain", agent_id=fresh.did, action=harness.payment("10"))
        first = await call(client, "evaluate_action", agent_id=fresh.did, action=harness.payment("10"))
        assert dry["outcome"] == first["outcome"] == "pending_approval"
        assert {"elevated_threat", "low_reputation"} <= {reason["rule_id"] for reason in first["reasons"]}
        assert first["behaviour"]["threat_level"] == "critical"
        record = await read(client, f"governance://agents/{fresh.did}/flags")
        assert (record["owner"], record["assigned_threat"]) == (None, "critical")
        assert [(c["cause"], c["threat_from"], c["threat_to"]) for c in record["changes"]] == [
            ("unowned", "none", "critical")
        ]
        # an admin vouching for it (an owner whose agents are clean) is what lifts that
        await call(operator, "set_agent_profile", profile={"agent_id": fresh.did, "owner": "zenith"})
        vouched = await call(client, "evaluate_action", agent_id=fresh.did, action=harness.payment("10"))
        assert vouched["outcome"] == "approved"


async def test_the_requesting_agent_cannot_answer_its_own_host_approval(harness: Harness, era: str) -> None:
    """The attack: the agent asked for host approval and answered the elicitation itself."""
    asked: list[str] = []

    async def approve(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    me = agent(None, "governance:approve")  # even an agent that may approve others' requests
    async with connected(harness, me, era, elicitation_callback=approve) as client:
        decision = await call(client, "evaluate_action", agent_id=me.did, action={"type": "treasury"})
        approval_id = decision["approval"]["approval_id"]
        message = await forbidden(client, "ask_host_approval", approval_id=approval_id)
        assert f"{me.did} may not approve request {approval_id!r}" in message
        assert asked == []  # the question never reached it
        state = await call(client, "get_decision", decision_id=decision["decision_id"])
    assert state["outcome"] == "pending_approval" and state["approval"]["votes"] == []
    async with connected(harness, agent(me.did), era, elicitation_callback=approve) as plain:
        assert "governance:approve" in await forbidden(plain, "ask_host_approval", approval_id=approval_id)
    async with connected(harness, PERSON, era, elicitation_callback=approve) as person:
        approved = await call(person, "ask_host_approval", approval_id=approval_id)
    assert approved["outcome"] == "approved" and len(asked) == 1


async def test_an_agent_of_the_same_owner_cannot_answer_the_host_approval_either(harness: Harness, era: str) -> None:
    async def approve(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"approve": True})

    me, sibling = agent(), agent(None, "governance:approve")
    async with connected(harness, OPERATOR, era) as operator:
        for did in (me.did, sibling.did):
            await call(operator, "set_agent_profile", profile={"agent_id": did, "owner": "acme"})
    async with connected(harness, me, era) as client:
        decision = await call(client, "evaluate_action", agent_id=me.did, action={"type": "treasury"})
    async with connected(harness, sibling, era, elicitation_callback=approve) as other:
        approval_id = decision["approval"]["approval_id"]
        assert "agent of the same owner" in await forbidden(other, "ask_host_approval", approval_id=approval_id)


async def test_the_requesting_agent_cannot_cast_votes_on_its_own_request(harness: Harness, era: str) -> None:
    me = agent(None, "governance:approve")
    async with connected(harness, me, era) as client:
        decision = await call(client, "evaluate_action", agent_id=me.did, action=harness.payment("75"))
        approval = decision["approval"]
        for tool, answer in (("submit_approval", "approve"), ("reject_approval", "reject")):
            arguments = {
                "approval_id": approval["approval_id"],
                "approver": APPROVERS[0].address,
                "signature": sign(APPROVERS[0], approval["to_sign"][answer]),
            }
            assert "may not approve request" in await forbidden(client, tool, **arguments)
        before = await entries(client)
    async with connected(harness, agent(), era) as plain:  # an agent's own token holds no governance:approve
        assert "governance:approve" in await forbidden(plain, "submit_approval", **arguments)
    async with connected(harness, PERSON, era) as person:
        assert await entries(person) == before
        assert (await call(person, "get_decision", decision_id=decision["decision_id"]))["approval"]["votes"] == []
        arguments["signature"] = sign(APPROVERS[0], approval["to_sign"]["approve"])
        voted = await call(person, "submit_approval", **arguments)  # relayed by an approver: the vote counts
        assert [vote["approver"] for vote in voted["approval"]["votes"]] == [APPROVERS[0].address]


async def test_the_paying_wallets_own_key_cannot_approve_its_payment(harness: Harness, era: str) -> None:
    """An approver address that is the requester's paying wallet is the requester's own."""
    me = agent()
    wallet = APPROVERS[0]
    async with connected(harness, me, era) as client:
        action = harness.payment("75", payer=wallet.address)
        decision = await call(client, "evaluate_action", agent_id=me.did, action=action)
    approval = decision["approval"]
    assert wallet.address in approval["excluded"]
    async with connected(harness, PERSON, era) as person:
        message = await refused(
            person,
            "submit_approval",
            approval_id=approval["approval_id"],
            approver=wallet.address,
            signature=sign(wallet, approval["to_sign"]["approve"]),
        )
        assert "the requester" in message and "wallet" in message


async def test_an_agent_reads_only_its_own_decisions(harness: Harness, era: str) -> None:
    me, other = agent(), agent()
    async with connected(harness, me, era) as mine, connected(harness, other, era) as theirs:
        decision = await call(mine, "evaluate_action", agent_id=me.did, action=harness.payment("75"))
        decision_id = decision["decision_id"]
        assert (await call(mine, "get_decision", decision_id=decision_id))["decision_id"] == decision_id
        assert me.did in await forbidden(theirs, "get_decision", decision_id=decision_id)
        assert me.did in await forbidden_read(theirs, f"governance://decisions/{decision_id}")
        await forbidden_read(theirs, f"governance://agents/{me.did}/flags")
        assert (await read(mine, f"governance://agents/{me.did}/flags"))["agent_id"] == me.did
        assert await read(theirs, "governance://approvals/pending") == []
        assert [d["decision_id"] for d in await read(mine, "governance://approvals/pending")] == [decision_id]
        assert "governance:approve" in await forbidden(theirs, "list_pending_approvals")
        audit = await read(theirs, "governance://audit")
        assert audit[0]["intact"] and len(audit) == 1  # whether the chain holds, not what others did
    async with connected(harness, PERSON, era) as person:  # an approver sees every request and decision
        assert [d["decision_id"] for d in (await call(person, "list_pending_approvals"))["result"]] == [decision_id]
        assert (await call(person, "get_decision", decision_id=decision_id))["agent_id"] == me.did
        assert [d["decision_id"] for d in await read(person, "governance://approvals/pending")] == [decision_id]
        assert (await read(person, f"governance://agents/{me.did}/flags"))["agent_id"] == me.did
        assert len(await read(person, "governance://audit")) > 1


async def test_an_agent_sets_no_policy_and_no_profile(harness: Harness, era: str) -> None:
    me = agent()
    async with connected(harness, me, era) as client:
        policy = await call(client, "get_policy")
        locked = {"name": "locked", "rules": {"payment": [{"id": "all", "effect": "allow"}]}}
        assert "governance:admin" in await forbidden(client, "set_policy", policy=locked)
        mine = {"agent_id": me.did, "owner": "acme", "threat_level": "none", "reputation": 100}
        assert "governance:admin" in await forbidden(client, "set_agent_profile", profile=mine)
        assert (await call(client, "get_policy"))["version"] == policy["version"]
        assert await entries(client) == 0
        tools = {tool.name for tool in (await client.list_tools()).tools}
    assert not tools & {"set_policy", "set_agent_profile", "submit_approval", "list_pending_approvals"}
    assert {"evaluate_action", "explain", "verify_agent_action", "get_decision"} <= tools
