"""Wallet, discovery and reputation as three `stateset serve` processes talking over streamable HTTP:
registrations reach reputation, standings reach discovery, and a slash ordered while the wallet is down
and the reputation server is then killed is carried out once, after both come back."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from servers.common.gate import FORBIDDEN
from tests.agents import MeshAgent
from tests.e2e.conftest import STATESET, STEP, Launch, child_env, free_port, issue_token, launched, served
from tests.helpers import ERAS, call, eventually, refused

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def reputation_address(home: Path) -> str:
    result = subprocess.run(
        [STATESET, "address", "reputation", "--home", str(home)],
        env=child_env(home),
        capture_output=True,
        text=True,
        timeout=STEP,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.parametrize("era", list(ERAS))
async def test_three_servers_over_http(tmp_path: Path, era: str) -> None:
    homes = {name: tmp_path / name for name in ("wallet", "discovery", "reputation")}
    ports = {name: free_port() for name in homes}
    url = {name: f"http://127.0.0.1:{port}/mcp" for name, port in ports.items()}
    signer = reputation_address(homes["reputation"])
    envs = {
        "wallet": child_env(homes["wallet"], STATESET_REPUTATION_ADDRESS=signer),
        "discovery": child_env(homes["discovery"], STATESET_REPUTATION_URL=url["reputation"]),
        "reputation": child_env(
            homes["reputation"],
            STATESET_DISCOVERY_URL=url["discovery"],
            STATESET_WALLET_URL=url["wallet"],
            STATESET_REPUTATION_SLASH_RETRY_SECONDS="1",
        ),
    }

    def serve(name: str) -> Launch:
        return served(homes[name], "--transport", "http", env=envs[name], server=name, port=ports[name])

    def client(name: str) -> Client:
        return Client(url[name], mode=ERAS[era], read_timeout_seconds=STEP)  # type: ignore[arg-type]

    worker, rater = MeshAgent("worker", ["audit"]), MeshAgent("rater", ["audit"])
    with launched(serve("discovery"), serve("wallet"), serve("reputation")) as (_, wallet_process, reputation_process):
        async with client("wallet") as wallet:
            created = await call(
                wallet,
                "create_wallet",
                label="worker",
                daily_limit="500",
                per_transaction_limit="500",
                owner=worker.agent_id,
            )
            await call(wallet, "fund_wallet", address=created["address"], amount="100")
            binding = await call(wallet, "sign_binding", address=created["address"], agent_id=worker.agent_id)
        worker.wallet, worker.wallet_proof = created["address"], binding["signature"]
        async with client("discovery") as discovery:
            for agent in (worker, rater):
                await call(discovery, "register_agent", **agent.registration())
        async with client("reputation") as reputation:
            rated = await call(reputation, "record_interaction", **rater.rating(worker, "job-1", {"reliability": 100}))
            assert rated["reputation"]["score"] > 50
            assert (await call(reputation, "stake", agent_id=worker.agent_id, amount="50"))["staked"] == "50"
            first = await call(
                reputation,
                "slash_reputation",
                agent_id=worker.agent_id,
                violation_type="MissedDeadline",
                severity="Major",
                incident_id="late-1",
            )
            assert (first["stake"]["status"], first["stake"]["taken"]) == ("settled", "2.5")

        async def discovery_sees(lcb: float) -> bool:
            async with client("discovery") as discovery:
                record = await call(discovery, "get_agent", agent_id=worker.agent_id)
            return record["reputation"] is not None and record["reputation"]["lcb"] == lcb

        await eventually(lambda: discovery_sees(first["reputation"]["lcb"]))

        wallet_process.stop()
        async with client("reputation") as reputation:
            pending = await call(
                reputation,
                "slash_reputation",
                agent_id=worker.agent_id,
                violation_type="FinancialMisconduct",
                severity="Critical",
                incident_id="fraud-1",
            )
            assert pending["stake"]["status"] == "pending" and "did not answer" in pending["stake"]["detail"]
            message = await refused(reputation, "unstake", agent_id=worker.agent_id, amount="1")
            assert "stake is held until the slash for incident 'fraud-1' is settled" in message
        reputation_process.kill()  # a crash with the order issued and not yet carried out

        with launched(serve("wallet"), serve("reputation")):  # both come back; discovery stayed up
            async with client("reputation") as reputation:

                async def slashed() -> bool:
                    stake = await call(reputation, "get_stake", agent_id=worker.agent_id)
                    return bool(stake["staked"] == "33.25")  # 47.5 less 30 %

                await eventually(slashed)
                replay = await call(
                    reputation,
                    "slash_reputation",
                    agent_id=worker.agent_id,
                    violation_type="FinancialMisconduct",
                    severity="Critical",
                    incident_id="fraud-1",
                )
                assert (
                    replay["replayed"]
                    and replay["stake"]["status"] == "settled"
                    and replay["stake"]["taken"] == "14.25"
                )
                assert (await call(reputation, "get_reputation", agent_id=worker.agent_id))["incidents"] == 2
            async with client("wallet") as wallet:
                balance = await call(wallet, "get_balance", address=worker.wallet)
                assert (balance["staked"], balance["available"], balance["total"]) == ("33.25", "50", "83.25")


async def test_with_tokens_discovery_follows_with_its_own_and_only_admins_slash(tmp_path: Path) -> None:
    """Two processes on one data directory: each mints its own service token for the other from the mesh
    authority there; callers bring tokens issued by `stateset token issue`."""
    home = tmp_path / "mesh"
    ports = {"discovery": free_port(), "reputation": free_port()}
    url = {name: f"http://127.0.0.1:{port}/mcp" for name, port in ports.items()}
    discovery_env = child_env(home, STATESET_REPUTATION_URL=url["reputation"])
    reputation_env = child_env(home, STATESET_DISCOVERY_URL=url["discovery"])
    worker, rater = MeshAgent("worker", ["audit"]), MeshAgent("rater", ["audit"])
    home.mkdir(mode=0o700)
    admin, _ = issue_token(home, "did:stateset:operator:ops", "reputation:admin")
    agent_token = {agent.agent_id: issue_token(home, agent.agent_id, "agent")[0] for agent in (worker, rater)}

    @asynccontextmanager
    async def client(name: str, token: str | None = None) -> AsyncIterator[Client]:
        token = token or admin
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
            Client(streamable_http_client(url[name], http_client=http), read_timeout_seconds=STEP) as connected,
        ):
            yield connected

    http = ("--transport", "http")
    with launched(
        served(home, *http, env=reputation_env, server="reputation", port=ports["reputation"], auth=True),
        served(home, *http, env=discovery_env, server="discovery", port=ports["discovery"], auth=True),
    ):
        for agent in (worker, rater):
            async with client("discovery", agent_token[agent.agent_id]) as discovery:
                await call(discovery, "register_agent", **agent.registration())
        async with client("reputation", agent_token[rater.agent_id]) as reputation:
            rated = await call(reputation, "record_interaction", **rater.rating(worker, "job", {"reliability": 100}))
            slash = {"agent_id": worker.agent_id, "violation_type": "MissedDeadline", "severity": "Minor"}
            with pytest.raises(MCPError) as caught:
                await reputation.call_tool("slash_reputation", slash | {"incident_id": "i-1"})
            assert caught.value.code in (FORBIDDEN, -32603)  # 403 at HTTP in the 2026 era, else in band
        async with client("reputation", admin) as reputation:
            report = await call(
                reputation,
                "slash_reputation",
                agent_id=worker.agent_id,
                violation_type="MissedDeadline",
                severity="Minor",
                incident_id="i-1",
            )
            assert report["stake"]["status"] == "none"  # the card names no wallet

        async def discovery_sees(lcb: float) -> bool:
            async with client("discovery") as discovery:
                record = await call(discovery, "get_agent", agent_id=worker.agent_id)
            return record["reputation"] is not None and record["reputation"]["lcb"] == lcb

        assert rated["reputation"]["lcb"] != report["reputation"]["lcb"]
        await eventually(lambda: discovery_sees(report["reputation"]["lcb"]))


async def test_a_follower_does_not_hold_up_shutdown_and_catches_up_after_a_restart(tmp_path: Path) -> None:
    ports = {"discovery": free_port(), "reputation": free_port()}
    url = {name: f"http://127.0.0.1:{port}/mcp" for name, port in ports.items()}
    # DEBUG: uvicorn's "Waiting for connections to close" shows that discovery's stream was open at the stop
    reputation_env = child_env(
        tmp_path / "reputation", STATESET_DISCOVERY_URL=url["discovery"], STATESET_LOG_LEVEL="DEBUG"
    )
    discovery_env = child_env(tmp_path / "discovery", STATESET_REPUTATION_URL=url["reputation"])
    worker, first, second = (
        MeshAgent("worker", ["audit"]),
        MeshAgent("first", ["audit"]),
        MeshAgent("second", ["audit"]),
    )
    http = ("--transport", "http")

    def reputation_server() -> Launch:
        return served(tmp_path / "reputation", *http, env=reputation_env, server="reputation", port=ports["reputation"])

    async def discovery_sees(lcb: float) -> bool:
        async with Client(url["discovery"]) as discovery:
            record = await call(discovery, "get_agent", agent_id=worker.agent_id)
        return record["reputation"] is not None and record["reputation"]["lcb"] == lcb

    discovery_server = served(
        tmp_path / "discovery", *http, env=discovery_env, server="discovery", port=ports["discovery"]
    )
    with launched(discovery_server, reputation_server()) as (_, reputation_process):
        async with Client(url["discovery"]) as discovery:
            for agent in (worker, first, second):
                await call(discovery, "register_agent", **agent.registration())
        async with Client(url["reputation"]) as reputation:
            rated = await call(reputation, "record_interaction", **first.rating(worker, "a", {"reliability": 90}))
        await eventually(lambda: discovery_sees(rated["reputation"]["lcb"]))
        reputation_process.terminate()  # discovery's listen stream is still open
        reputation_process.process.wait(STEP)  # raises TimeoutExpired if the open stream holds up the shutdown
        assert "Waiting for connections to close" in reputation_process.log.read_text()
        with launched(reputation_server()):
            async with Client(url["reputation"]) as reputation:
                again = await call(reputation, "record_interaction", **second.rating(worker, "b", {"reliability": 90}))
            await eventually(lambda: discovery_sees(again["reputation"]["lcb"]))
