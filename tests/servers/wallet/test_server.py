"""The wallet's tools through an MCP client, in both protocol eras."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from mcp import Client

from servers.common.keystore import decrypt_account
from servers.wallet.store import WalletStore
from tests.helpers import call, high_s_twin, refused
from tests.servers.wallet.conftest import Harness, new_wallet

pytestmark = pytest.mark.anyio

TOOLS = {
    "create_wallet",
    "get_balance",
    "fund_wallet",
    "execute_payment",
    "set_spending_limits",
    "list_transactions",
    "propose_transaction",
    "sign_proposal",
    "optimize_treasury",
    "sign_binding",
    "stake",
    "unstake",
    "slash_stake",
}


async def snapshot(client: Client, address: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Everything a refused call must leave untouched."""
    balance = await call(client, "get_balance", address=address)
    history = (await call(client, "list_transactions", address=address, limit=100))["transactions"]
    limits = (await client.read_resource(f"wallet://{address}/limits")).contents[0].text  # type: ignore[union-attr]
    return balance, history, {"limits": limits}


async def test_every_tool_is_described_annotated_and_returns_structured_output(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description, tool.name
        assert tool.annotations is not None, tool.name
        assert tool.output_schema is not None, tool.name
    assert tools["get_balance"].annotations.read_only_hint is True  # type: ignore[union-attr]
    assert tools["execute_payment"].annotations.destructive_hint is True  # type: ignore[union-attr]
    amount = tools["execute_payment"].input_schema["properties"]["amount"]
    assert amount["type"] == "string" and "pattern" in amount


async def test_a_new_wallet_has_its_own_key_its_settings_and_nothing_in_it(client: Client) -> None:
    owner = "did:stateset:agent:0b7e4c1a-2f4d-4b8e-9f10-3c2d1e0f9a8b"
    wallet = await call(
        client,
        "create_wallet",
        label="ops",
        owner=owner,
        daily_limit="500",
        per_transaction_limit="100",
        approval_required_above="50",
        treasury_strategy="conservative",
    )
    assert wallet["owner"] == owner
    assert wallet["did"] == f"did:pkh:eip155:31337:{wallet['address']}"
    assert wallet["limits"]["daily_limit"] == "500"
    assert wallet["limits"]["approval_required_above"] == "50"
    assert wallet["treasury_strategy"] == "conservative"
    balance = await call(client, "get_balance", address=wallet["address"])
    assert balance == {
        "address": wallet["address"],
        "available": "0",
        "staked": "0",
        "liquidity": "0",
        "reserved": "0",
        "total": "0",
    }
    other = await call(client, "create_wallet", label="ops2", daily_limit="5", per_transaction_limit="5")
    assert other["address"] != wallet["address"]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"per_transaction_limit": "600"}, "per_transaction_limit 600 USDC is above daily_limit 500 USDC"),
        ({"owner": "agent-7"}, "owner 'agent-7' is not an agent DID"),
        ({"label": "   "}, "label '' must be 1 to 64 characters"),
        ({"daily_limit": "0"}, "daily_limit '0' is zero"),
        ({"multi_sig": {"signers": ["0x1"], "threshold": 1, "above": "5"}}, "is not an Ethereum address"),
        ({"treasury_strategy": "yolo"}, "treasury_strategy"),
    ],
)
async def test_create_wallet_refuses_bad_settings_and_creates_nothing(
    client: Client, arguments: dict[str, Any], says: str
) -> None:
    message = await refused(
        client, "create_wallet", **({"label": "x", "daily_limit": "500", "per_transaction_limit": "100"} | arguments)
    )
    assert says in message
    listed = (await client.read_resource("wallet://wallets")).contents[0].text  # type: ignore[union-attr]
    assert listed == "[]"


async def test_a_payment_moves_exact_money_and_returns_a_verifiable_receipt(client: Client) -> None:
    payer = await new_wallet(client, fund="100")
    payee = await new_wallet(client, fund=None)
    receipt = await call(
        client, "execute_payment", from_address=payer, to_address=payee, amount="12.345678", memo="invoice 42"
    )
    assert receipt["status"] == "settled"
    assert receipt["amount"] == "12.345678"
    assert receipt["balance_after"] == "87.654322"
    assert (receipt["from_address"], receipt["to_address"], receipt["memo"]) == (payer, payee, "invoice 42")
    signed = encode_typed_data(full_message=receipt["authorization"])
    assert Account.recover_message(signed, signature=receipt["signature"]) == payer
    assert receipt["authorization"]["message"]["value"] == 12_345_678
    assert receipt["authorization"]["message"]["nonce"] == receipt["payment_id"]
    assert receipt["authorization"]["domain"]["name"] == "StateSet Agent Mesh"
    assert (await call(client, "get_balance", address=payee))["available"] == "12.345678"


async def test_paying_an_address_this_server_does_not_hold_sends_the_money_out(client: Client) -> None:
    payer = await new_wallet(client, fund="100")
    outside = Account.create().address
    await call(client, "execute_payment", from_address=payer, to_address=outside.lower(), amount="30")
    assert (await call(client, "get_balance", address=payer))["total"] == "70"


NOT_A_STRING = "not a string; use a decimal string of USDC with at most 6 decimals"
MALFORMED = "is not a USDC amount; use a decimal string of USDC with at most 6 decimals, such as '12.5'"
BAD_AMOUNTS = {
    1.5: f"is a number, {NOT_A_STRING}",
    10: f"is a number, {NOT_A_STRING}",
    -5: f"is a number, {NOT_A_STRING}",
    None: f"is null, {NOT_A_STRING}",
    True: f"is a boolean, {NOT_A_STRING}",
    "-5": MALFORMED,
    "1e3": MALFORMED,
    "10.1234567": MALFORMED,
    "": MALFORMED,
    "ten": MALFORMED,
    " 5": MALFORMED,
    "5 ": MALFORMED,
    "0x10": MALFORMED,
    "0": "is zero; amounts must be greater than 0",
    "0.0": "is zero; amounts must be greater than 0",
}


@pytest.mark.parametrize(("amount", "says"), BAD_AMOUNTS.items())
async def test_an_inexact_amount_is_a_clear_error_that_changes_nothing(
    client: Client, amount: object, says: str
) -> None:
    payer = await new_wallet(client, fund="100")
    payee = await new_wallet(client, fund=None)
    before = await snapshot(client, payer)
    message = await refused(client, "execute_payment", from_address=payer, to_address=payee, amount=amount)
    assert f"amount {amount!r} {says}" in message
    assert await snapshot(client, payer) == before


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
async def test_the_faucet_refuses_the_same_amounts(client: Client, amount: object) -> None:
    wallet = await new_wallet(client, fund=None)
    await refused(client, "fund_wallet", address=wallet, amount=amount)
    assert (await call(client, "get_balance", address=wallet))["total"] == "0"


async def test_addresses_are_accepted_checksummed_or_lowercase_and_refused_otherwise(client: Client) -> None:
    payer = await new_wallet(client, fund="100")
    payee = await new_wallet(client, fund=None)
    await call(client, "execute_payment", from_address=payer.lower(), to_address=payee, amount="1")
    before = await snapshot(client, payer)
    bad_checksum = payee[:-1] + (payee[-1].lower() if payee[-1].isupper() else payee[-1].upper())
    if bad_checksum[-1].isdigit():  # the last character had no case; flip an earlier letter
        index = next(i for i in range(len(payee) - 1, 1, -1) if payee[i].isalpha())
        bad_checksum = payee[:index] + payee[index].swapcase() + payee[index + 1 :]
    cases = {
        bad_checksum: "fails its EIP-55 checksum",
        "0x0000000000000000000000000000000000000000": "is the zero address",
        "0x1234": "is not an Ethereum address",
        "vitalik.eth": "is not an Ethereum address",
        payer: "is the paying wallet itself",
        payer.lower(): "is the paying wallet itself",
    }
    for to_address, says in cases.items():
        message = await refused(client, "execute_payment", from_address=payer, to_address=to_address, amount="1")
        assert says in message, (to_address, message)
    unknown = Account.create().address
    message = await refused(client, "execute_payment", from_address=unknown, to_address=payee, amount="1")
    assert f"no wallet {unknown} is held by this server" in message
    assert await snapshot(client, payer) == before


async def test_the_per_transaction_limit_holds(client: Client) -> None:
    payer = await new_wallet(client, fund="1000")
    payee = await new_wallet(client, fund=None)
    await call(client, "execute_payment", from_address=payer, to_address=payee, amount="100")
    before = await snapshot(client, payer)
    message = await refused(client, "execute_payment", from_address=payer, to_address=payee, amount="100.000001")
    assert message.startswith("amount 100.000001 USDC exceeds the per-transaction limit 100 USDC")
    assert await snapshot(client, payer) == before


async def test_the_daily_limit_is_a_rolling_24_hour_window(client: Client, harness: Harness) -> None:
    payer = await new_wallet(client, fund="2000")
    payee = await new_wallet(client, fund=None)
    for _ in range(5):
        await call(client, "execute_payment", from_address=payer, to_address=payee, amount="100")
        harness.clock.advance(3600)  # one payment an hour: t=0h..4h
    message = await refused(client, "execute_payment", from_address=payer, to_address=payee, amount="0.000001")
    assert "500 of 500 USDC spent in the last 24 h, 0 USDC left" in message
    harness.clock.advance(24 * 3600 - 5 * 3600 - 1)  # t=24h-1s: the t=0h payment still counts
    message = await refused(client, "execute_payment", from_address=payer, to_address=payee, amount="1")
    assert "500 of 500 USDC spent" in message
    harness.clock.advance(1)  # t=24h: it has just left the window
    await call(client, "execute_payment", from_address=payer, to_address=payee, amount="100")
    message = await refused(client, "execute_payment", from_address=payer, to_address=payee, amount="0.000001")
    assert "500 of 500 USDC spent" in message
    limits = await call(client, "set_spending_limits", address=payer, daily_limit="600")
    assert (limits["spent_last_24h"], limits["remaining_last_24h"]) == ("500", "100")


async def test_insufficient_funds_is_refused_and_names_both_amounts(client: Client) -> None:
    payer = await new_wallet(client, fund="10")
    payee = await new_wallet(client, fund=None)
    message = await refused(client, "execute_payment", from_address=payer, to_address=payee, amount="10.5")
    assert message.startswith(f"wallet {payer} has 10 USDC available; the payment needs 10.5 USDC")


async def test_a_repeated_idempotency_key_returns_the_first_receipt_and_pays_once(client: Client) -> None:
    payer = await new_wallet(client, fund="100")
    payee = await new_wallet(client, fund=None)
    arguments = {"from_address": payer, "to_address": payee, "amount": "40", "memo": "po-1", "idempotency_key": "k-1"}
    first = await call(client, "execute_payment", **arguments)
    second = await call(client, "execute_payment", **arguments)
    assert first["replayed"] is False and second["replayed"] is True
    assert {k: v for k, v in second.items() if k != "replayed"} == {k: v for k, v in first.items() if k != "replayed"}
    assert (await call(client, "get_balance", address=payer))["available"] == "60"
    for changed in ({"amount": "41"}, {"to_address": Account.create().address}, {"memo": "po-2"}):
        message = await refused(client, "execute_payment", **(arguments | changed))
        assert "idempotency_key 'k-1' was already used for a different payment" in message
    assert (await call(client, "get_balance", address=payer))["available"] == "60"
    # keys belong to the paying wallet: another payer may use the same key
    other = await new_wallet(client, fund="100")
    await call(client, "execute_payment", **(arguments | {"from_address": other}))


async def test_keyed_requests_with_numbers_beyond_two_to_the_53_are_answered(client: Client, harness: Harness) -> None:
    payer = await new_wallet(client, fund="1000")
    payee = await new_wallet(client, fund=None)
    huge = "999999999999.999999"  # the largest amount the wire takes: about 10^18 micro-USDC
    for tool, arguments in (
        ("execute_payment", {"from_address": payer}),
        ("propose_transaction", {"address": payer}),
    ):
        message = await refused(client, tool, to_address=payee, amount=huge, idempotency_key="k-huge", **arguments)
        assert "exceeds the per-transaction limit" in message or "multi-sig" in message, message
    forever = harness.approval(payer=payer, payee=payee, amount="5", ttl=10**30)
    arguments = {
        "from_address": payer,
        "to_address": payee,
        "amount": "5",
        "approval": forever,
        "idempotency_key": "k-5",
    }
    first = await call(client, "execute_payment", **arguments)
    assert (await call(client, "execute_payment", **arguments)) == first | {"replayed": True}


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "semi;colon"])
async def test_malformed_idempotency_keys_are_refused(client: Client, key: str) -> None:
    payer = await new_wallet(client, fund="100")
    payee = await new_wallet(client, fund=None)
    message = await refused(
        client, "execute_payment", from_address=payer, to_address=payee, amount="1", idempotency_key=key
    )
    assert "idempotency_key" in message


async def test_a_governance_receipt_pays_once_for_exactly_what_it_approves(client: Client, harness: Harness) -> None:
    payer = await new_wallet(client, fund="1000", approval_required_above="50")
    payee = await new_wallet(client, fund=None)
    before = await snapshot(client, payer)
    message = await refused(client, "execute_payment", from_address=payer, to_address=payee, amount="75")
    assert "needs a governance approval receipt" in message

    other_payee = await new_wallet(client, fund=None)
    rogue = Account.create()
    bad = {
        "altered amount": harness.approval(payer=payer, payee=payee, amount="75") | {"amount": "99"},
        "other payee": harness.approval(payer=payer, payee=other_payee, amount="75"),
        "expired": harness.approval(payer=payer, payee=payee, amount="75", ttl=0),
        "wrong signer": harness.approval(payer=payer, payee=payee, amount="75", signer=rogue),
        "bad signature": harness.approval(payer=payer, payee=payee, amount="75") | {"signature": "0x1234"},
    }
    says = {
        "altered amount": "approves 99 USDC, not 75 USDC",
        "other payee": "is for payee",
        "expired": "expired at",
        "wrong signer": "is not signed by a trusted governance key",
        "bad signature": "is not a signature",
    }
    for name, approval in bad.items():
        message = await refused(
            client, "execute_payment", from_address=payer, to_address=payee, amount="75", approval=approval
        )
        assert says[name] in message, (name, message)
    assert await snapshot(client, payer) == before

    good = harness.approval(payer=payer, payee=payee, amount="75", decision_id="dec-42")
    receipt = await call(client, "execute_payment", from_address=payer, to_address=payee, amount="75", approval=good)
    assert receipt["approval_decision_id"] == "dec-42"
    message = await refused(client, "execute_payment", from_address=payer, to_address=payee, amount="75", approval=good)
    assert "approval receipt 'dec-42' has already paid once" in message
    assert (await call(client, "get_balance", address=payer))["available"] == "925"


async def test_a_governance_receipt_does_not_lift_the_wallets_own_limits(client: Client, harness: Harness) -> None:
    payer = await new_wallet(client, fund="1000", approval_required_above="50")
    payee = await new_wallet(client, fund=None)
    approval = harness.approval(payer=payer, payee=payee, amount="150")
    message = await refused(
        client, "execute_payment", from_address=payer, to_address=payee, amount="150", approval=approval
    )
    assert "exceeds the per-transaction limit 100 USDC" in message


async def test_a_retried_idempotent_payment_with_its_receipt_replays_instead_of_failing(
    client: Client, harness: Harness
) -> None:
    payer = await new_wallet(client, fund="1000", approval_required_above="50")
    payee = await new_wallet(client, fund=None)
    approval = harness.approval(payer=payer, payee=payee, amount="60", ttl=10)
    arguments = {"from_address": payer, "to_address": payee, "amount": "60", "idempotency_key": "p-60"}
    first = await call(client, "execute_payment", **arguments, approval=approval)
    harness.clock.advance(60)  # the receipt has expired by the time the retry arrives
    again = await call(client, "execute_payment", **arguments, approval=approval)
    assert again["payment_id"] == first["payment_id"] and again["replayed"]


async def test_set_spending_limits_changes_limits_and_refuses_contradictions(client: Client) -> None:
    wallet = await new_wallet(
        client, fund=None, multi_sig={"signers": [Account.create().address], "threshold": 1, "above": "80"}
    )
    limits = await call(client, "set_spending_limits", address=wallet, per_transaction_limit="90")
    assert (limits["daily_limit"], limits["per_transaction_limit"]) == ("500", "90")
    message = await refused(client, "set_spending_limits", address=wallet, per_transaction_limit="70")
    assert "multi_sig.above 80 USDC is above per_transaction_limit 70 USDC" in message
    message = await refused(client, "set_spending_limits", address=wallet, daily_limit="50")
    assert "per_transaction_limit 90 USDC is above daily_limit 50 USDC" in message
    message = await refused(client, "set_spending_limits", address=wallet)
    assert "give daily_limit, per_transaction_limit, or both" in message
    assert (await call(client, "set_spending_limits", address=wallet, daily_limit="900"))[
        "per_transaction_limit"
    ] == "90"


async def test_history_is_newest_first_and_pages_with_a_cursor(client: Client) -> None:
    payer = await new_wallet(client, fund="100")
    payee = await new_wallet(client, fund=None)
    for index in range(1, 8):
        await call(client, "execute_payment", from_address=payer, to_address=payee, amount=str(index), memo=f"#{index}")
    seen: list[str] = []
    cursor = None
    while True:
        page = await call(client, "list_transactions", address=payer, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [entry["memo"] for entry in page["transactions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["#7", "#6", "#5", "#4", "#3", "#2", "#1", "faucet"]
    message = await refused(client, "list_transactions", address=payer, cursor="bogus")
    assert "cursor 'bogus' is not one this server issued" in message
    await refused(client, "list_transactions", address=payer, limit=0)
    incoming = await call(client, "list_transactions", address=payee)
    assert [e["kind"] for e in incoming["transactions"]] == ["payment_in"] * 7


async def test_optimize_treasury_plans_by_strategy_and_applies_only_when_asked(client: Client) -> None:
    wallet = await new_wallet(client, fund="1000", treasury_strategy="balanced")
    plan = await call(client, "optimize_treasury", address=wallet)
    assert plan["strategy"] == "balanced" and plan["applied"] is False
    assert plan["target"] == {"available": "300", "staked": "400", "liquidity": "300"}
    assert (await call(client, "get_balance", address=wallet))["available"] == "1000"

    applied = await call(client, "optimize_treasury", address=wallet, strategy="aggressive", apply=True)
    assert applied["weights_percent"] == {"available": 10, "staked": 30, "liquidity": 60}
    balance = await call(client, "get_balance", address=wallet)
    assert (balance["available"], balance["staked"], balance["liquidity"], balance["total"]) == (
        "100",
        "300",
        "600",
        "1000",
    )
    assert (await call(client, "optimize_treasury", address=wallet))["strategy"] == "aggressive"
    again = await call(client, "optimize_treasury", address=wallet, apply=True)
    assert again["moves"] == []


async def test_no_tool_or_resource_ever_returns_a_private_key(client: Client, harness: Harness) -> None:
    payer = await new_wallet(client, fund="100")
    payee = await new_wallet(client, fund=None)
    outputs = [
        await call(client, "create_wallet", label="k", daily_limit="1", per_transaction_limit="1"),
        await call(client, "execute_payment", from_address=payer, to_address=payee, amount="5"),
        await call(client, "get_balance", address=payer),
        await call(client, "list_transactions", address=payer),
    ]
    resources = [
        (await client.read_resource(uri)).contents[0].text  # type: ignore[union-attr]
        for uri in ("wallet://wallets", f"wallet://{payer}/balance", f"wallet://{payer}/transactions")
    ]
    # the stored keystores, opened with the test password
    keystores = [record.keystore for record in await WalletStore(harness.db).read(lambda tx: tx.wallets())]
    secrets = [decrypt_account(ks, "test-password-123").key.hex() for ks in keystores]
    text = repr(outputs) + repr(resources)
    assert len(secrets) == 3
    for secret in secrets:
        assert secret.lower().removeprefix("0x") not in text.lower()


async def test_the_high_s_twin_of_a_governance_receipt_is_refused(client: Client, harness: Harness) -> None:
    payer = await new_wallet(client, fund="1000", approval_required_above="50")
    payee = await new_wallet(client, fund=None)
    before = await snapshot(client, payer)
    good = harness.approval(payer=payer, payee=payee, amount="75", decision_id="dec-43")
    twin = good | {"signature": high_s_twin(str(good["signature"]))}
    message = await refused(client, "execute_payment", from_address=payer, to_address=payee, amount="75", approval=twin)
    assert "approval.signature" in message and "has a high s value" in message
    assert await snapshot(client, payer) == before
