"""`stateset agent run`: an agent from its deployment file, against a running mesh or one started here."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from agent.cognition import CognitiveEngine
from agent.config import AgentConfig, load_agent_config
from agent.identity import AgentIdentity
from agent.runtime import AgentRuntime, Event
from agent.state import AgentStore
from gateway.aggregate import Gateway
from gateway.backends import Backend, Target
from gateway.registry import SERVERS
from gateway.sync import StateSync
from servers.common.identity import new_agent_did
from servers.common.keystore import server_key
from servers.common.logging import register_secret
from servers.common.settings import MeshSettings


@asynccontextmanager
async def agent_runtime(
    gateway: Gateway,
    config: AgentConfig,
    mesh: MeshSettings,
    environ: Mapping[str, str],
    *,
    engine: CognitiveEngine | None = None,
    cosigners: Sequence[str] = (),
    owner: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[AgentRuntime]:
    """The agent named in `config`, loaded from the data directory or created there, started."""
    data_dir = mesh.data_dir()
    async with AgentStore.open(data_dir / "agents.db") as store:
        key_file = data_dir / f"agent-{config.name}.json"
        signer = await server_key(key_file, data_dir, environ, scrypt_n=mesh.keystore_scrypt_n, role=config.name)
        existing = await store.find(config.name)
        identity = AgentIdentity(
            agent_id=existing.id if existing else new_agent_did(),
            name=config.name,
            signer=signer,
            owner=existing.owner if existing else owner or signer.address,
            chain_id=mesh.chain_id,
        )
        async with StateSync.open(gateway, data_dir / f"replica-{config.name}.db", clock=clock) as sync:
            runtime = AgentRuntime(
                gateway,
                store,
                config,
                identity,
                engine=engine,
                sync=sync,
                cosigners=list(cosigners),
                on_event=on_event,
                clock=clock,
            )
            await runtime.start()
            yield runtime


@asynccontextmanager
async def remote_gateway(url: str, environ: Mapping[str, str]) -> AsyncIterator[Gateway]:
    """A gateway over the servers of a `stateset up` at `url` (each at /<name>/mcp)."""
    token = environ.get("STATESET_MESH_TOKEN") or None
    headers = {}
    if token is not None:
        register_secret(token)
        headers["Authorization"] = f"Bearer {token}"
    base = url.rstrip("/")
    gateway = Gateway({name: Backend(name, Target(url=f"{base}/{name}/mcp", headers=headers)) for name in SERVERS})
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(gateway.run)
        if not await gateway.wait_ready(15):
            down = [n for n, b in gateway.backends.items() if b.state != "up"]
            raise SystemExit(f"stateset agent: the mesh at {url} is not ready: {', '.join(down)} not reachable")
        yield gateway
        tasks.cancel_scope.cancel()


class Timeline:
    """Prints an agent's events, and a story's other lines, with the seconds since it began."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def __call__(self, event: Event) -> None:
        self.show(event.phase, event.title, event.detail)

    def show(self, phase: str, title: str, detail: str = "") -> None:
        print(f"[{time.perf_counter() - self._start:5.2f}s] {phase:<9} {title}")
        for line in detail.splitlines():
            print(f"{'':18}{line}")
        sys.stdout.flush()

    def section(self, title: str) -> None:
        print(f"\n== {title}")


async def run_agent(args: Any, mesh: MeshSettings, environ: Mapping[str, str]) -> int:
    config = load_agent_config(Path(args.config))
    show = Timeline()

    async def cycles(gateway: Gateway) -> None:
        async with agent_runtime(gateway, config, mesh, environ, cosigners=args.cosigner, on_event=show) as runtime:
            for cycle in range(args.cycles):
                if cycle:
                    await anyio.sleep(args.interval)
                await runtime.execute_cycle()
            state = runtime.state
            assert state is not None
            print(
                f"\n{state.name}: {state.metrics.cycles} cycles, {state.metrics.actions} actions "
                f"({state.metrics.actions_failed} failed), {len(state.open_tasks())} open task(s); "
                f"state saved in {mesh.data_dir() / 'agents.db'}"
            )

    async with mesh_gateway(args.url, mesh, environ) as gateway:
        await cycles(gateway)
    return 0


async def serve_agent(args: Any, mesh: MeshSettings, environ: Mapping[str, str]) -> int:
    """`stateset agent serve`: the agent as an MCP server over stdio, for the host that launches it."""
    from agent.server import build_agent_server

    config = load_agent_config(Path(args.config))
    async with (
        mesh_gateway(args.url, mesh, environ) as gateway,
        agent_runtime(gateway, config, mesh, environ, cosigners=args.cosigner) as runtime,
    ):
        await build_agent_server(runtime).run_stdio_async()
    return 0


@asynccontextmanager
async def mesh_gateway(url: str | None, mesh: MeshSettings, environ: Mapping[str, str]) -> AsyncIterator[Gateway]:
    """The mesh at `url`, or the whole mesh started in this process."""
    if url:
        async with remote_gateway(url, environ) as gateway:
            yield gateway
        return
    from gateway.launcher import running_mesh

    async with running_mesh(mesh, environ) as running:
        yield running.gateway
