"""Multi-sig proposals through an MCP client, in both protocol eras."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from mcp import Client

from tests.helpers import call, high_s_twin, refused, sign
from tests.servers.wallet.conftest import Harness, new_wallet

pytestmark = pytest.mark.anyio


@pytest.fixture
def signers() -> list[LocalAccount]:
    return [Account.create() for _ in range(3)]


async def multisig_wallet(client: Client, signers: list[LocalAccount], **settings: Any) -> str:
    policy = {"signers": [s.address for s in signers], "threshold": 2, "above": "80"}
    return await new_wallet(client, fund="1000", multi_sig=policy, **settings)


async def propose(client: Client, wallet: str, payee: str, amount: str = "90", **extra: Any) -> dict[str, Any]:
    return await call(client, "propose_transaction", address=wallet, to_address=payee, amount=amount, **extra)


async def test_a_proposal_reserves_the_money_and_pays_when_the_threshold_signs(
    client: Client, signers: list[LocalAccount]
) -> None:
    wallet = await multisig_wallet(client, signers)
    payee = await new_wallet(client, fund=None)
    proposal = await propose(client, wallet, payee, memo="bulk order")
    assert proposal["status"] == "pending" and proposal["threshold"] == 2
    typed = proposal["typed_data"]
    assert typed["primaryType"] == "PaymentProposal"
    assert typed["message"]["amount"] == 90_000_000
    assert typed["message"]["expiresAt"] == int(typed["message"]["expiresAt"])
    balance = await call(client, "get_balance", address=wallet)
    assert (balance["available"], balance["reserved"], balance["total"]) == ("910", "90", "1000")

    proposal = await call(
        client,
        "sign_proposal",
        proposal_id=proposal["proposal_id"],
        signer=signers[0].address,
        signature=sign(signers[0], typed),
    )
    assert proposal["status"] == "pending" and proposal["payment"] is None
    assert [s["signer"] for s in proposal["signatures"]] == [signers[0].address]
    proposal = await call(
        client,
        "sign_proposal",
        proposal_id=proposal["proposal_id"],
        signer=signers[2].address.lower(),
        signature=sign(signers[2], typed),
    )
    assert proposal["status"] == "executed"
    payment = proposal["payment"]
    assert (payment["amount"], payment["to_address"], payment["proposal_id"]) == ("90", payee, proposal["proposal_id"])
    balance = await call(client, "get_balance", address=wallet)
    assert (balance["available"], balance["reserved"], balance["total"]) == ("910", "0", "910")
    assert (await call(client, "get_balance", address=payee))["available"] == "90"
    message = await refused(
        client,
        "sign_proposal",
        proposal_id=proposal["proposal_id"],
        signer=signers[1].address,
        signature=sign(signers[1], typed),
    )
    assert f"proposal {proposal['proposal_id']!r} is executed" in message


async def test_direct_payments_at_or_above_the_threshold_are_sent_to_propose(
    client: Client, signers: list[LocalAccount]
) -> None:
    wallet = await multisig_wallet(client, signers)
    payee = await new_wallet(client, fund=None)
    message = await refused(client, "execute_payment", from_address=wallet, to_address=payee, amount="80")
    assert "at or above the multi-sig threshold 80 USDC; call propose_transaction" in message
    await call(client, "execute_payment", from_address=wallet, to_address=payee, amount="79.999999")


async def test_only_listed_signers_sign_each_once_over_exactly_this_proposal(
    client: Client, signers: list[LocalAccount]
) -> None:
    wallet = await multisig_wallet(client, signers)
    payee = await new_wallet(client, fund=None)
    proposal = await propose(client, wallet, payee)
    other = await propose(client, wallet, payee, amount="85")
    pid, typed = proposal["proposal_id"], proposal["typed_data"]
    outsider = Account.create()

    cases = [
        # someone not on the list, with a genuine signature of their own
        (outsider.address, sign(outsider, typed), f"{outsider.address} is not a signer of wallet {wallet}"),
        # a listed signer's address with a signature made by another key: a forgery
        (signers[0].address, sign(outsider, typed), "is not " + signers[0].address + "'s signature"),
        # a listed signer's genuine signature over a different proposal
        (signers[0].address, sign(signers[0], other["typed_data"]), "is not " + signers[0].address + "'s signature"),
        # over the same proposal with the amount changed
        (
            signers[0].address,
            sign(signers[0], typed | {"message": typed["message"] | {"amount": 1}}),
            "is not " + signers[0].address + "'s signature",
        ),
        (signers[0].address, "0xdeadbeef", "is not a signature"),
    ]
    for signer, signature, says in cases:
        message = await refused(client, "sign_proposal", proposal_id=pid, signer=signer, signature=signature)
        assert says in message, message
    assert (await call(client, "get_balance", address=payee))["available"] == "0"

    await call(client, "sign_proposal", proposal_id=pid, signer=signers[0].address, signature=sign(signers[0], typed))
    message = await refused(
        client, "sign_proposal", proposal_id=pid, signer=signers[0].address, signature=sign(signers[0], typed)
    )
    assert f"{signers[0].address} has already signed proposal {pid!r}" in message
    state = (await client.read_resource(f"wallet://proposals/{pid}")).contents[0].text  # type: ignore[union-attr]
    assert '"status":"pending"' in state
    message = await refused(client, "sign_proposal", proposal_id="prop_nope", signer=signers[0].address, signature="0x")
    assert "no proposal 'prop_nope'" in message


async def test_an_expired_proposal_never_executes_and_gives_back_its_money_and_budget(
    client: Client, harness: Harness, signers: list[LocalAccount]
) -> None:
    wallet = await multisig_wallet(client, signers)
    payee = await new_wallet(client, fund=None)
    proposal = await propose(client, wallet, payee)
    assert (await call(client, "set_spending_limits", address=wallet, daily_limit="500"))["spent_last_24h"] == "90"
    pid, typed = proposal["proposal_id"], proposal["typed_data"]
    await call(client, "sign_proposal", proposal_id=pid, signer=signers[0].address, signature=sign(signers[0], typed))

    harness.clock.advance(24 * 3600)  # the expiry written into the signed data
    message = await refused(
        client, "sign_proposal", proposal_id=pid, signer=signers[1].address, signature=sign(signers[1], typed)
    )
    assert f"proposal {pid!r} is expired" in message
    balance = await call(client, "get_balance", address=wallet)
    assert (balance["available"], balance["reserved"]) == ("1000", "0")
    assert (await call(client, "get_balance", address=payee))["available"] == "0"
    history = await call(client, "list_transactions", address=wallet, limit=2)
    assert [e["kind"] for e in history["transactions"]] == ["release", "reserve"]


async def test_an_expired_proposal_is_released_without_anyone_touching_it(
    client: Client, harness: Harness, signers: list[LocalAccount]
) -> None:
    wallet = await multisig_wallet(client, signers)
    payee = await new_wallet(client, fund=None)
    proposal = await propose(client, wallet, payee)
    harness.clock.advance(24 * 3600 + 1)
    assert await harness.service.expire_due_proposals() == 1  # what the server's background task runs
    state = await call(client, "get_balance", address=wallet)
    assert state["reserved"] == "0"
    text = (await client.read_resource(f"wallet://proposals/{proposal['proposal_id']}")).contents[0].text  # type: ignore[union-attr]
    assert '"status":"expired"' in text


async def test_proposals_obey_limits_funds_and_governance_like_any_payment(
    client: Client, harness: Harness, signers: list[LocalAccount]
) -> None:
    wallet = await multisig_wallet(client, signers, approval_required_above="85")
    payee = await new_wallet(client, fund=None)
    message = await refused(client, "propose_transaction", address=wallet, to_address=payee, amount="100.5")
    assert "exceeds the per-transaction limit 100 USDC" in message
    message = await refused(client, "propose_transaction", address=wallet, to_address=payee, amount="90")
    assert "needs a governance approval receipt" in message
    approval = harness.approval(payer=wallet, payee=payee, amount="90", decision_id="dec-ms")
    proposal = await propose(client, wallet, payee, approval=approval)
    assert proposal["approval_decision_id"] == "dec-ms"
    message = await refused(
        client, "propose_transaction", address=wallet, to_address=payee, amount="90", approval=approval
    )
    assert "has already paid once" in message
    for _ in range(4):
        await propose(client, wallet, payee, amount="85")
    message = await refused(client, "propose_transaction", address=wallet, to_address=payee, amount="85")
    assert "430 of 500 USDC spent in the last 24 h, 70 USDC left" in message
    plain = await new_wallet(client, fund="10")
    message = await refused(client, "propose_transaction", address=plain, to_address=payee, amount="5")
    assert f"wallet {plain} has no multi-sig signers" in message


async def test_a_proposal_repeated_with_its_idempotency_key_is_the_same_proposal_and_reserves_once(
    client: Client, signers: list[LocalAccount]
) -> None:
    wallet = await multisig_wallet(client, signers)
    payee = await new_wallet(client, fund=None)
    first = await propose(client, wallet, payee, memo="lot 7", idempotency_key="order-7")
    again = await propose(client, wallet, payee, memo="lot 7", idempotency_key="order-7")
    assert again["proposal_id"] == first["proposal_id"] and again["typed_data"] == first["typed_data"]
    assert (first["replayed"], again["replayed"]) == (False, True)
    balance = await call(client, "get_balance", address=wallet)
    assert (balance["available"], balance["reserved"]) == ("910", "90")

    message = await refused(
        client,
        "propose_transaction",
        address=wallet,
        to_address=payee,
        amount="95",
        memo="lot 7",
        idempotency_key="order-7",
    )
    assert "idempotency_key 'order-7' was already used for a different proposal" in message
    assert (await call(client, "get_balance", address=wallet))["reserved"] == "90"

    for signer in signers[:2]:
        await call(
            client,
            "sign_proposal",
            proposal_id=first["proposal_id"],
            signer=signer.address,
            signature=sign(signer, first["typed_data"]),
        )
    executed = await propose(client, wallet, payee, memo="lot 7", idempotency_key="order-7")
    assert executed["status"] == "executed" and executed["payment"]["proposal_id"] == first["proposal_id"]
    balance = await call(client, "get_balance", address=wallet)
    assert (balance["available"], balance["reserved"], balance["total"]) == ("910", "0", "910")
    other = await propose(client, wallet, payee, memo="lot 8", idempotency_key="order-8")
    assert other["proposal_id"] != first["proposal_id"]


async def test_the_high_s_twin_of_a_signers_signature_is_refused(client: Client, signers: list[LocalAccount]) -> None:
    wallet = await multisig_wallet(client, signers)
    payee = await new_wallet(client, fund=None)
    proposal = await propose(client, wallet, payee)
    twin = high_s_twin(sign(signers[0], proposal["typed_data"]))
    message = await refused(
        client, "sign_proposal", proposal_id=proposal["proposal_id"], signer=signers[0].address, signature=twin
    )
    assert "has a high s value" in message
    state = (await client.read_resource(f"wallet://proposals/{proposal['proposal_id']}")).contents[0].text  # type: ignore[union-attr]
    assert json.loads(state)["signatures"] == []
