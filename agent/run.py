"""`stateset agent run`: an agent from its deployment file, against a running mesh or one started here.

The agent acts as its own DID with AGENT_SCOPES. In this process, its calls carry its principal through the
gateway (gateway.delegation). Over a URL, its gateway presents a token: STATESET_TOKEN (whose subject becomes a new
agent's DID), or else one this command issues for the agent from the authority of the data directory it shares
with that `stateset up` (with an operator's token beside it, to fund and profile a new agent).
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import jwt

from agent.bootstrap import multi_sig_policy
from agent.cognition import Planner
from agent.config import AgentConfig
from agent.identity import AgentIdentity
from agent.journal import Event
from agent.loop import AgentLoop
from agent.mesh import MeshClient
from agent.state import AgentStore
from agent.workflows import load_agent_config, workflow_for
from agent.workflows.base import Workflow
from gateway.aggregate import Gateway
from gateway.backends import Backend, Target
from gateway.registry import SERVERS
from gateway.sync import StateSync
from servers.common.auth import LOCAL_OPERATOR, Authority, Principal, TrustRoot, acting_as, set_process_principal
from servers.common.errors import InvalidInputError
from servers.common.home import AUTHORITY_FILE
from servers.common.identity import new_agent_did, parse_agent_did
from servers.common.keystore import server_key
from servers.common.logging import register_secret
from servers.common.pinning import Pin, pinning_trust
from servers.common.scopes import AGENT_SCOPES, ALL_SCOPES
from servers.common.settings import ConfigError, MeshSettings, env_int

MESH_WAIT_VARIABLE = "STATESET_MESH_WAIT"
# How long `--url` waits for every server of the mesh there to answer: a `stateset up` started a moment before
# is ready in 1-3 s on a quiet machine and has taken over 30 s on a loaded one (set the variable for such a one).
MESH_WAIT_SECONDS = 15
TOKEN_VARIABLE = "STATESET_TOKEN"
AGENT_TOKEN_SECONDS = 86400  # a run's token; the next run issues another
OPERATOR = Principal("did:stateset:operator:local", ALL_SCOPES - {"mesh:delegate"})
"""Whoever runs the command on the machine that holds the data directory: funds and profiles new agents."""


@dataclass
class Credentials:
    """Whom an agent's calls over a URL are made as: its DID, its token, and an operator's token if the command
    could issue one."""

    agent_id: str
    token: str = field(repr=False)
    operator_token: str | None = field(default=None, repr=False)


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
    agent_id: str | None = None,
    operator: MeshClient | None = None,
) -> AsyncIterator[AgentLoop]:
    """The agent named in `config`, loaded from the data directory or created there (as `agent_id` if given),
    started, acting as itself; `operator` funds and profiles a new one. Its kind's workflow is the one its `type`
    names, unless `workflow` is given."""
    data_dir = mesh.data_dir()
    async with AgentStore.open(data_dir / "agents.db") as store:
        existing = await store.find(config.name)
        if existing is None:
            multi_sig_policy(config, cosigners)  # refused before its key is made
        key_file = data_dir / f"agent-{config.name}.json"
        signer = await server_key(key_file, data_dir, environ, scrypt_n=mesh.keystore_scrypt_n, role=config.name)
        identity = AgentIdentity(
            agent_id=existing.id if existing else agent_id or new_agent_did(),
            name=config.name,
            signer=signer,
            owner=existing.owner if existing else owner or signer.address,
            chain_id=mesh.chain_id,
        )
        async with AsyncExitStack() as stack:
            with acting_as(identity.principal):  # the replica's own reads (catching up) are the agent's
                sync = await stack.enter_async_context(
                    StateSync.open(gateway, data_dir / f"replica-{config.name}.db", clock=clock)
                )
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
                principal=identity.principal,
                operator=operator,
            )
            await loop.start()
            yield loop


@asynccontextmanager
async def remote_gateway(
    url: str,
    environ: Mapping[str, str],
    token: str | None,
    trust: TrustRoot | None,
    servers: Sequence[str] = tuple(SERVERS),
) -> AsyncIterator[Gateway]:
    """A gateway over `servers` of a `stateset up` at `url` (each at /<name>/mcp), presenting `token` to each only
    once it proved it is the mesh's server of that name (certified by the authority of `trust`), once every one
    answers.

    Raises:
        ConfigError: some did not answer within STATESET_MESH_WAIT seconds (naming the URL and which), or
            STATESET_MESH_WAIT is not a whole number of seconds.
    """
    headers = {}
    if token is not None:
        register_secret(token)
        headers["Authorization"] = f"Bearer {token}"
    wait = env_int(environ, MESH_WAIT_VARIABLE, MESH_WAIT_SECONDS, minimum=1)
    base = url.rstrip("/")
    if token is not None and trust is None:
        raise ConfigError("a token is sent only to a server that proves it is the mesh's: no authority to check with")
    gateway = Gateway(
        {
            name: Backend(
                name,
                Target(
                    url=f"{base}/{name}/mcp",
                    headers=headers,
                    pin=None if token is None or trust is None else Pin(trust, name),
                ),
            )
            for name in servers
        }
    )
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(gateway.run)
        ready = await ready_unless_refused(gateway, wait)
        if ready:
            yield gateway
        tasks.cancel_scope.cancel()
    refusals = sorted({backend.refusal for backend in gateway.backends.values() if backend.refusal})
    if refusals:  # said once: every server refuses alike
        raise ConfigError(f"the mesh at {url} refused the agent: {refusals[0]}")
    if not ready:  # raised here, outside the task group, so the command prints it as one line
        down = {name: backend for name, backend in gateway.backends.items() if backend.state != "up"}
        why = sorted({backend.error for backend in down.values() if backend.error})
        raise ConfigError(
            f"the mesh at {url} is not ready within {wait} s: {', '.join(down)} not reachable"
            + (f" ({'; '.join(why)})" if why else "")
            + f"; is `stateset up` running there? (to wait longer, set {MESH_WAIT_VARIABLE}=SECONDS)"
        )


async def ready_unless_refused(gateway: Gateway, seconds: float) -> bool:
    """True once every backend is up; False when `seconds` pass first, or at once when one is refused in a way
    waiting does not cure (the token refused, a server that did not prove it is the mesh's)."""
    ready = False
    async with anyio.create_task_group() as waiting:

        async def give_up_when_refused(backend: Backend) -> None:
            await backend.wait_refused()
            waiting.cancel_scope.cancel()

        for backend in gateway.backends.values():
            waiting.start_soon(give_up_when_refused, backend)
        ready = await gateway.wait_ready(seconds)
        waiting.cancel_scope.cancel()
    return ready


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
    async with agent_loop(args.url, config, mesh, environ, cosigners=args.cosigner, on_event=show) as loop:
        needs = await loop.needs()
        if needs:
            show.show("needs", f"what the mesh lacks for {config.name}'s goals", "\n".join(needs))
        for cycle in range(args.cycles):
            if cycle:
                await anyio.sleep(args.interval)
            await loop.execute_cycle()
        state = loop.state
        print(
            f"\n{state.name}: {state.metrics.cycles} cycle{'' if state.metrics.cycles == 1 else 's'}, "
            f"{state.metrics.actions} actions "
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
    async with agent_loop(args.url, config, mesh, environ, cosigners=args.cosigner) as loop:
        set_process_principal(LOCAL_OPERATOR)  # a stdio server acts for the host that launched it
        await build_agent_server(loop).run_stdio_async()
    return 0


@asynccontextmanager
async def agent_loop(
    url: str | None,
    config: AgentConfig,
    mesh: MeshSettings,
    environ: Mapping[str, str],
    *,
    cosigners: Sequence[str],
    on_event: Callable[[Event], None] | None = None,
) -> AsyncIterator[AgentLoop]:
    """The agent against the mesh at `url` with its token, or against the whole mesh started in this process,
    where the local operator funds and profiles it."""
    if not url:
        from gateway.launcher import running_mesh

        async with running_mesh(mesh, environ) as running:
            local = MeshClient(running.gateway, principal=OPERATOR)
            async with running_agent(
                running.gateway, config, mesh, environ, cosigners=cosigners, on_event=on_event, operator=local
            ) as loop:
                yield loop
        return
    credentials = await agent_credentials(config, mesh, environ)
    trust = pinning_trust(mesh.data_dir(), environ, needed_for=f"the agent, calling the mesh at {url},")
    async with AsyncExitStack() as stack:
        gateway = await stack.enter_async_context(remote_gateway(url, environ, credentials.token, trust))
        operator: MeshClient | None = None
        if credentials.operator_token is not None:
            operator_gateway = await stack.enter_async_context(
                remote_gateway(url, environ, credentials.operator_token, trust, servers=("wallet", "governance"))
            )
            operator = MeshClient(operator_gateway)
        loop = await stack.enter_async_context(
            running_agent(
                gateway,
                config,
                mesh,
                environ,
                cosigners=cosigners,
                on_event=on_event,
                agent_id=credentials.agent_id,
                operator=operator,
            )
        )
        yield loop


async def agent_credentials(config: AgentConfig, mesh: MeshSettings, environ: Mapping[str, str]) -> Credentials:
    """The agent's DID and token for a mesh at a URL: STATESET_TOKEN's, or issued here from the authority of the
    data directory this agent shares with the mesh.

    Raises:
        ConfigError: the token is not an agent's, is another agent's than the one saved here, or there is neither a
            token nor an authority to issue one (saying what to do).
    """
    data_dir = mesh.data_dir()
    async with AgentStore.open(data_dir / "agents.db") as store:
        existing = await store.find(config.name)
    token = environ.get(TOKEN_VARIABLE) or None
    if token is not None:
        register_secret(token)
        agent_id = _token_subject(token)
        if existing is not None and existing.id != agent_id:
            raise ConfigError(
                f"{TOKEN_VARIABLE} is a token for {agent_id}, but {config.name} in {data_dir} is {existing.id}: issue "
                f"one for {existing.id} (`stateset token issue --subject {existing.id} --scopes agent` on the mesh's "
                "host)"
            )
        return Credentials(agent_id, token)
    if not (data_dir / AUTHORITY_FILE).exists():
        raise ConfigError(
            f"no token for the agent: set {TOKEN_VARIABLE} to a token the mesh's operator issues for it (`stateset "
            "token issue --subject did:stateset:agent:<uuid> --scopes agent` where `stateset up` runs; a new agent "
            "takes the token's DID), or run the agent with the --home of that `stateset up`"
        )
    authority = Authority.load(data_dir, environ)
    agent_id = existing.id if existing else new_agent_did()
    issued = authority.issue(agent_id, AGENT_SCOPES, AGENT_TOKEN_SECONDS)
    operator = authority.issue(OPERATOR.did, OPERATOR.scopes, AGENT_TOKEN_SECONDS)
    return Credentials(agent_id, issued.token, operator.token)


def _token_subject(token: str) -> str:
    """The agent DID a token is for (read, not verified: the mesh verifies it on every call)."""
    try:
        subject = jwt.decode(token, options={"verify_signature": False}).get("sub")
        return parse_agent_did(str(subject), field="subject")
    except (jwt.PyJWTError, InvalidInputError) as exc:
        raise ConfigError(
            f"{TOKEN_VARIABLE} is not a mesh token for an agent ({exc}): issue one with `stateset token issue "
            "did:stateset:agent:<uuid> --scopes agent`"
        ) from None
