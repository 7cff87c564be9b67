"""Reputation with its real peers, in one process: a discovery server it learns agents from (and which
follows its standings), and a wallet server that holds stake and trusts its slash orders. Every server
has its own SQLite file; peers reach each other through the SDK's in-memory client, in the test's era."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from eth_account import Account
from mcp import Client
from mcp.server.mcpserver import MCPServer

from servers.common.auth import service_principal
from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer
from servers.common.keystore import KeyRing
from servers.common.peers import Peer, follow
from servers.reputation.directory import Directory
from servers.reputation.server import build_server
from servers.reputation.service import ReputationService
from servers.reputation.settings import ReputationSettings
from servers.reputation.store import MIGRATIONS, ReputationStore
from servers.wallet import server as wallet_server
from servers.wallet import store as wallet_store
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from tests.agents import CHAIN_ID, MeshAgent, register
from tests.conftest import TEST_SCRYPT_N, ManualClock
from tests.helpers import ERAS, call
from tests.servers.discovery.conftest import Harness as DiscoveryHarness
from tests.servers.discovery.conftest import open_discovery

REPUTATION = service_principal("reputation")
DISCOVERY = service_principal("discovery")


@dataclass
class Mesh:
    server: MCPServer[Any]  # reputation's, for the shared `client` fixture
    service: ReputationService
    feed: ChangeFeed
    discovery: DiscoveryHarness
    wallet: MCPServer[Any]
    clock: ManualClock
    address: str  # reputation's signing address

    async def agent(self, name: str, **fields: Any) -> MeshAgent:
        """A registered agent (registration is discovery's business, done through its own surface)."""
        agent = MeshAgent(name, fields.pop("capabilities", ["analysis"]), **fields)
        async with Client(self.discovery.server) as discovery:
            await register(discovery, agent)
        return agent

    async def funded_agent(self, name: str, usdc: str, *, staked: str | None = None, **fields: Any) -> MeshAgent:
        """A registered agent whose card lists its own wallet (created for it, bound to it by the wallet's
        signature) holding `usdc`, `staked` of it as stake."""
        agent = MeshAgent(name, fields.pop("capabilities", ["analysis"]), **fields)
        async with Client(self.wallet) as wallet:
            created = await call(
                wallet,
                "create_wallet",
                label=name,
                daily_limit="1000",
                per_transaction_limit="1000",
                owner=agent.agent_id,
            )
            binding = await call(wallet, "sign_binding", address=created["address"], agent_id=agent.agent_id)
            await call(wallet, "fund_wallet", address=created["address"], amount=usdc)
            if staked is not None:
                await call(wallet, "stake", address=created["address"], amount=staked)
        agent.wallet, agent.wallet_proof = created["address"], binding["signature"]
        async with Client(self.discovery.server) as discovery:
            await register(discovery, agent)
        return agent

    async def established(self, name: str, **fields: Any) -> MeshAgent:
        """An agent whose ratings count in full: 10 USDC staked (ScoringParams.established_stake), 1 to pay with."""
        return await self.funded_agent(name, "11", staked="10", **fields)

    async def pay(self, payer: MeshAgent, payee: MeshAgent, amount: str = "0.01") -> dict[str, Any]:
        """A payment between two agents' wallets; its receipt as the proof of their interaction."""
        async with Client(self.wallet) as wallet:
            receipt = await call(
                wallet, "execute_payment", from_address=payer.wallet, to_address=payee.wallet, amount=amount
            )
        return {"payment": {"authorization": receipt["authorization"], "signature": receipt["signature"]}}


@asynccontextmanager
async def open_mesh(
    tmp_path: Path, clock: ManualClock, era: str, *, settings: ReputationSettings | None = None
) -> AsyncIterator[Mesh]:
    signer = Signer(Account.create())
    mode = ERAS[era]
    async with (
        open_discovery(tmp_path / "discovery.db", clock) as discovery,
        Database.open(tmp_path / "wallet.db", wallet_store.MIGRATIONS) as wallet_db,
        Database.open(tmp_path / "reputation.db", MIGRATIONS) as db,
        anyio.create_task_group() as tasks,
    ):
        wallet_feed = ChangeFeed()
        wallet = WalletService(
            wallet_store.WalletStore(wallet_db),
            KeyRing("wallet-password", scrypt_n=TEST_SCRYPT_N),
            WalletSettings(reputation_address=signer.address),
            wallet_feed,
            chain_id=CHAIN_ID,
            clock=clock,
        )
        wallet_mcp = wallet_server.build_server(wallet, wallet_feed)
        store, feed = ReputationStore(db), ChangeFeed()
        directory = Directory(
            store, Peer.in_process("discovery", discovery.server, principal=REPUTATION, mode=mode), clock=clock
        )
        service = ReputationService(
            store,
            directory,
            signer,
            settings or ReputationSettings.default(),
            feed,
            wallet=Peer.in_process("wallet", wallet_mcp, principal=REPUTATION, mode=mode),
            chain_id=CHAIN_ID,
            clock=clock,
        )
        server = build_server(service, feed)
        # the two replicas, as `running` starts them: reputation follows discovery, and discovery reputation
        tasks.start_soon(
            lambda: follow(
                Peer.in_process("discovery", discovery.server, principal=REPUTATION, mode=mode),
                "discovery",
                cursor=directory.cursor,
                apply=directory.apply,
            )
        )
        tasks.start_soon(
            lambda: follow(
                Peer.in_process("reputation", server, principal=DISCOVERY, mode=mode),
                "reputation",
                cursor=discovery.service.reputation_cursor,
                apply=discovery.service.apply_reputation,
            )
        )
        yield Mesh(server, service, feed, discovery, wallet_mcp, clock, signer.address)
        tasks.cancel_scope.cancel()


@pytest.fixture
async def harness(tmp_path: Path, clock: ManualClock, era: str) -> AsyncIterator[Mesh]:
    async with open_mesh(tmp_path, clock, era) as mesh:
        yield mesh
