"""`stateset agent run`: an agent from its deployment file, against a running mesh or one started here."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from agent.bootstrap import multi_sig_policy
from agent.cognition import Planner
from agent.config import AgentConfig
from agent.identity import AgentIdentity
from agent.journal import Event
from agent.loop import AgentLoop
from agent.state import AgentStore
from agent.workflows import load_agent_config, workflow_for
from agent.workflows.base import Workflow
from gateway.aggregate import Gateway
from gateway.backends import Backend, Target
from gateway.registry import SERVERS
from gateway.sync import StateSync
from servers.common.identity import new_agent_did
from servers.common.keystore import server_key
from servers.common.logging import register_secret
from servers.common.settings import ConfigError, MeshSettings, env_int

MESH_WAIT_VARIABLE = "STATESET_MESH_WAIT"
# How long `--url` waits for every server of the mesh there to answer: a `stateset up` started a moment before
# is ready in 1-3 s on a quiet machine and has taken over 30 s on a loaded one (set the variable for such a one).
MESH_WAIT_SECONDS = 15


@asynccontextmanager
async def running_agent(
    gateway: Gateway,
    config: AgentConfig,
    mesh: MeshSettings,
    environ: Mapping[str, str],
    *,
    workflow: type[Workflow[Any]] | None = None,
    planner: Planner | None = None,
    cosigners: Sequence[str] = (),
    owner: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[AgentLoop]:
    """The agent named in `config`, loaded from the data directory or created there, started. Its kind's
    workflow is the one its `type` names, unless `workflow` is given."""
    data_dir = mesh.data_dir()
    async with AgentStore.open(data_dir / "agents.db") as store:
        existing = await store.find(config.name)
        if existing is None:
            multi_sig_policy(config, cosigners)  # refused before its key is made
        key_file = data_dir / f"agent-{config.name}.json"
        signer = await server_key(key_file, data_dir, environ, scrypt_n=mesh.keystore_scrypt_n, role=config.name)
        identity = AgentIdentity(
            agent_id=existing.id if existing else new_agent_did(),
            name=config.name,
            signer=signer,
            owner=existing.owner if existing else owner or signer.address,
            chain_id=mesh.chain_id,
        )
        async with StateSync.open(gateway, data_dir / f"replica-{config.name}.db", clock=clock) as sync:
            loop = AgentLoop(
                gateway,
                store,
                config,
                identity,
                workflow or workflow_for(config),
                planner=planner,
                sync=sync,
                cosigners=cosigners,
                on_event=on_event,
                clock=clock,
            )
            await loop.start()
            yield loop


@asynccontextmanager
async def remote_gateway(url: str, environ: Mapping[str, str]) -> AsyncIterator[Gateway]:
    """A gateway over the servers of a `stateset up` at `url` (each at /<name>/mcp), once every one answers.

    Raises:
        ConfigError: some did not answer within STATESET_MESH_WAIT seconds (naming the URL and which), or
            STATESET_MESH_WAIT is not a whole number of seconds.
    """
    token = environ.get("STATESET_MESH_TOKEN") or None
    headers = {}
    if token is not None:
        register_secret(token)
        headers["Authorization"] = f"Bearer {token}"
    wait = env_int(environ, MESH_WAIT_VARIABLE, MESH_WAIT_SECONDS, minimum=1)
    base = url.rstrip("/")
    gateway = Gateway({name: Backend(name, Target(url=f"{base}/{name}/mcp", headers=headers)) for name in SERVERS})
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(gateway.run)
        ready = await gateway.wait_ready(wait)
        if ready:
            yield gateway
        tasks.cancel_scope.cancel()
    if not ready:  # raised here, outside the task group, so the command prints it as one line
        down = {name: backend for name, backend in gateway.backends.items() if backend.state != "up"}
        why = sorted({backend.error for backend in down.values() if backend.error})
        raise ConfigError(
            f"the mesh at {url} is not ready within {wait} s: {', '.join(down)} not reachable"
            + (f" ({'; '.join(why)})" if why else "")
            + f"; is `stateset up` running there? (to wait longer, set {MESH_WAIT_VARIABLE}=SECONDS)"
        )


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
    """`stateset agent run`: the agent's cycles against the mesh at --url, or against one started here."""
    config = load_agent_config(Path(args.config))
    await refuse_early(config, mesh, args.cosigner)
    show = Timeline()
    async with (
        mesh_gateway(args.url, mesh, environ) as gateway,
        running_agent(gateway, config, mesh, environ, cosigners=args.cosigner, on_event=show) as loop,
    ):
        needs = await loop.needs()
        if needs:
            show.show("needs", f"what the mesh lacks for {config.name}'s goals", "\n".join(needs))
        for cycle in range(args.cycles):
            if cycle:
                await anyio.sleep(args.interval)
            await loop.execute_cycle()
        state = loop.state
        print(
            f"\n{state.name}: {state.metrics.cycles} cycles, {state.metrics.actions} actions "
            f"({state.metrics.actions_failed} failed), {len(state.open_tasks())} open task(s); "
            f"state saved in {mesh.data_dir() / 'agents.db'}"
        )
        if needs:
            print(what_to_do(args, mesh.home, in_process=not args.url))
    return 0


async def refuse_early(config: AgentConfig, mesh: MeshSettings, cosigners: Sequence[str]) -> None:
    """Refuse a new agent whose wallet would lack its co-signers before any part of the mesh starts.

    Raises:
        ConfigError: naming the file, the key and what to pass.
    """
    agents = mesh.home / "agents.db"
    if agents.exists():
        async with AgentStore.open(agents) as store:
            if await store.find(config.name) is not None:
                return
    multi_sig_policy(config, cosigners)


def what_to_do(args: Any, home: Path, *, in_process: bool) -> str:
    """What a user does about a mesh that lacks what the agent's goals need (the `needs` lines say what)."""
    if in_process:
        signers = "".join(f" --cosigner {c}" for c in args.cosigner)
        advice = (
            "The mesh started in this process lacks what the agent's goals need (see `needs` above), and nothing "
            "else can reach it while this command runs, so the agent can only wait. `stateset demo` shows the "
            "procurement agent on a mesh staged with everything it needs (stock in SAP, supplier agents with "
            "reputations in discovery, the opportunity in Salesforce, two officers who approve and co-sign). To "
            f"run this agent on a mesh others can reach: start `stateset up --home {home}` (its wallet is there), "
            "provide what `needs` lists, then "
            f"`stateset agent run {args.config} --home {home} --url http://127.0.0.1:8765{signers}`."
        )
    else:
        advice = (
            f"The mesh at {args.url} lacks what the agent's goals need (see `needs` above); the agent takes it up "
            "in the first cycle after it appears there."
        )
    return "\n" + textwrap.fill(advice, width=110, break_on_hyphens=False, break_long_words=False)


async def serve_agent(args: Any, mesh: MeshSettings, environ: Mapping[str, str]) -> int:
    """`stateset agent serve`: the agent as an MCP server over stdio, for the host that launches it."""
    from agent.server import build_agent_server

    config = load_agent_config(Path(args.config))
    await refuse_early(config, mesh, args.cosigner)
    async with (
        mesh_gateway(args.url, mesh, environ) as gateway,
        running_agent(gateway, config, mesh, environ, cosigners=args.cosigner) as loop,
    ):
        await build_agent_server(loop).run_stdio_async()
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
