"""Settlement on a real EVM JSON-RPC node (anvil on 127.0.0.1) through the USDC contract's EIP-3009 path."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from mcp import Client
from web3 import AsyncHTTPProvider, AsyncWeb3

from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.identity import TypedData
from servers.common.keystore import KeyRing, decrypt_account
from servers.wallet.chain import UsdcChain, deploy_test_usdc
from servers.wallet.schema import MIGRATIONS
from servers.wallet.server import build_server
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from servers.wallet.settlement import ChainSettlement
from servers.wallet.store import WalletStore
from tests.conftest import TEST_SCRYPT_N
from tests.e2e.conftest import STATESET, STEP, child_env, free_port, serving
from tests.helpers import call, refused, scaled, sign

pytestmark = pytest.mark.anyio

ANVIL = Path(os.environ.get("STATESET_ANVIL", Path(__file__).parents[3] / ".ci" / "node_modules" / ".bin" / "anvil"))
# anvil's well-known development accounts, funded with ETH: the token's deployer and the relayer
DEPLOYER = Account.from_key("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
RELAYER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
PASSWORD = "chain-test-password"
USDC = 1_000_000


@pytest.fixture(scope="module")
def anvil() -> Iterator[str]:
    if not ANVIL.exists():
        pytest.fail(f"anvil is not installed at {ANVIL}: run .ci/setup --dev (it installs .ci/package.json)")
    port = free_port()
    # npm's `anvil` is a node wrapper around the real binary: a session of its own lets us stop both
    process = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STEP
        while True:
            try:
                httpx2.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1)
                break
            except httpx2.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("anvil did not start")
                time.sleep(0.05)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(scaled(10))


@dataclass
class Chain:
    url: str
    w3: AsyncWeb3[Any]
    token: Any
    service: WalletService
    settlement: ChainSettlement
    client: Client
    db: Database

    async def send(self, account: LocalAccount, function: Any) -> Any:
        nonce = await self.w3.eth.get_transaction_count(account.address, "pending")
        transaction = await function.build_transaction({"from": account.address, "nonce": nonce})
        tx_hash = await self.w3.eth.send_raw_transaction(account.sign_transaction(transaction).raw_transaction)
        return await self.w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.02)

    async def deposit(self, to: str, usdc: int) -> None:
        """Someone (the deployer) sends USDC to `to` on chain."""
        await self.send(DEPLOYER, self.token.functions.mint(DEPLOYER.address, usdc * USDC))
        await self.send(DEPLOYER, self.token.functions.transfer(to, usdc * USDC))

    async def on_chain(self, address: str) -> int:
        balance: int = await self.token.functions.balanceOf(address).call()
        return balance

    async def rpc(self, method: str, *params: Any) -> Any:
        return await self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]

    async def wallet_key(self, address: str) -> LocalAccount:
        keystore = await WalletStore(self.db).read(lambda tx: tx.keystore(address))
        assert keystore is not None
        return decrypt_account(keystore, PASSWORD)


@pytest.fixture
async def w3(anvil: str) -> AsyncIterator[AsyncWeb3[Any]]:
    connection = AsyncWeb3(AsyncHTTPProvider(anvil))
    yield connection
    await connection.provider.disconnect()


@pytest.fixture
async def token(w3: AsyncWeb3[Any]) -> Any:
    """A fresh TestUSDC for each test, deployed from the committed artifact."""
    return await deploy_test_usdc(w3, DEPLOYER)


@pytest.fixture
async def chain(anvil: str, w3: AsyncWeb3[Any], token: Any, tmp_path: Path) -> AsyncIterator[Chain]:
    usdc = await UsdcChain.connect(anvil, token.address, RELAYER_KEY)
    async with Database.open(tmp_path / "wallet.db", MIGRATIONS) as db:
        feed = ChangeFeed()
        store = WalletStore(db)
        settlement = ChainSettlement(usdc, store, feed)
        service = WalletService(
            store,
            KeyRing(PASSWORD, scrypt_n=TEST_SCRYPT_N),
            WalletSettings(),
            feed,
            chain_id=await w3.eth.chain_id,
            settlement=settlement,
        )
        await settlement.sync_deposits()  # the first scan starts the cursor at the current block
        async with Client(build_server(service, feed)) as client:
            yield Chain(anvil, w3, token, service, settlement, client, db)
    await usdc.close()


async def wallet(chain: Chain, label: str, **limits: str) -> str:
    settings = {"daily_limit": "1000", "per_transaction_limit": "500"} | limits
    return str((await call(chain.client, "create_wallet", label=label, **settings))["address"])


async def test_money_sent_to_a_wallet_on_chain_is_credited_once(chain: Chain) -> None:
    alice = await wallet(chain, "alice")
    await chain.deposit(alice, 100)
    balance = await call(chain.client, "get_balance", address=alice)
    assert balance["available"] == "100"
    await chain.settlement.sync_deposits()  # scanning again finds nothing new
    assert (await call(chain.client, "get_balance", address=alice))["total"] == "100"
    history = await call(chain.client, "list_transactions", address=alice)
    assert [(e["kind"], e["counterparty"]) for e in history["transactions"]] == [("deposit", DEPLOYER.address)]


async def test_a_payment_settles_through_the_usdc_contract_with_the_payers_own_authorization(chain: Chain) -> None:
    alice, bob = await wallet(chain, "alice"), await wallet(chain, "bob")
    outside = Account.create().address
    await chain.deposit(alice, 100)
    await call(chain.client, "get_balance", address=alice)
    relayer_eth = await chain.w3.eth.get_balance(Account.from_key(RELAYER_KEY).address)

    receipt = await call(
        chain.client, "execute_payment", from_address=alice, to_address=bob, amount="12.5", idempotency_key="po-1"
    )
    assert receipt["status"] == "settled" and receipt["transaction_hash"].startswith("0x")
    assert receipt["settlement"] == f"EVM chain {await chain.w3.eth.chain_id} (USDC at {chain.token.address})"
    assert receipt["authorization"]["domain"]["name"] == "USD Coin"  # signed under the token's own domain
    assert receipt["authorization"]["domain"]["verifyingContract"] == chain.token.address
    mined = await chain.w3.eth.get_transaction_receipt(receipt["transaction_hash"])
    assert mined["status"] == 1 and mined["to"] == chain.token.address
    assert (await chain.on_chain(alice), await chain.on_chain(bob)) == (87_500_000, 12_500_000)
    assert await chain.w3.eth.get_balance(alice) == 0  # the wallet needs no ETH: the relayer paid the gas
    assert await chain.w3.eth.get_balance(Account.from_key(RELAYER_KEY).address) < relayer_eth

    await call(chain.client, "execute_payment", from_address=alice, to_address=outside, amount="7.5")
    assert await chain.on_chain(outside) == 7_500_000
    # the ledger agrees with the chain, and bob's incoming payment was not mistaken for a deposit
    assert (await call(chain.client, "get_balance", address=alice))["available"] == "80"
    assert (await call(chain.client, "get_balance", address=bob))["available"] == "12.5"
    history = await call(chain.client, "list_transactions", address=bob)
    assert [e["kind"] for e in history["transactions"]] == ["payment_in"]

    again = await call(
        chain.client, "execute_payment", from_address=alice, to_address=bob, amount="12.5", idempotency_key="po-1"
    )
    assert again["replayed"] and again["transaction_hash"] == receipt["transaction_hash"]
    assert await chain.on_chain(bob) == 12_500_000


async def test_the_faucet_is_refused_when_money_lives_on_a_chain(chain: Chain) -> None:
    alice = await wallet(chain, "alice")
    message = await refused(chain.client, "fund_wallet", address=alice, amount="10")
    assert message.startswith("fund_wallet credits the local ledger only; this server settles on EVM chain")
    assert (await call(chain.client, "get_balance", address=alice))["total"] == "0"


async def test_a_transfer_the_contract_refuses_fails_and_refunds_the_payer(chain: Chain) -> None:
    alice, bob = await wallet(chain, "alice"), await wallet(chain, "bob")
    await chain.deposit(alice, 50)
    await call(chain.client, "get_balance", address=alice)
    # the USDC leaves alice's address behind the server's back, so the ledger believes in money that is gone
    key = await chain.wallet_key(alice)
    await chain.rpc("anvil_setBalance", alice, hex(10**18))
    await chain.send(key, chain.token.functions.transfer(DEPLOYER.address, 45 * USDC))

    receipt = await call(chain.client, "execute_payment", from_address=alice, to_address=bob, amount="20")
    assert receipt["status"] == "failed"
    assert receipt["failure"] == "the USDC contract refused the transfer: ERC20: transfer amount exceeds balance"
    balance = await call(chain.client, "get_balance", address=alice)
    assert balance["available"] == "50"  # refunded
    limits = await call(chain.client, "set_spending_limits", address=alice, daily_limit="1000")
    assert limits["spent_last_24h"] == "0"  # and the budget it took is free again
    assert await chain.on_chain(bob) == 0


async def test_a_payment_the_node_could_not_take_stays_pending_and_settles_later_exactly_once(chain: Chain) -> None:
    alice, bob = await wallet(chain, "alice"), await wallet(chain, "bob")
    await chain.deposit(alice, 100)
    await call(chain.client, "get_balance", address=alice)
    relayer = Account.from_key(RELAYER_KEY).address
    funded = await chain.w3.eth.get_balance(relayer)
    await chain.rpc("anvil_setBalance", relayer, "0x0")  # the relayer cannot pay gas: the node refuses the tx

    receipt = await call(
        chain.client, "execute_payment", from_address=alice, to_address=bob, amount="30", idempotency_key="k-30"
    )
    assert receipt["status"] == "pending" and receipt["transaction_hash"] is None
    assert (await call(chain.client, "get_balance", address=alice))["available"] == "70"  # already debited
    assert await chain.on_chain(bob) == 0

    # someone relays the very same signed authorization before our upkeep does (or we did, then crashed)
    await chain.rpc("anvil_setBalance", relayer, hex(funded))
    authorization = TypedData.from_json(receipt["authorization"])
    raw = bytes.fromhex(receipt["signature"][2:])
    message = authorization.message
    await chain.send(
        DEPLOYER,
        chain.token.functions.transferWithAuthorization(
            message["from"],
            message["to"],
            message["value"],
            message["validAfter"],
            message["validBefore"],
            bytes.fromhex(message["nonce"][2:]),
            raw[64],
            raw[:32],
            raw[32:64],
        ),
    )
    assert await chain.settlement.settle_pending() == 0
    await chain.settlement.sync_deposits()
    assert (await call(chain.client, "get_balance", address=bob))["available"] == "30"  # credited once
    final = await call(
        chain.client, "execute_payment", from_address=alice, to_address=bob, amount="30", idempotency_key="k-30"
    )
    assert final["status"] == "settled" and final["replayed"]
    assert await chain.on_chain(bob) == 30 * USDC


async def test_a_multi_sig_payment_settles_on_chain_when_the_threshold_signs(chain: Chain) -> None:
    signers = [Account.create(), Account.create()]
    policy = {"signers": [s.address for s in signers], "threshold": 2, "above": "100"}
    vault = await wallet(chain, "vault", multi_sig=policy)  # type: ignore[arg-type]
    supplier = Account.create().address
    await chain.deposit(vault, 500)
    await call(chain.client, "get_balance", address=vault)
    proposal = await call(chain.client, "propose_transaction", address=vault, to_address=supplier, amount="150")
    for signer in signers:
        proposal = await call(
            chain.client,
            "sign_proposal",
            proposal_id=proposal["proposal_id"],
            signer=signer.address,
            signature=sign(signer, proposal["typed_data"]),
        )
    assert proposal["status"] == "executed" and proposal["payment"]["status"] == "settled"
    assert await chain.on_chain(supplier) == 150 * USDC
    balance = await call(chain.client, "get_balance", address=vault)
    assert (balance["available"], balance["reserved"], balance["total"]) == ("350", "0", "350")


@pytest.mark.e2e
async def test_stateset_serve_settles_on_the_configured_chain(
    anvil: str, w3: AsyncWeb3[Any], token: Any, tmp_path: Path
) -> None:
    key_file = tmp_path / "relayer.key"
    key_file.write_text(RELAYER_KEY)
    key_file.chmod(0o600)
    env = child_env(
        tmp_path,
        STATESET_SETTLEMENT="evm",
        STATESET_EVM_RPC_URL=anvil,
        STATESET_EVM_USDC_ADDRESS=token.address,
        STATESET_EVM_RELAYER_KEY_FILE=str(key_file),
    )
    with serving(tmp_path, "--transport", "http", env=env) as served:
        async with Client(f"{served.base}/mcp", read_timeout_seconds=STEP) as client:
            alice = (await call(client, "create_wallet", label="a", daily_limit="100", per_transaction_limit="50"))[
                "address"
            ]
            outside = Account.create().address
            nonce = await w3.eth.get_transaction_count(DEPLOYER.address, "pending")
            mint = await token.functions.mint(alice, 40 * USDC).build_transaction(
                {"from": DEPLOYER.address, "nonce": nonce}
            )
            minted = await w3.eth.send_raw_transaction(DEPLOYER.sign_transaction(mint).raw_transaction)
            await w3.eth.wait_for_transaction_receipt(minted)
            assert (await call(client, "get_balance", address=alice))["available"] == "40"
            receipt = await call(client, "execute_payment", from_address=alice, to_address=outside, amount="15")
            assert receipt["status"] == "settled"
            assert await token.functions.balanceOf(outside).call() == 15 * USDC
    assert RELAYER_KEY[2:] not in served.log.read_text()


@pytest.mark.e2e
def test_an_unreachable_node_stops_start_up_with_a_clear_error(tmp_path: Path) -> None:
    env = child_env(
        tmp_path,
        STATESET_SETTLEMENT="evm",
        STATESET_EVM_RPC_URL=f"http://127.0.0.1:{free_port()}",
        STATESET_EVM_USDC_ADDRESS=Account.create().address,
        STATESET_EVM_RELAYER_KEY=RELAYER_KEY,
    )
    result = subprocess.run(
        [STATESET, "serve", "wallet", "--transport", "http", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP,
    )
    assert result.returncode == 2
    assert "STATESET_SETTLEMENT=evm: cannot reach the EVM node at http://127.0.0.1:" in result.stderr
    assert RELAYER_KEY[2:] not in result.stderr
