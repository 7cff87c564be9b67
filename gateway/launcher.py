"""`stateset up`: every server in one process, wired to each other, behind one port.

    /<name>/mcp      each server over streamable HTTP (both protocol eras)
    /<name>/sse      each server over the legacy HTTP+SSE transport
    /mcp             the aggregate gateway: every tool as <server>_<tool>
    /health          the process is serving
    /ready           every backend of the gateway is up (503 with the details until then)

The servers reach each other in-process: discovery follows reputation, reputation follows discovery
and holds stake through the wallet, and the wallet trusts the governance and reputation keys. Salesforce
and SAP run against their emulators unless credentials are configured.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
from mcp.server.stdio import stdio_server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from adapters.salesforce import app as salesforce_app
from adapters.sap import app as sap_app
from gateway.aggregate import Gateway, build_aggregate
from gateway.backends import Backend, Target
from gateway.config import MeshConfig, everything_in_process, load_mesh_config
from gateway.delegation import Delegation
from gateway.registry import SERVERS
from servers.common.auth import (
    LOCAL_OPERATOR,
    MAX_TTL_SECONDS,
    MESH_AUDIENCE,
    Authority,
    TrustRoot,
    service_principal,
    set_process_principal,
)
from servers.common.clock import Clock
from servers.common.home import OPERATOR_TOKEN_FILE
from servers.common.keystore import server_key
from servers.common.logging import register_secret
from servers.common.passwords import replace_secret
from servers.common.peers import Peer
from servers.common.pinning import Pin, ServerIdentity
from servers.common.scopes import ALL_SCOPES
from servers.common.settings import DEFAULT_MAX_SESSIONS_PER_PRINCIPAL, MeshSettings
from servers.common.surface import MeshServer
from servers.common.transports import (
    MCP_PATH,
    SSE_MESSAGE_PATH,
    SSE_PATH,
    UNKNOWN_WELL_KNOWN,
    check_exposure,
    listen,
    protect,
    public_url,
    run_app,
)
from servers.discovery import app as discovery_app
from servers.governance import app as governance_app
from servers.governance import settings as governance_settings
from servers.reputation import app as reputation_app
from servers.reputation import settings as reputation_settings
from servers.wallet import app as wallet_app

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8765
SIGNING_KEYSTORES = {
    "governance": governance_settings.KEYSTORE_FILE,  # the wallet trusts its approval receipts
    "reputation": reputation_settings.KEYSTORE_FILE,  # and its slash orders
}


GATEWAY = service_principal("gateway")
OPERATOR = "did:stateset:operator:admin"
OPERATOR_TOKEN_SECONDS = 90 * 86400


@dataclass
class Mesh:
    servers: dict[str, MeshServer]
    gateway: Gateway
    aggregate: Any  # the lowlevel Server the gateway is served as
    apps: dict[str, Any]  # each server's running app (service objects, for tests and the demo)
    authority: Authority  # issues the tokens the mesh's servers accept


@asynccontextmanager
async def running_mesh(
    mesh: MeshSettings,
    environ: Mapping[str, str],
    *,
    config: MeshConfig | None = None,
    clock: Clock = time.time,
) -> AsyncIterator[Mesh]:
    """Start the servers `config` runs in process (by default all of them), wired together, and the
    gateway over them and over the backends it reaches by command or URL."""
    config = config or everything_in_process()
    local = config.in_process
    targets = config.targets(environ)  # before anything starts: a missing token is a configuration error
    data_dir = mesh.data_dir()
    keys: dict[str, str] = {}

    async def key(role: str, keystore: str) -> None:
        signer = await server_key(data_dir / keystore, data_dir, environ, scrypt_n=mesh.keystore_scrypt_n, role=role)
        keys[f"STATESET_{role.upper()}_ADDRESS"] = signer.address

    async with anyio.create_task_group() as unlocking:  # scrypt decryptions, one per core
        for role, keystore in SIGNING_KEYSTORES.items():
            if role in local:
                unlocking.start_soon(key, role, keystore)
    environ = keys | dict(environ)  # what the operator set wins
    authority = Authority.load(data_dir, environ, clock)
    trust = authority.trust_root()
    acting_for_callers = {n: n for n, t in targets.items() if n in SERVERS and t.url is not None}  # backend: audience
    for name, target in targets.items():  # the mesh's servers out of process: the gateway's token, for its callers
        if name in SERVERS and target.url is not None and "authorization" not in {k.lower() for k in target.headers}:
            token = authority.issue(GATEWAY.did, GATEWAY.scopes, MAX_TTL_SECONDS, audience=name).token
            headers = {**target.headers, "Authorization": f"Bearer {token}"}
            # sent only to the server the authority certified as `name` (servers.common.pinning)
            targets[name] = replace(target, headers=headers, pin=Pin(trust, name))
        elif (served := mesh_server_launched(name, target)) and "STATESET_TOKEN" not in config.backends[name].env:
            # A mesh server over stdio acts for its host: as the gateway, with the gateway's token, which then acts
            # for each caller. Never as the local operator, which any caller would then be. On the mesh's data
            # directory unless its configuration names another, where this authority's token fails it closed.
            token = authority.issue(GATEWAY.did, GATEWAY.scopes, MAX_TTL_SECONDS, audience=served).token
            home = config.backends[name].env.get("STATESET_HOME", str(data_dir))
            targets[name] = replace(target, env={**(target.env or {}), "STATESET_HOME": home, "STATESET_TOKEN": token})
            acting_for_callers[name] = served
    servers: dict[str, MeshServer] = {}
    started = {name: anyio.Event() for name in local}

    async def started_server(name: str) -> MeshServer:
        await started[name].wait()
        return servers[name]

    def peer(name: str, caller: str) -> Peer | None:
        """The in-process server once it has started, called as `caller`'s service principal, or None for the
        server's own STATESET_<NAME>_URL."""
        if name not in local:
            return None
        return Peer.in_process(name, functools.partial(started_server, name), principal=service_principal(caller))

    async with AsyncExitStack() as stack:
        apps: dict[str, Any] = {}
        openers: dict[str, Callable[[], AbstractAsyncContextManager[Any]]] = {
            "wallet": lambda: wallet_app.running(mesh, environ, clock=clock),
            "governance": lambda: governance_app.running(mesh, environ, clock=clock),
            "discovery": lambda: discovery_app.running(
                mesh, environ, reputation=peer("reputation", "discovery"), clock=clock
            ),
            "reputation": lambda: reputation_app.running(
                mesh,
                environ,
                discovery=peer("discovery", "reputation"),
                wallet=peer("wallet", "reputation"),
                clock=clock,
            ),
            "salesforce": lambda: salesforce_app.running(mesh, environ, clock=clock),
            "sap": lambda: sap_app.running(mesh, environ, clock=clock),
        }
        for name in local:
            apps[name] = await stack.enter_async_context(openers[name]())
            server = apps[name].server
            assert isinstance(server, MeshServer)
            server.gate.trust = trust
            servers[name] = server  # checks the gateway's tokens for the callers it acts for
            started[name].set()
        targets |= {name: Target(server=server, principal=GATEWAY) for name, server in servers.items()}
        gateway = Gateway(
            {
                name: Backend(name, targets[name], timeout_seconds=backend.timeout_seconds)
                for name, backend in config.backends.items()
            },
            # the mesh's servers that trust this authority: in process, by URL, or launched on its data directory
            delegation=Delegation(authority, GATEWAY, {name: name for name in local} | acting_for_callers),
        )
        tasks = await stack.enter_async_context(anyio.create_task_group())
        tasks.start_soon(gateway.run)
        try:
            yield Mesh(servers, gateway, build_aggregate(gateway), apps, authority)
        finally:
            tasks.cancel_scope.cancel()


def mesh_server_launched(name: str, target: Target) -> str | None:
    """Which of the mesh's servers a command backend runs: its name's, or the one its command serves
    (`... serve <server>`); None for another MCP server."""
    if not target.command:
        return None
    if name in SERVERS:
        return name
    served = [arg for before, arg in itertools.pairwise(target.command) if before == "serve" and arg in SERVERS]
    return served[0] if served else None


def mesh_app(
    mesh: Mesh,
    *,
    host: str = "127.0.0.1",
    base_url: str = "",
    trust: TrustRoot | None = None,
    max_sessions: int = DEFAULT_MAX_SESSIONS_PER_PRINCIPAL,
) -> Starlette:
    """One ASGI app for the whole mesh (see the module's table of paths); with `trust`, every MCP path takes only
    tokens for its server (or the mesh), the aggregate tokens for the gateway (or the mesh), and a principal holds
    at most `max_sessions` open sessions on each."""
    routes: list[BaseRoute] = []
    lifespans = []
    # one key for this process, certified for each server it serves and the gateway: the mesh's clients check it
    identity = None if trust is None else ServerIdentity.certified(mesh.authority, [*mesh.servers, "gateway"])
    for name, server in mesh.servers.items():
        streamable = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
        sse = server.sse_app(sse_path=SSE_PATH, message_path=SSE_MESSAGE_PATH, host=host)
        lifespans.append(server.session_manager)
        app: ASGIApp = Starlette(routes=[*streamable.routes, *sse.routes])
        if trust is not None:
            url = f"{base_url}/{name}{MCP_PATH}"
            app, metadata = protect(app, trust, name, url, server, identity, max_sessions=max_sessions)
            routes += metadata
        routes.append(Mount(f"/{name}", app=app))
    aggregate = mesh.aggregate.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    lifespans.append(mesh.aggregate.session_manager)
    gateway_app: ASGIApp = Starlette(routes=aggregate.routes)
    if trust is not None:
        url = f"{base_url}{MCP_PATH}"
        gateway_app, metadata = protect(
            gateway_app, trust, "gateway", url, mesh.aggregate, identity, max_sessions=max_sessions
        )
        routes += metadata

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "servers": sorted(mesh.servers)})

    async def ready(_: Request) -> JSONResponse:
        report = mesh.gateway.health()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for manager in lifespans:
                await stack.enter_async_context(manager.run())
            yield

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/ready", ready),
            *routes,
            UNKNOWN_WELL_KNOWN,
            Mount("/", app=gateway_app),
        ],
        lifespan=lifespan,
    )


def open_to_everyone(no_auth: bool, host: str) -> TrustRoot | None:
    """`--no-auth`: every caller acts as the local operator (logged); None when tokens are required."""
    if not no_auth:
        return None
    check_exposure(host, authenticated=False)
    set_process_principal(LOCAL_OPERATOR)
    logger.warning("--no-auth: no token is asked for; every caller acts as the local operator, with every scope")
    return None


def operator_token(mesh: Mesh, data_dir: Path) -> Path:
    """The operator's token in the data directory (0600), written on the first start and whenever the one there
    has expired or been revoked, as Jupyter does."""
    path = data_dir / OPERATOR_TOKEN_FILE
    trust = mesh.authority.trust_root()
    try:
        current = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        current = ""
    if current and trust.verify(current, (MESH_AUDIENCE,)) is not None:
        register_secret(current)
        return path
    issued = mesh.authority.issue(OPERATOR, ALL_SCOPES - {"mesh:delegate"}, OPERATOR_TOKEN_SECONDS)
    replace_secret(path, issued.token + "\n")
    logger.info("wrote a new operator token (%s, valid 90 days) to %s", OPERATOR, path)
    return path


async def run_up(args: Any, mesh: MeshSettings, environ: Mapping[str, str]) -> None:
    """`stateset up`: the mesh over HTTP until interrupted."""
    open_to_everyone(args.no_auth, args.host)
    config = load_mesh_config(environ, args.config)
    sock = listen(args.host, args.port)  # before anything is created: a port in use is one line
    base = public_url(sock, environ)  # now: uvicorn closes the socket when it stops
    began = time.perf_counter()
    async with running_mesh(mesh, environ, config=config) as running:
        trust = None if args.no_auth else running.authority.trust_root()
        app = mesh_app(
            running, host=args.host, base_url=base, trust=trust, max_sessions=mesh.max_sessions_per_principal
        )
        token_file = None if trust is None else operator_token(running, mesh.data_dir())  # before anyone is served
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run_app, app, sock)
            ready = await running.gateway.wait_ready(10)
            logger.info(
                "mesh %s in %.1f s: gateway at %s/mcp; servers at %s/<name>/mcp (%s)",
                "ready" if ready else "started, not every backend is up,",
                time.perf_counter() - began,
                base,
                base,
                ", ".join(running.servers) or "none in this process",
            )
            if token_file is not None:
                logger.info(
                    "every request needs a token: send 'Authorization: Bearer $(cat %s)' as the operator, or issue "
                    "one per agent and person with: stateset token issue --home %s --subject DID --scopes ...",
                    token_file,
                    token_file.parent,
                )


async def run_gateway(args: Any, mesh: MeshSettings, environ: Mapping[str, str]) -> None:
    """`stateset gateway`: only the aggregate, over stdio or HTTP."""
    config = load_mesh_config(environ, args.config)
    sock = None
    if args.transport == "http":
        open_to_everyone(args.no_auth, args.host)
        sock = listen(args.host, args.port)
    else:  # over stdio the gateway acts for the host that launched it
        set_process_principal(LOCAL_OPERATOR)
    async with running_mesh(mesh, environ, config=config) as running:
        aggregate = running.aggregate
        if sock is None:
            async with stdio_server() as (read, write):
                await aggregate.run(read, write, aggregate.create_initialization_options())
            return
        app: ASGIApp = aggregate.streamable_http_app(streamable_http_path=MCP_PATH, host=args.host)
        if not args.no_auth:
            identity = ServerIdentity.certified(running.authority, ["gateway"])
            resource_url = public_url(sock, environ) + MCP_PATH
            trust = running.authority.trust_root()
            inner, metadata = protect(
                app, trust, "gateway", resource_url, aggregate, identity, max_sessions=mesh.max_sessions_per_principal
            )
            app = Starlette(
                routes=[*metadata, UNKNOWN_WELL_KNOWN, Mount("/", app=inner)],
                lifespan=lambda _: aggregate.session_manager.run(),
            )
        logger.info("serving the aggregate gateway at %s", public_url(sock, environ) + MCP_PATH)
        await run_app(app, sock)
