"""`stateset demo wallet`: an agent's payments walked through the wallet server, as any MCP host would drive it.

The demo launches `stateset serve wallet` over stdio and talks to it with the SDK's `Client`. It plays the
other parties itself: the governance key that signs approval receipts and two multi-sig co-signers, all
signing standard EIP-712 typed data with eth-account. Everything runs offline on the local ledger.
Exit status 0 means every step behaved as the wallet promises.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult

from servers.common.identity import Signer
from servers.common.money import parse_usdc
from servers.common.passwords import PASSWORD_ENV
from servers.common.receipts import issue_approval
from servers.common.settings import MeshSettings

PASSED_ENV = ("STATESET_KEYSTORE_PASSWORD", "STATESET_KEYSTORE_SCRYPT_N", "STATESET_CHAIN_ID", "STATESET_LOG_LEVEL")


class DemoFailure(Exception):
    """A step did not behave as the wallet promises."""


class Timeline:
    def __init__(self) -> None:
        self._start = time.perf_counter()

    def step(self, title: str, detail: str = "") -> None:
        elapsed = time.perf_counter() - self._start
        print(f"[{elapsed:6.2f}s] {title}")
        for line in detail.splitlines():
            print(f"          {line}")


async def run_demo(home: Path | None, environ: Mapping[str, str]) -> int:
    if home is None:  # keys in a directory deleted at exit: a password that dies with them leaves no file behind
        environ = {PASSWORD_ENV: secrets.token_urlsafe(32)} | dict(environ)
    with tempfile.TemporaryDirectory(prefix="stateset-demo-") as scratch:
        data_dir = home or Path(scratch)
        try:
            await _walkthrough(data_dir, environ)
        except DemoFailure as exc:
            print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
            return 1
    return 0


async def _walkthrough(data_dir: Path, environ: Mapping[str, str]) -> None:
    governance: LocalAccount = Account.create()
    cfo, controller, ops = Account.create(), Account.create(), Account.create()
    env = {key: environ[key] for key in PASSED_ENV if key in environ}
    env = {"STATESET_LOG_LEVEL": "WARNING"} | env  # the server's log shares this terminal; keep it to problems
    env |= {"STATESET_HOME": str(data_dir), "STATESET_GOVERNANCE_ADDRESS": governance.address}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "agent.cli", "serve", "wallet", "--home", str(data_dir)], env=env
    )
    chain_id = MeshSettings.from_env(environ).chain_id
    timeline = Timeline()
    async with Client(params, read_timeout_seconds=60) as client:
        timeline.step(
            "wallet server launched over stdio",
            f"protocol {client.protocol_version}; data in {data_dir}\n"
            f"governance key {governance.address} (the wallet trusts only its receipts)",
        )

        async def call(tool: str, **arguments: Any) -> dict[str, Any]:
            result = await client.call_tool(tool, arguments)
            if result.is_error or result.structured_content is None:
                raise DemoFailure(f"{tool} failed: {_text(result)}")
            content: dict[str, Any] = result.structured_content
            return content

        async def refused(tool: str, **arguments: Any) -> str:
            result = await client.call_tool(tool, arguments)
            if not result.is_error:
                raise DemoFailure(f"{tool} should have been refused but succeeded")
            return _text(result).removeprefix(f"Error executing tool {tool}: ")

        agent = await call(
            "create_wallet",
            label="procurement-agent",
            owner="did:stateset:agent:6f1c2a9e-4d3b-4c8e-9a51-0c7d2e9b8f10",
            daily_limit="500",
            per_transaction_limit="100",
            approval_required_above="50",
            multi_sig={"signers": [cfo.address, controller.address, ops.address], "threshold": 2, "above": "80"},
            treasury_strategy="balanced",
        )
        supplier = await call("create_wallet", label="acme-supplies", daily_limit="1000", per_transaction_limit="500")
        payer, payee = agent["address"], supplier["address"]
        timeline.step(
            "created two wallets, each with its own key held encrypted",
            f"procurement-agent {payer}: 500/day, 100/payment, approval above 50, 2-of-3 multi-sig from 80\n"
            f"acme-supplies     {payee}",
        )

        balance = await call("fund_wallet", address=payer, amount="1000")
        timeline.step("funded the agent from the sandbox faucet", f"available {balance['available']} USDC")

        order = {"from_address": payer, "to_address": payee, "amount": "25", "memo": "PO-1001"}
        receipt = await call("execute_payment", **order, idempotency_key="po-1001")
        signer = Account.recover_message(
            encode_typed_data(full_message=receipt["authorization"]), signature=receipt["signature"]
        )
        if signer != payer:
            raise DemoFailure(f"the payment authorization recovers to {signer}, not the payer {payer}")
        timeline.step(
            "paid 25 USDC for PO-1001",
            f"payment {receipt['payment_id'][:18]}…, balance after {receipt['balance_after']} USDC\n"
            f"EIP-712 signature verified offline: signed by {signer}",
        )

        retry = await call("execute_payment", **order, idempotency_key="po-1001")
        if not retry["replayed"] or retry["payment_id"] != receipt["payment_id"]:
            raise DemoFailure("a retried idempotency key paid again")
        timeline.step("retried the same call after a timeout", "same receipt returned (replayed), no money moved")

        message = await refused("execute_payment", from_address=payer, to_address=payee, amount="150")
        timeline.step("tried to pay 150 USDC", f"refused: {message}")

        message = await refused("execute_payment", from_address=payer, to_address=payee, amount="60")
        timeline.step("tried to pay 60 USDC without approval", f"refused: {message}")

        approval = _approval(governance, chain_id, "dec-demo-0001", payer=payer, payee=payee, amount="60")
        paid = await call("execute_payment", from_address=payer, to_address=payee, amount="60", approval=approval)
        timeline.step(
            "governance approved 60 USDC; paid with its receipt",
            f"receipt {approval['decision_id']} is bound to payer, payee, amount and expiry\n"
            f"balance after {paid['balance_after']} USDC",
        )
        message = await refused("execute_payment", from_address=payer, to_address=payee, amount="60", approval=approval)
        timeline.step("tried to spend the same receipt again", f"refused: {message}")

        message = await refused("execute_payment", from_address=payer, to_address=payee, amount="85")
        timeline.step("tried to pay 85 USDC directly", f"refused: {message}")
        proposal = await call(
            "propose_transaction",
            address=payer,
            to_address=payee,
            amount="85",
            memo="PO-1002 bulk order",
            approval=_approval(governance, chain_id, "dec-demo-0002", payer=payer, payee=payee, amount="85"),
        )
        timeline.step(
            "proposed 85 USDC as a multi-sig payment",
            f"{proposal['proposal_id']}: 85 USDC reserved, expires {proposal['expires_at']}",
        )
        for cosigner, name in ((cfo, "CFO"), (controller, "controller")):
            proposal = await call(
                "sign_proposal",
                proposal_id=proposal["proposal_id"],
                signer=cosigner.address,
                signature=_sign(cosigner, proposal["typed_data"]),
            )
            timeline.step(f"{name} signed the proposal", f"status {proposal['status']}")
        if proposal["status"] != "executed" or proposal["payment"] is None:
            raise DemoFailure("the proposal did not execute at its threshold")

        plan = await call("optimize_treasury", address=payer, apply=True)
        moves = ", ".join(f"{m['amount']} {m['from_bucket']}->{m['to_bucket']}" for m in plan["moves"]) or "none"
        timeline.step(f"applied the {plan['strategy']} treasury strategy", f"moves: {moves}")

        history = await call("list_transactions", address=payer, limit=10)
        lines = [
            f"{e['kind']:<12} {e['amount']:>8} USDC  available after {e['available_after']}"
            for e in history["transactions"]
        ]
        timeline.step("the agent's history, newest first", "\n".join(lines))

        final_agent = await call("get_balance", address=payer)
        final_supplier = await call("get_balance", address=payee)
        timeline.step(
            "final balances",
            f"procurement-agent available {final_agent['available']}, staked {final_agent['staked']}, "
            f"liquidity {final_agent['liquidity']}, total {final_agent['total']} USDC\n"
            f"acme-supplies     total {final_supplier['total']} USDC",
        )
        if final_agent["total"] != "830" or final_supplier["total"] != "170":
            raise DemoFailure(f"money is not where it should be: {final_agent['total']} + {final_supplier['total']}")
        timeline.step("done: 1000 USDC in, 1000 USDC accounted for")


def _approval(
    governance: LocalAccount, chain_id: int, decision_id: str, *, payer: str, payee: str, amount: str
) -> dict[str, Any]:
    """What the governance server will issue: an ApprovalReceipt signed by its key, valid for 10 minutes."""
    receipt = issue_approval(
        Signer(governance),
        chain_id,
        decision_id=decision_id,
        payer=payer,
        payee=payee,
        amount=parse_usdc(amount),
        expires_at=int(time.time()) + 600,
    )
    return receipt.model_dump(mode="json")


def _sign(account: LocalAccount, typed_data: dict[str, Any]) -> str:
    return "0x" + bytes(account.sign_message(encode_typed_data(full_message=typed_data)).signature).hex()


def _text(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)
