"""Who may do what with a wallet, through MCP clients of different principals, in both protocol eras.

A wallet is its owner's: another agent's token, or one without the scope, is refused (FORBIDDEN, naming who,
what, the owner and the scopes that would do) and changes nothing. The first test is issue 12's attack.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from mcp import Client
from mcp.shared.exceptions import MCPError

from servers.common.auth import AGENT_SCOPES, Principal, service_principal
from servers.common.feed import ChangeFeed
from servers.common.gate import FORBIDDEN
from servers.common.identity import Signer, new_agent_did
from servers.common.keystore import KeyRing
from servers.common.money import parse_usdc
from servers.common.receipts import issue_slash_order
from servers.wallet.access import READ, SPEND, STAKE
from servers.wallet.server import build_server
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from servers.wallet.store import WalletStore
from tests.conftest import TEST_SCRYPT_N
from tests.helpers import ERAS, call, refused, sign
from tests.servers.wallet.conftest import CHAIN_ID, Harness, connected

pytestmark = pytest.mark.anyio

ALICE = Principal(new_agent_did(), AGENT_SCOPES)
MALLORY = Principal(new_agent_did(), AGENT_SCOPES)
NO_SCOPE = Principal(new_agent_did(), frozenset())
ALICE_WITHOUT_READ = Principal(ALICE.did, AGENT_SCOPES - {"wallet:read"})
ADMIN = Principal("did:stateset:operator:treasurer", frozenset({"wallet:read", "wallet:pay", "wallet:admin"}))
AUDITOR = Principal("did:stateset:person:auditor", frozenset({"wallet:read", "wallet:audit"}))
REPUTATION = service_principal("reputation")  # wallet:stake and wallet:audit, besides read and pay


@dataclass
class Scene:
    """Alice's wallet (100 USDC, limits of 10 as in the issue), Mallory's, and clients for each principal."""

    harness: Harness
    era: str
    operator: Client  # the local operator: looks at the state before and after
    alice: Client
    mallory: Client
    wallet: str
    loot: str

    def client(self, principal: Principal) -> Any:
        return connected(self.harness.server, self.era, principal)

    async def state(self) -> dict[str, Any]:
        """Everything a refused call must leave as it was: both wallets' money, history and limits, and the list."""
        seen: dict[str, Any] = {"wallets": await read(self.operator, "wallet://wallets")}
        for address in (self.wallet, self.loot):
            seen[address] = [
                await call(self.operator, "get_balance", address=address),
                (await call(self.operator, "list_transactions", address=address, limit=100))["transactions"],
                await read(self.operator, f"wallet://{address}/limits"),
            ]
        return seen


@pytest.fixture
async def scene(harness: Harness, era: str) -> AsyncIterator[Scene]:
    async with (
        Client(harness.server, mode=ERAS[era]) as operator,  # type: ignore[arg-type]
        connected(harness.server, era, ALICE) as alice,
        connected(harness.server, era, MALLORY) as mallory,
    ):
        limits = {"daily_limit": "10", "per_transaction_limit": "10"}
        wallet = (await call(alice, "create_wallet", label="alice", **limits))["address"]
        loot = (await call(mallory, "create_wallet", label="loot", **limits))["address"]
        await call(operator, "fund_wallet", address=wallet, amount="100")
        yield Scene(harness, era, operator, alice, mallory, wallet, loot)


async def forbidden(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must be refused as forbidden (a protocol error); the refusal's message."""
    with pytest.raises(MCPError) as caught:
        await client.call_tool(tool, arguments)
    assert caught.value.code == FORBIDDEN, caught.value
    return caught.value.message


async def read(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


async def forbidden_read(client: Client, uri: str) -> str:
    with pytest.raises(MCPError) as caught:
        await client.read_resource(uri)
    assert caught.value.code == FORBIDDEN, caught.value
    return caught.value.message


async def test_another_agent_cannot_mint_into_a_wallet_raise_its_limits_or_pay_itself_from_it(scene: Scene) -> None:
    """Issue 12: a client minted 1,000,000 USDC into another agent's wallet, raised its limits from 10 to
    1,000,000 and paid to itself. Refused for another agent's token and for a token of no scope."""
    async with scene.client(NO_SCOPE) as no_scope:
        for attacker, principal in ((scene.mallory, MALLORY), (no_scope, NO_SCOPE)):
            before = await scene.state()
            minted = await forbidden(attacker, "fund_wallet", address=scene.wallet, amount="1000000")
            assert minted == f"fund_wallet needs the wallet:admin scope; {principal.did} does not hold it"
            raised = await forbidden(
                attacker,
                "set_spending_limits",
                address=scene.wallet,
                daily_limit="1000000",
                per_transaction_limit="1000000",
            )
            paid = await forbidden(
                attacker, "execute_payment", from_address=scene.wallet, to_address=scene.loot, amount="5"
            )
            assert await scene.state() == before
            if principal is MALLORY:  # holds wallet:pay: refused because the wallet is Alice's
                for message, act in ((raised, "change the limits of"), (paid, "pay from")):
                    assert message == (
                        f"{MALLORY.did} may not {act} wallet {scene.wallet}: it belongs to {ALICE.did}; "
                        "only its owner (with wallet:pay) or a holder of wallet:admin may"
                    )
            else:
                for message, tool in ((raised, "set_spending_limits"), (paid, "execute_payment")):
                    assert message == f"{tool} needs the wallet:pay scope; {NO_SCOPE.did} does not hold it"
    # the owner can do what the attacker could not, within its limits
    receipt = await call(scene.alice, "execute_payment", from_address=scene.wallet, to_address=scene.loot, amount="5")
    assert receipt["balance_after"] == "95"


@pytest.mark.parametrize(
    ("tool", "arguments", "act", "scopes"),
    [
        ("get_balance", {}, "read", "wallet:audit or wallet:admin"),
        ("list_transactions", {}, "read", "wallet:audit or wallet:admin"),
        ("set_spending_limits", {"daily_limit": "5", "per_transaction_limit": "5"}, "change the limits of", ""),
        ("stake", {"amount": "1"}, "move the stake of", "wallet:stake or wallet:admin"),
        ("unstake", {"amount": "1"}, "move the stake of", "wallet:stake or wallet:admin"),
        ("optimize_treasury", {"apply": True}, "rebalance", ""),
        ("optimize_treasury", {"apply": False}, "rebalance", ""),
    ],
)
async def test_every_tool_naming_another_agents_wallet_is_forbidden_and_changes_nothing(
    scene: Scene, tool: str, arguments: dict[str, Any], act: str, scopes: str
) -> None:
    await call(scene.alice, "stake", address=scene.wallet, amount="2")  # something to unstake
    before = await scene.state()
    message = await forbidden(scene.mallory, tool, address=scene.wallet, **arguments)
    own = "wallet:read" if act == "read" else "wallet:pay"
    assert message == (
        f"{MALLORY.did} may not {act} wallet {scene.wallet}: it belongs to {ALICE.did}; "
        f"only its owner (with {own}) or a holder of {scopes or 'wallet:admin'} may"
    )
    assert await scene.state() == before
    await call(scene.alice, tool, address=scene.wallet, **arguments)  # the owner may


async def test_a_replayed_idempotency_key_does_not_hand_another_agent_the_owners_receipt(scene: Scene) -> None:
    payment = {"from_address": scene.wallet, "to_address": scene.loot, "amount": "3", "idempotency_key": "po-7"}
    await call(scene.alice, "execute_payment", **payment)
    before = await scene.state()
    assert "may not pay from wallet" in await forbidden(scene.mallory, "execute_payment", **payment)
    assert await scene.state() == before


async def test_a_caller_who_may_not_pay_from_a_wallet_never_gets_its_key_decrypted(scene: Scene) -> None:
    keys = KeyRing("test-password-123", scrypt_n=TEST_SCRYPT_N)  # a restarted server: no key opened yet
    feed = ChangeFeed()
    service = WalletService(
        WalletStore(scene.harness.db), keys, WalletSettings(), feed, chain_id=CHAIN_ID, clock=scene.harness.clock
    )
    restarted = build_server(service, feed)
    payment = {"from_address": scene.wallet, "to_address": scene.loot, "amount": "1"}
    async with connected(restarted, scene.era, MALLORY) as mallory, connected(restarted, scene.era, ALICE) as alice:
        assert "may not pay from wallet" in await forbidden(mallory, "execute_payment", **payment)
        assert keys.cached(scene.wallet) is None
        await call(alice, "execute_payment", **payment)
        assert keys.cached(scene.wallet) is not None


async def test_reads_are_for_the_owner_with_wallet_read_auditors_and_admins(scene: Scene) -> None:
    views = [f"wallet://{scene.wallet}/{view}" for view in ("balance", "transactions", "limits")]
    for uri in views:
        assert await read(scene.alice, uri) == await read(scene.operator, uri)
        message = await forbidden_read(scene.mallory, uri)
        assert message.startswith(f"{MALLORY.did} may not read wallet {scene.wallet}: it belongs to {ALICE.did}")
        assert message.endswith("only its owner (with wallet:read) or a holder of wallet:audit or wallet:admin may")
    async with (
        scene.client(AUDITOR) as auditor,
        scene.client(ADMIN) as admin,
        scene.client(ALICE_WITHOUT_READ) as alice_unread,
        scene.client(NO_SCOPE) as no_scope,
    ):
        for uri in views:
            assert await read(auditor, uri) == await read(admin, uri) == await read(scene.operator, uri)
            message = await forbidden_read(alice_unread, uri)
            assert message == f"{ALICE.did} may not read its wallet {scene.wallet} without the wallet:read scope"
        assert (await call(auditor, "get_balance", address=scene.wallet))["available"] == "100"
        everything = [w["address"] for w in await read(scene.operator, "wallet://wallets")]
        assert sorted(everything) == sorted([scene.wallet, scene.loot])
        assert [w["address"] for w in await read(auditor, "wallet://wallets")] == everything
        assert [w["address"] for w in await read(admin, "wallet://wallets")] == everything
        assert [w["address"] for w in await read(scene.alice, "wallet://wallets")] == [scene.wallet]
        assert [w["address"] for w in await read(scene.mallory, "wallet://wallets")] == [scene.loot]
        message = await forbidden_read(no_scope, "wallet://wallets")
        assert message == f"{NO_SCOPE.did} may not list wallets without the wallet:read scope"


async def test_a_wallet_is_its_creators_and_naming_another_owner_takes_wallet_admin(scene: Scene) -> None:
    created = await call(scene.alice, "create_wallet", label="mine", daily_limit="5", per_transaction_limit="5")
    assert created["owner"] == ALICE.did
    named = await call(
        scene.alice, "create_wallet", label="mine too", daily_limit="5", per_transaction_limit="5", owner=ALICE.did
    )
    assert named["owner"] == ALICE.did
    before = await scene.state()
    message = await forbidden(
        scene.mallory, "create_wallet", label="yours", daily_limit="5", per_transaction_limit="5", owner=ALICE.did
    )
    assert message == (
        f"{MALLORY.did} may not create a wallet owned by {ALICE.did}: a wallet's owner is its creator, "
        "unless the creator holds wallet:admin"
    )
    assert await scene.state() == before
    async with scene.client(ADMIN) as admin:
        given = await call(
            admin, "create_wallet", label="for bob", daily_limit="5", per_transaction_limit="5", owner=MALLORY.did
        )
    assert given["owner"] == MALLORY.did
    assert (await call(scene.mallory, "get_balance", address=given["address"]))["total"] == "0"
    assert "may not read wallet" in await forbidden(scene.alice, "get_balance", address=given["address"])


async def test_the_faucet_is_for_wallet_admin_alone_even_on_the_callers_own_wallet(scene: Scene) -> None:
    before = await scene.state()
    message = await forbidden(scene.alice, "fund_wallet", address=scene.wallet, amount="1")
    assert message == f"fund_wallet needs the wallet:admin scope; {ALICE.did} does not hold it"
    assert await scene.state() == before
    async with scene.client(ADMIN) as admin:
        assert "fund_wallet" not in {tool.name for tool in (await scene.alice.list_tools()).tools}
        assert (await call(admin, "fund_wallet", address=scene.loot, amount="7"))["available"] == "7"


async def test_wallet_stake_and_wallet_admin_reach_any_wallets_stake_and_nothing_else(scene: Scene) -> None:
    async with scene.client(REPUTATION) as reputation, scene.client(ADMIN) as admin:
        assert (await call(reputation, "stake", address=scene.wallet, amount="4"))["staked"] == "4"
        assert (await call(admin, "unstake", address=scene.wallet, amount="1"))["staked"] == "3"
        assert (await call(reputation, "get_balance", address=scene.wallet))["staked"] == "3"  # wallet:audit
        before = await scene.state()
        message = await forbidden(
            reputation, "execute_payment", from_address=scene.wallet, to_address=scene.loot, amount="1"
        )
        assert message.endswith("only its owner (with wallet:pay) or a holder of wallet:admin may")
        assert await scene.state() == before
        paid = await call(admin, "execute_payment", from_address=scene.wallet, to_address=scene.loot, amount="1")
        assert paid["from_address"] == scene.wallet


@pytest.fixture
def cosigners() -> list[LocalAccount]:
    return [Account.create(), Account.create()]


async def test_proposals_are_the_owners_and_a_cosigners_signature_is_its_own_authority(
    scene: Scene, cosigners: list[LocalAccount]
) -> None:
    multi_sig = {"signers": [s.address for s in cosigners], "threshold": 2, "above": "5"}
    vault = (
        await call(
            scene.alice,
            "create_wallet",
            label="vault",
            daily_limit="10",
            per_transaction_limit="10",
            multi_sig=multi_sig,
        )
    )["address"]
    await call(scene.operator, "fund_wallet", address=vault, amount="50")
    assert "may not propose a payment from" in await forbidden(
        scene.mallory, "propose_transaction", address=vault, to_address=scene.loot, amount="8"
    )
    proposal = await call(scene.alice, "propose_transaction", address=vault, to_address=scene.loot, amount="8")
    uri = f"wallet://proposals/{proposal['proposal_id']}"
    message = await forbidden_read(scene.mallory, uri)
    assert message.startswith(f"{MALLORY.did} may not read the proposals of wallet {vault}: it belongs to {ALICE.did}")
    signatures = [sign(cosigner, proposal["typed_data"]) for cosigner in cosigners]
    async with scene.client(AUDITOR) as auditor, scene.client(NO_SCOPE) as no_scope:
        assert (await read(auditor, uri))["status"] == "pending"
        # a token must still be someone allowed to deliver signatures: wallet:pay
        message = await forbidden(
            no_scope,
            "sign_proposal",
            proposal_id=proposal["proposal_id"],
            signer=cosigners[0].address,
            signature=signatures[0],
        )
        assert message == f"sign_proposal needs the wallet:pay scope; {NO_SCOPE.did} does not hold it"
        assert (await read(auditor, uri))["signatures"] == []
    # whoever delivers it, the co-signer's signature is what counts: Mallory may carry it, not forge it
    forged = await refused(
        scene.mallory,
        "sign_proposal",
        proposal_id=proposal["proposal_id"],
        signer=cosigners[0].address,
        signature=sign(Account.create(), proposal["typed_data"]),
    )
    assert f"the signature is not {cosigners[0].address}'s signature" in forged
    carried = await call(
        scene.mallory,
        "sign_proposal",
        proposal_id=proposal["proposal_id"],
        signer=cosigners[0].address,
        signature=signatures[0],
    )
    assert carried["status"] == "pending"
    done = await call(
        scene.alice,
        "sign_proposal",
        proposal_id=proposal["proposal_id"],
        signer=cosigners[1].address,
        signature=signatures[1],
    )
    assert done["status"] == "executed" and done["payment"]["to_address"] == scene.loot


async def test_a_signed_slash_order_is_its_own_authority_whoever_delivers_it(scene: Scene) -> None:
    await call(scene.alice, "stake", address=scene.wallet, amount="20")
    order = issue_slash_order(
        Signer(scene.harness.reputation),
        CHAIN_ID,
        incident_id="inc-1",
        wallet=scene.wallet,
        amount=parse_usdc("5"),
        recipient=scene.loot,
        expires_at=int(scene.harness.clock()) + 300,
    ).model_dump(mode="json")
    forged = issue_slash_order(
        Signer(Account.create()),
        CHAIN_ID,
        incident_id="inc-2",
        wallet=scene.wallet,
        amount=parse_usdc("5"),
        recipient=scene.loot,
        expires_at=int(scene.harness.clock()) + 300,
    ).model_dump(mode="json")
    async with scene.client(NO_SCOPE) as no_scope:
        before = await scene.state()
        assert "is not signed by a trusted reputation key" in await refused(no_scope, "slash_stake", order=forged)
        assert await scene.state() == before
        slashed = await call(no_scope, "slash_stake", order=order)
    assert (slashed["amount"], slashed["staked_after"]) == ("5", "15")


@pytest.mark.parametrize(
    ("principal", "owner", "read", "stake", "spend"),
    [
        (ALICE, ALICE.did, True, True, True),
        (ALICE_WITHOUT_READ, ALICE.did, False, True, True),
        (MALLORY, ALICE.did, False, False, False),
        (AUDITOR, ALICE.did, True, False, False),
        (REPUTATION, ALICE.did, True, True, False),
        (ADMIN, ALICE.did, True, True, True),
        # a wallet made before owners were kept is no agent's: only the scopes that reach every wallet
        (ALICE, None, False, False, False),
        (ADMIN, None, True, True, True),
    ],
)
def test_the_rights_table(principal: Principal, owner: str | None, read: bool, stake: bool, spend: bool) -> None:
    assert (READ.allows(principal, owner), STAKE.allows(principal, owner), SPEND.allows(principal, owner)) == (
        read,
        stake,
        spend,
    )
