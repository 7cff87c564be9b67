"""A supplier agent on a real mesh in this process: its own wallet and card, a buyer agent with a funded wallet
and a card listing it, the supplier's desk on a real SQLite file, and its MCP server reached through the SDK's
`Client` in either protocol era, as the buyer (or anyone else)."""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from eth_account import Account
from mcp import Client
from mcp.server.mcpserver import MCPServer

from agent.identity import AgentIdentity
from agent.mesh import MeshClient
from agent.run import OPERATOR
from agent.supplier.config import SupplierConfig, load_supplier_config
from agent.supplier.desk import SupplierDesk
from agent.supplier.payments import MeshPayments
from agent.supplier.server import build_supplier_server
from agent.supplier.store import SupplierStore, database_file
from gateway.launcher import Mesh, running_mesh
from servers.common.auth import Principal, acting_as
from servers.common.bindings import WalletBinding
from servers.common.clock import utc
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer, new_agent_did
from servers.common.settings import MeshSettings
from servers.discovery.models import Registration
from servers.wallet.models import Balance, PaymentReceipt, Wallet
from tests.conftest import ManualClock
from tests.helpers import ERAS, scaled

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "agents"
FRAMES = "MZ-RM-R300-01"


class _Acting:
    """A client each of whose calls is made as `principal` (the in-memory transport carries the sender's context
    with every message, so the principal is set around each call)."""

    def __init__(self, client: Client, principal: Principal) -> None:
        self._client = client
        self._principal = principal

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        async def as_principal(*args: Any, **kwargs: Any) -> Any:
            with acting_as(self._principal):
                return await attribute(*args, **kwargs)

        return as_principal


@dataclass
class Party:
    """An agent of the mesh acting as itself: its key, its wallet, its calls through the gateway."""

    identity: AgentIdentity
    mesh: MeshClient
    wallet: str

    @property
    def principal(self) -> Principal:
        return self.identity.principal

    async def pay(self, to: str, amount: str, *, memo: str = "") -> PaymentReceipt:
        return await self.mesh.call(
            "wallet",
            "execute_payment",
            PaymentReceipt,
            from_address=self.wallet,
            to_address=to,
            amount=amount,
            memo=memo,
        )


@dataclass
class Harness:
    mesh: Mesh
    operator: MeshClient
    config: SupplierConfig
    supplier: Party
    buyer: Party
    clock: ManualClock
    data_dir: Path
    feed: ChangeFeed
    desk: SupplierDesk
    server: MCPServer[Any]
    era: str
    chain_id: int

    @asynccontextmanager
    async def client(self, principal: Principal, **options: Any) -> AsyncIterator[Client]:
        """A client of the supplier's server in this test's era whose every call is `principal`'s."""
        async with AsyncExitStack() as stack:
            with acting_as(principal):
                client = await stack.enter_async_context(Client(self.server, mode=ERAS[self.era], **options))
            yield cast(Client, _Acting(client, principal))

    async def agent(self, name: str, *, fund: str | None = None, listed: bool = True) -> Party:
        return await new_party(self.operator, self.chain_id, name, fund=fund, listed=listed)


async def new_party(operator: MeshClient, chain_id: int, name: str, *, fund: str | None, listed: bool) -> Party:
    """An agent with its own wallet; `listed`, its card in discovery lists the wallet, bound by its signature."""
    identity = AgentIdentity(
        agent_id=new_agent_did(),
        name=name,
        signer=Signer(Account.create()),
        owner=Account.create().address,
        chain_id=chain_id,
    )
    mesh = operator.as_principal(identity.principal)
    wallet = await mesh.call(
        "wallet", "create_wallet", Wallet, label=name, daily_limit="10000", per_transaction_limit="1000"
    )
    if listed:
        binding = await mesh.call(
            "wallet", "sign_binding", WalletBinding, address=wallet.address, agent_id=identity.agent_id
        )
        registration = identity.registration(
            capabilities=["supply:bike-frames"],
            description=f"{name}, an agent",
            price="1",
            region="US",
            wallet=wallet.address,
            wallet_proof=binding.signature,
            issued_at=int(time.time()),
            endpoint=f"http://127.0.0.1/agents/{name}/mcp",
        )
        await mesh.call("discovery", "register_agent", Registration, **registration)
    if fund is not None:
        await operator.call("wallet", "fund_wallet", Balance, address=wallet.address, amount=fund)
    return Party(identity, mesh, wallet.address)


@asynccontextmanager
async def supplier_desk(
    config: SupplierConfig, supplier: Party, data_dir: Path, clock: ManualClock
) -> AsyncIterator[tuple[SupplierDesk, ChangeFeed, MCPServer[Any]]]:
    """The supplier's desk and server on its file in `data_dir`: opening it again is a restart."""
    feed = ChangeFeed()
    async with SupplierStore.open(database_file(data_dir, config.name)) as store:
        payments = MeshPayments(supplier.mesh, supplier.wallet)
        desk = SupplierDesk(config, supplier.identity, store, payments, supplier.wallet, feed, clock)
        yield desk, feed, build_supplier_server(desk, feed)


@pytest.fixture
async def harness(tmp_path: Path, clock: ManualClock, era: str) -> AsyncIterator[Harness]:
    environ = dict(os.environ) | {"STATESET_HOME": str(tmp_path), "STATESET_LOG_LEVEL": "WARNING"}
    settings = MeshSettings.from_env(environ, home=tmp_path)
    async with running_mesh(settings, environ) as mesh:
        assert await mesh.gateway.wait_ready(scaled(10))
        operator = MeshClient(mesh.gateway, principal=OPERATOR)
        config = load_supplier_config(CONFIGS / "supplier-frame-works.yaml")
        supplier = await new_party(operator, settings.chain_id, "frame-works", fund=None, listed=True)
        buyer = await new_party(operator, settings.chain_id, "buyer", fund="500", listed=True)
        data_dir = tmp_path / "supplier"
        data_dir.mkdir()
        async with supplier_desk(config, supplier, data_dir, clock) as (desk, feed, server):
            yield Harness(
                mesh, operator, config, supplier, buyer, clock, data_dir, feed, desk, server, era, settings.chain_id
            )


def days_ahead(clock: Callable[[], float], days: int) -> str:
    """The date `days` after the clock's today (UTC), as YYYY-MM-DD."""
    return (utc(clock()).date() + timedelta(days=days)).isoformat()
