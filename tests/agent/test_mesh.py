"""What kind of failure a call through the mesh is, each provoked for real on a mesh in this process: an outage
(the same call may succeed later), a refusal (it would be refused again), or neither (the agent's own mistake).
The procurement workflow retries a paid order after an outage and ends it only on a refusal."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from adapters.retry import DEFAULT_BACKOFF
from adapters.sap.models import PurchaseOrder
from adapters.sap.sandbox import Fault
from agent.mesh import ActionFailedError, MeshClient, MeshUnavailableError, ToolRefusedError
from gateway.aggregate import Gateway
from gateway.backends import Backend, Target
from gateway.launcher import Mesh, running_mesh
from servers.common.settings import MeshSettings
from servers.wallet.models import Balance, Proposal, Wallet
from tests.helpers import scaled

pytestmark = pytest.mark.anyio

ORDER: dict[str, Any] = {
    "supplier": "17300001",
    "company_code": "1710",
    "purchasing_organization": "1710",
    "purchasing_group": "001",
    "currency": "USD",
    "items": [{"material": "MZ-RM-R300-01", "quantity": "250", "unit": "PC", "net_price": "0.32", "plant": "1710"}],
}


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    environ = dict(os.environ) | {"STATESET_HOME": str(tmp_path), "STATESET_LOG_LEVEL": "WARNING"}
    async with running_mesh(MeshSettings.from_env(environ, home=tmp_path), environ) as running:
        assert await running.gateway.wait_ready(scaled(10))
        yield running


async def order(mesh: Mesh, key: str, **changes: Any) -> None:
    client = MeshClient(mesh.gateway)
    await client.call("sap", "create_purchase_order", PurchaseOrder, **(ORDER | changes), idempotency_key=key)


async def test_sap_unavailable_on_every_try_is_an_outage_and_the_order_goes_through_after(mesh: Mesh) -> None:
    sap = mesh.apps["sap"].sandbox
    sap.inject(Fault(method="POST"), times=DEFAULT_BACKOFF.attempts)  # 503: no work process is available
    with pytest.raises(MeshUnavailableError, match=r"sap_create_purchase_order: .*HTTP 503"):
        await order(mesh, "po-1")
    await order(mesh, "po-1")
    assert len(sap.orders) == 1


async def test_an_answer_sap_lost_is_an_outage(mesh: Mesh) -> None:
    mesh.apps["sap"].sandbox.inject(Fault(method="POST", drop=True), times=2)  # the create, and its one retry
    with pytest.raises(MeshUnavailableError, match="may or may not have been applied"):
        await order(mesh, "po-2")


async def test_a_backend_that_does_not_answer_in_time_is_an_outage(mesh: Mesh) -> None:
    sap = mesh.gateway.backends["sap"]
    configured, sap.timeout_seconds = sap.timeout_seconds, 1e-6  # nothing answers that fast
    try:
        with pytest.raises(MeshUnavailableError, match="backend sap did not answer within"):
            await order(mesh, "po-3")
        with pytest.raises(MeshUnavailableError, match="reading sap://stock/TG11: backend sap did not answer"):
            await MeshClient(mesh.gateway).read_json("sap://stock/TG11")
    finally:
        sap.timeout_seconds = configured


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port bound and not listening: every connection to it is refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


async def test_a_backend_that_is_not_there_is_an_outage(refused_port: int) -> None:
    gateway = Gateway({"wallet": Backend("wallet", Target(url=f"http://127.0.0.1:{refused_port}/mcp"))})
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(gateway.run)
        with pytest.raises(MeshUnavailableError, match="wallet_get_balance: backend wallet is unavailable"):
            await MeshClient(gateway).call("wallet", "get_balance", Balance, address="0x" + "11" * 20)
        tasks.cancel_scope.cancel()


async def test_a_refusal_by_the_platform_or_the_server_is_a_refusal(mesh: Mesh) -> None:
    with pytest.raises(ToolRefusedError, match=r"HTTP 400\): .*17400001"):
        await order(mesh, "po-4", supplier="17400001")  # not in SAP's supplier master data
    with pytest.raises(ToolRefusedError, match="wallet_get_balance"):
        await MeshClient(mesh.gateway).call("wallet", "get_balance", Balance, address="0x" + "11" * 20)


async def test_the_agents_own_mistakes_are_neither_an_outage_nor_a_refusal(mesh: Mesh) -> None:
    client = MeshClient(mesh.gateway)
    wallet = await client.call("wallet", "create_wallet", Wallet, label="w", daily_limit="1", per_transaction_limit="1")
    with pytest.raises(ActionFailedError) as bad_arguments:  # arguments the tool's schema refuses
        await client.call("wallet", "get_balance", Balance, address="0x12")
    with pytest.raises(ActionFailedError) as unread:  # an answer in a shape the agent does not read
        await client.call("wallet", "get_balance", Proposal, address=wallet.address)
    assert type(bad_arguments.value) is ActionFailedError and type(unread.value) is ActionFailedError
