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
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
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
from servers.common.clock import Clock
from servers.common.keystore import server_key
from servers.common.peers import Peer
from servers.common.settings import MeshSettings
from servers.common.transports import (
    MCP_PATH,
    SSE_MESSAGE_PATH,
    SSE_PATH,
    StaticTokenVerifier,
    bound_url,
    check_exposure,
    listen,
    require_bearer,
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


@dataclass
class Mesh:
    servers: dict[str, MCPServer[Any]]
    gateway: Gateway
    aggregate: Any  # the lowlevel Server the gateway is served as
    apps: dict[str, Any]  # each server's running app (service objects, for tests and the demo)


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
    servers: dict[str, MCPServer[Any]] = {}
    started = {name: anyio.Event() for name in local}

    async def started_server(name: str) -> MCPServer[Any]:
        await started[name].wait()
        return servers[name]

    def peer(name: str) -> Peer | None:
        """The in-process server once it has started, or None for the server's own STATESET_<NAME>_URL."""
        return Peer.in_process(name, functools.partial(started_server, name)) if name in local else None

    async with AsyncExitStack() as stack:
        apps: dict[str, Any] = {}
        openers: dict[str, Callable[[], AbstractAsyncContextManager[Any]]] = {
            "wallet": lambda: wallet_app.running(mesh, environ, clock=clock),
            "governance": lambda: governance_app.running(mesh, environ, clock=clock),
            "discovery": lambda: discovery_app.running(mesh, environ, reputation=peer("reputation"), clock=clock),
            "reputation": lambda: reputation_app.running(
                mesh, environ, discovery=peer("discovery"), wallet=peer("wallet"), clock=clock
            ),
            "salesforce": lambda: salesforce_app.running(mesh, environ, clock=clock),
            "sap": lambda: sap_app.running(mesh, environ, clock=clock),
        }
        for name in local:
            apps[name] = await stack.enter_async_context(openers[name]())
            servers[name] = apps[name].server
            started[name].set()
        targets |= {name: Target(server=server) for name, server in servers.items()}
        gateway = Gateway(
            {
                name: Backend(name, targets[name], timeout_seconds=backend.timeout_seconds)
                for name, backend in config.backends.items()
            }
        )
        tasks = await stack.enter_async_context(anyio.create_task_group())
        tasks.start_soon(gateway.run)
        try:
            yield Mesh(servers, gateway, build_aggregate(gateway), apps)
        finally:
            tasks.cancel_scope.cancel()


def mesh_app(mesh: Mesh, *, host: str = "127.0.0.1", token_verifier: Any = None) -> Starlette:
    """One ASGI app for the whole mesh (see the module's table of paths)."""
    routes: list[BaseRoute] = []
    lifespans = []
    for name, server in mesh.servers.items():
        streamable = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
        sse = server.sse_app(sse_path=SSE_PATH, message_path=SSE_MESSAGE_PATH, host=host)
        lifespans.append(server.session_manager)
        routes.append(
            Mount(f"/{name}", app=_guard(Starlette(routes=[*streamable.routes, *sse.routes]), token_verifier))
        )
    aggregate = mesh.aggregate.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    lifespans.append(mesh.aggregate.session_manager)

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
            Mount("/", app=_guard(Starlette(routes=aggregate.routes), token_verifier)),
        ],
        lifespan=lifespan,
    )


def _guard(app: ASGIApp, token_verifier: Any) -> ASGIApp:
    return app if token_verifier is None else require_bearer(app, token_verifier)


async def run_up(args: Any, mesh: MeshSettings, environ: Mapping[str, str]) -> None:
    """`stateset up`: the mesh over HTTP until interrupted."""
    verifier = StaticTokenVerifier.from_env(environ)
    check_exposure(args.host, verifier)
    config = load_mesh_config(environ, args.config)
    sock = listen(args.host, args.port)  # before anything is created: a port in use is one line
    base = bound_url(sock)  # now: uvicorn closes the socket when it stops
    began = time.perf_counter()
    async with running_mesh(mesh, environ, config=config) as running:
        app = mesh_app(running, host=args.host, token_verifier=verifier)
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


async def run_gateway(args: Any, mesh: MeshSettings, environ: Mapping[str, str]) -> None:
    """`stateset gateway`: only the aggregate, over stdio or HTTP."""
    verifier = StaticTokenVerifier.from_env(environ) if args.transport == "http" else None
    config = load_mesh_config(environ, args.config)
    sock = None
    if args.transport == "http":
        check_exposure(args.host, verifier)
        sock = listen(args.host, args.port)
    async with running_mesh(mesh, environ, config=config) as running:
        aggregate = running.aggregate
        if sock is None:
            async with stdio_server() as (read, write):
                await aggregate.run(read, write, aggregate.create_initialization_options())
            return
        app = aggregate.streamable_http_app(streamable_http_path=MCP_PATH, host=args.host)
        logger.info("serving the aggregate gateway at %s", bound_url(sock, MCP_PATH))
        await run_app(_guard(app, verifier), sock)
