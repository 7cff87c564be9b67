"""SIGKILL in the middle of a stream of payments loses nothing, and a retry pays nothing twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from eth_account import Account
from mcp import Client

from servers.common.keystore import decrypt_account
from servers.common.passwords import load_password
from tests.e2e.conftest import STEP, child_env, serving
from tests.helpers import call, sign

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

FUNDED = 100_000
EXTERNAL = Account.create().address
WORKERS = 4
PAYMENTS = 400
KILL_AFTER = 60


def payment(payer: str, payee: str, index: int) -> dict[str, Any]:
    """Odd payments go to a wallet on this server, even ones leave it."""
    return {
        "from_address": payer,
        "to_address": payee if index % 2 else EXTERNAL,
        "amount": "1.5",
        "memo": f"#{index}",
        "idempotency_key": f"k-{index}",
    }


async def test_sigkill_mid_stream_keeps_every_acknowledged_payment_and_retries_pay_once(tmp_path: Path) -> None:
    signers = [Account.create(), Account.create()]
    acknowledged: set[int] = set()
    attempted: set[int] = set()
    with serving(tmp_path, "--transport", "http") as served:
        url = f"{served.base}/mcp"
        async with Client(url, read_timeout_seconds=STEP) as client:
            policy = {"signers": [s.address for s in signers], "threshold": 2, "above": "500"}
            payer = (
                await call(
                    client,
                    "create_wallet",
                    label="payer",
                    daily_limit="1000000",
                    per_transaction_limit="1000",
                    multi_sig=policy,
                )
            )["address"]
            payee = (await call(client, "create_wallet", label="payee", daily_limit="1", per_transaction_limit="1"))[
                "address"
            ]
            await call(client, "fund_wallet", address=payer, amount=str(FUNDED))
            proposal = await call(client, "propose_transaction", address=payer, to_address=payee, amount="600")
            await call(
                client,
                "sign_proposal",
                proposal_id=proposal["proposal_id"],
                signer=signers[0].address,
                signature=sign(signers[0], proposal["typed_data"]),
            )

        enough = anyio.Event()

        async def worker(client: Client, start: int) -> None:
            for index in range(start, PAYMENTS, WORKERS):
                attempted.add(index)
                result = await client.call_tool("execute_payment", payment(payer, payee, index))
                assert not result.is_error, result.content
                acknowledged.add(index)
                if len(acknowledged) >= KILL_AFTER:
                    enough.set()

        with pytest.raises(BaseException):  # noqa: B017 - the connection dies under the workers; any error will do
            async with Client(url, read_timeout_seconds=STEP) as client, anyio.create_task_group() as tasks:
                for start in range(WORKERS):
                    tasks.start_soon(worker, client, start)
                with anyio.fail_after(STEP):
                    await enough.wait()
                served.kill()
                with anyio.fail_after(STEP):
                    await anyio.sleep_forever()
    in_flight = attempted - acknowledged
    assert KILL_AFTER <= len(acknowledged) < PAYMENTS and 0 < len(in_flight) <= WORKERS

    with sqlite3.connect(tmp_path / "wallet.db") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    with serving(tmp_path, "--transport", "http") as served:
        async with Client(f"{served.base}/mcp", read_timeout_seconds=STEP) as client:
            # every acknowledged payment survived; retrying every attempted key pays each exactly once
            replayed = 0
            for index in sorted(attempted):
                receipt = await call(client, "execute_payment", **payment(payer, payee, index))
                replayed += receipt["replayed"]
                assert receipt["replayed"] or index in in_flight, f"acknowledged payment #{index} was lost"
            assert len(acknowledged) <= replayed <= len(attempted)

            paid = len(attempted) * 1.5
            balance = await call(client, "get_balance", address=payer)
            assert float(balance["available"]) == FUNDED - 600 - paid
            assert balance["reserved"] == "600"
            to_payee = sum(1.5 for index in attempted if index % 2)
            assert float((await call(client, "get_balance", address=payee))["available"]) == to_payee
            external = paid - to_payee
            assert float(balance["total"]) + to_payee + external == FUNDED  # no money made or lost

            limits = await call(client, "set_spending_limits", address=payer, daily_limit="1000000")
            assert float(limits["spent_last_24h"]) == 600 + paid  # the limit window survived too

            outgoing = 0
            cursor = None
            while True:
                page = await call(
                    client, "list_transactions", address=payer, limit=100, **({"cursor": cursor} if cursor else {})
                )
                outgoing += sum(entry["kind"] == "payment_out" for entry in page["transactions"])
                if (cursor := page["next_cursor"]) is None:
                    break
            assert outgoing == len(attempted)

            # the proposal survived with its first signature; the second executes it
            executed = await call(
                client,
                "sign_proposal",
                proposal_id=proposal["proposal_id"],
                signer=signers[1].address,
                signature=sign(signers[1], proposal["typed_data"]),
            )
            assert executed["status"] == "executed"
            assert [s["signer"] for s in executed["signatures"]] == [s.address for s in signers]

    assert_no_secret_logged(tmp_path)


def assert_no_secret_logged(home: Path) -> None:
    """After hundreds of payments, no server log holds a private key or the keystore password."""
    password = load_password(home, child_env(home))
    with sqlite3.connect(home / "wallet.db") as raw:
        keys = [decrypt_account(row[0], password).key.hex() for row in raw.execute("SELECT keystore FROM wallets")]
    logs = "".join(log.read_text() for log in home.glob("server-*.log"))
    assert "paid" in logs and len(keys) == 2
    for secret in [*keys, password]:
        assert secret.removeprefix("0x") not in logs
