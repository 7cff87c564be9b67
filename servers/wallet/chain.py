"""USDC on an EVM chain: moved by the payer's own EIP-3009 authorization, relayed by our key.

The wallets never hold ETH. A payment's `TransferWithAuthorization`, signed by the wallet's key under the
token's own EIP-712 domain, is sent to the token's `transferWithAuthorization` by a relayer account that
pays the gas. The authorization's nonce is the payment id, so a payment can reach the chain at most once:
a second submission reverts ("authorization is used or canceled") and `authorization_used` tells, after
a crash, whether it did. Money that arrives from elsewhere is found in the token's `Transfer` logs.

Works with any JSON-RPC node (anvil for tests, a real chain in production) and any token with USDC's
EIP-3009 interface; `contracts/TestUSDC.sol` is the stand-in the tests deploy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

import anyio
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.contract import AsyncContract
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception

from servers.common.identity import TypedData
from servers.wallet.errors import ChainUnavailableError, SettlementRefusedError

logger = logging.getLogger(__name__)
T = TypeVar("T")

RECEIPT_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class IncomingTransfer:
    """A USDC `Transfer` log, with the EIP-3009 authorizations used in the same transaction."""

    tx_hash: str
    log_index: int
    block: int
    sender: str
    recipient: str
    amount: int
    authorizations: tuple[tuple[str, str], ...]  # (authorizer, nonce) pairs


def _artifact() -> dict[str, Any]:
    artifact: dict[str, Any] = json.loads(
        resources.files("servers.wallet.contracts").joinpath("TestUSDC.json").read_text()
    )
    return artifact


def token_abi() -> list[dict[str, Any]]:
    abi: list[dict[str, Any]] = _artifact()["abi"]
    return abi


async def deploy_test_usdc(w3: AsyncWeb3[Any], deployer: LocalAccount) -> AsyncContract:
    """Deploy TestUSDC (for sandboxes, tests and benchmarks); `deployer` becomes its only minter."""
    artifact = _artifact()
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    nonce = await w3.eth.get_transaction_count(deployer.address, "pending")
    deploy = await factory.constructor().build_transaction({"from": deployer.address, "nonce": nonce})
    tx_hash = await w3.eth.send_raw_transaction(deployer.sign_transaction(deploy).raw_transaction)
    address = (await w3.eth.wait_for_transaction_receipt(tx_hash))["contractAddress"]
    if address is None:
        raise ChainUnavailableError("the TestUSDC deployment created no contract")
    return w3.eth.contract(address=address, abi=artifact["abi"])


class UsdcChain:
    """USDC on one EVM chain, reached through a JSON-RPC node, with the relayer that pays the gas."""

    def __init__(self, w3: AsyncWeb3[Any], token: AsyncContract, relayer: LocalAccount, domain: dict[str, Any]) -> None:
        self._w3 = w3
        self._token = token
        self._relayer = relayer
        self.domain = domain
        self._sending = anyio.Lock()  # one relayer nonce at a time

    @classmethod
    async def connect(cls, rpc_url: str, token_address: str, relayer_key: str) -> UsdcChain:
        """Reach the node and read the token's EIP-712 domain; fails if the token is not there."""
        w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        token = w3.eth.contract(address=w3.to_checksum_address(token_address), abi=token_abi())
        relayer: LocalAccount = Account.from_key(relayer_key)
        try:
            chain_id = await w3.eth.chain_id
            if not await w3.eth.get_code(token.address):
                raise ChainUnavailableError(f"no contract at {token.address} on chain {chain_id}")
            name, version = await token.functions.name().call(), await token.functions.version().call()
        except (OSError, Web3Exception) as exc:
            await w3.provider.disconnect()
            raise ChainUnavailableError(f"cannot reach the EVM node at {rpc_url}: {exc.__class__.__name__}") from exc
        except ChainUnavailableError:
            await w3.provider.disconnect()
            raise
        domain = {"name": name, "version": version, "chainId": chain_id, "verifyingContract": token.address}
        logger.info(
            "settling on chain %d, token %s (%s v%s), relayer %s",
            chain_id,
            token.address,
            name,
            version,
            relayer.address,
        )
        return cls(w3, token, relayer, domain)

    async def close(self) -> None:
        """Close the node connection's HTTP session."""
        await self._w3.provider.disconnect()

    @property
    def description(self) -> str:
        return f"EVM chain {self.domain['chainId']} (USDC at {self.domain['verifyingContract']})"

    async def submit(self, authorization: TypedData, signature: str) -> str:
        """Relay a signed TransferWithAuthorization; returns the transaction hash once it is mined.

        Raises:
            SettlementRefusedError: the token would revert (spent nonce, expired, no funds): nothing was sent.
            ChainUnavailableError: the node failed or the receipt did not come in time: it may still land.
        """
        message = authorization.message
        raw = bytes.fromhex(signature.removeprefix("0x"))
        call = self._token.functions.transferWithAuthorization(
            message["from"],
            message["to"],
            message["value"],
            message["validAfter"],
            message["validBefore"],
            bytes.fromhex(message["nonce"].removeprefix("0x")),
            raw[64],
            raw[:32],
            raw[32:64],
        )
        try:
            async with self._sending:
                nonce = await self._w3.eth.get_transaction_count(self._relayer.address, "pending")
                transaction = await call.build_transaction({"from": self._relayer.address, "nonce": nonce})
                signed = self._relayer.sign_transaction(transaction)  # type: ignore[arg-type]  # web3's TxParams
                tx_hash = await self._w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = await self._w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=RECEIPT_TIMEOUT_SECONDS, poll_latency=0.05
            )
        except ContractLogicError as exc:  # from the gas estimate: the transfer would revert
            raise SettlementRefusedError(f"the USDC contract refused the transfer: {_reason(exc)}") from exc
        except (OSError, TimeExhausted, Web3Exception) as exc:
            raise ChainUnavailableError(f"the EVM node did not settle the transfer: {exc.__class__.__name__}") from exc
        if receipt["status"] != 1:
            raise SettlementRefusedError(f"the transfer reverted in transaction 0x{bytes(tx_hash).hex()}")
        return "0x" + bytes(tx_hash).hex()

    async def authorization_used(self, payer: str, nonce: str) -> bool:
        """Whether the authorization with this nonce was used (or canceled) on chain."""
        call = self._token.functions.authorizationState(payer, bytes.fromhex(nonce.removeprefix("0x")))
        used: bool = await _rpc(call.call())
        return used

    async def latest_block(self) -> tuple[int, int]:
        """The newest block's number and timestamp."""
        block = await _rpc(self._w3.eth.get_block("latest"))
        return int(block["number"]), int(block["timestamp"])

    async def balance_of(self, address: str) -> int:
        balance: int = await _rpc(self._token.functions.balanceOf(address).call())
        return balance

    async def transfers(self, from_block: int, to_block: int) -> list[IncomingTransfer]:
        """Every token transfer in the range, oldest first."""
        events = self._token.events
        transfers = await _rpc(events.Transfer.get_logs(from_block=from_block, to_block=to_block))
        used = await _rpc(events.AuthorizationUsed.get_logs(from_block=from_block, to_block=to_block))
        by_tx: dict[bytes, list[tuple[str, str]]] = {}
        for log in used:
            by_tx.setdefault(bytes(log["transactionHash"]), []).append(
                (log["args"]["authorizer"], "0x" + bytes(log["args"]["nonce"]).hex())
            )
        return [
            IncomingTransfer(
                tx_hash="0x" + bytes(log["transactionHash"]).hex(),
                log_index=int(log["logIndex"]),
                block=int(log["blockNumber"]),
                sender=log["args"]["from"],
                recipient=log["args"]["to"],
                amount=int(log["args"]["value"]),
                authorizations=tuple(by_tx.get(bytes(log["transactionHash"]), ())),
            )
            for log in transfers
        ]


async def _rpc(call: Awaitable[T]) -> T:
    """Await a node call, reporting any failure to reach or hear from the node as ChainUnavailableError."""
    try:
        return await call
    except (OSError, TimeExhausted, Web3Exception) as exc:
        raise ChainUnavailableError(f"the EVM node failed: {exc.__class__.__name__}") from exc


def _reason(exc: ContractLogicError) -> str:
    message = exc.message or str(exc)
    return message.removeprefix("execution reverted: ")
