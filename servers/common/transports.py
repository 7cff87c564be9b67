"""Serve any of our MCP servers over stdio, streamable HTTP, or legacy HTTP+SSE.

One server object answers both protocol eras on every transport: the 2025-11-25 handshake and the
2026-07-28 stateless requests arrive over stdio, streamable HTTP and the legacy HTTP+SSE transport alike.

HTTP listens on 127.0.0.1 unless told otherwise (the SDK then also turns on DNS-rebinding protection).
Every MCP endpoint requires `Authorization: Bearer <mesh token>` (servers.common.auth) unless `--no-auth` says
otherwise; `/health` stays open so orchestrators can probe it. Binding a non-loopback address without tokens is
refused.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Literal

import anyio
import uvicorn
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.routes import create_protected_resource_routes
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import MCPServer
from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_NAME_HEADER
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from servers.common.auth import (
    LOCAL_OPERATOR,
    MAX_TTL_SECONDS,
    MESH_AUDIENCE,
    Authority,
    Principal,
    TrustRoot,
    service_principal,
    set_process_principal,
)
from servers.common.gate import ToolScopes
from servers.common.logging import register_secret
from servers.common.pinning import ServerIdentity
from servers.common.scopes import SCOPES
from servers.common.sessions import SessionCap
from servers.common.settings import DEFAULT_MAX_SESSIONS_PER_PRINCIPAL, ConfigError, MeshSettings
from servers.common.surface import MeshServer

logger = logging.getLogger(__name__)

TransportName = Literal["stdio", "http", "sse"]
TRANSPORTS: tuple[TransportName, ...] = ("stdio", "http", "sse")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MCP_PATH = "/mcp"
SSE_PATH = "/sse"
SSE_MESSAGE_PATH = "/messages/"


def http_app(
    server: MCPServer[Any],
    transport: Literal["http", "sse"],
    *,
    host: str = "127.0.0.1",
    base_url: str | None = None,
    trust: TrustRoot | None = None,
    identity: ServerIdentity | None = None,
    max_sessions: int = DEFAULT_MAX_SESSIONS_PER_PRINCIPAL,
) -> Starlette:
    """The ASGI app for one server: MCP at `/mcp` (http) or `/sse` + `/messages/` (sse), and `/health`.

    With `trust`, every MCP request needs a bearer token for this server (see `protect`); `base_url` (where it
    listens) names the protected-resource metadata, and `identity` proves to the mesh's clients that this is the
    server their tokens are for (servers.common.pinning); `max_sessions` caps each principal's open sessions."""
    check_exposure(host, authenticated=trust is not None)
    if transport == "http":
        inner = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    else:
        inner = server.sse_app(sse_path=SSE_PATH, message_path=SSE_MESSAGE_PATH, host=host)
    guarded: ASGIApp = inner
    metadata: list[BaseRoute] = []
    if trust is not None:
        path = MCP_PATH if transport == "http" else SSE_PATH
        resource_url = f"{base_url or 'http://127.0.0.1'}{path}"
        guarded, metadata = protect(
            inner, trust, server.name, resource_url, server, identity, max_sessions=max_sessions
        )

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "server": server.name, "transport": transport})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Starlette does not run a mounted app's lifespan; the streamable HTTP session manager needs it.
        if transport == "http":
            async with server.session_manager.run():
                yield
        else:
            yield

    return Starlette(
        routes=[Route("/health", health), *metadata, UNKNOWN_WELL_KNOWN, Mount("/", app=guarded)], lifespan=lifespan
    )


def protect(
    app: ASGIApp,
    trust: TrustRoot,
    audience: str,
    resource_url: str,
    server: MCPServer[Any] | Server[Any] | None = None,
    identity: ServerIdentity | None = None,
    *,
    max_sessions: int = DEFAULT_MAX_SESSIONS_PER_PRINCIPAL,
) -> tuple[ASGIApp, list[BaseRoute]]:
    """`app` behind bearer tokens for `audience` (or the whole mesh), as an OAuth 2.1 resource server: no token,
    a bad, expired, revoked or foreign one is 401 with `WWW-Authenticate` pointing at the RFC 9728 metadata; a
    2026-era call of a tool whose scope the token lacks (its `Mcp-Name` header) is 403 naming the scope; a session
    past a principal's `max_sessions` is 429 (servers.common.sessions; `server` serves `app`'s streamable HTTP
    sessions). Returns the wrapped app and the routes to serve beside it: the metadata, and with `identity` the
    answer to the challenge of a client that pins whom it sends its token to."""
    metadata_url = protected_resource_metadata_url(resource_url)
    inner = app
    if isinstance(server, MeshServer):
        inner = ToolScopeCheck(app, server.gate.scopes, metadata_url)
    inner = SessionCap(inner, max_sessions, server, SSE_MESSAGE_PATH, SSE_PATH)
    protected = ExplainedRequireAuth(inner, [], AnyHttpUrl(metadata_url), trust, (audience, MESH_AUDIENCE))
    wrapped = AuthenticationMiddleware(
        AuthContextMiddleware(protected), backend=BearerAuthBackend(trust.verifier(audience))
    )
    issuer = resource_url.split("/", 3)[:3]
    routes = create_protected_resource_routes(
        resource_url=AnyHttpUrl(resource_url),
        authorization_servers=[AnyHttpUrl("/".join(issuer))],
        scopes_supported=sorted(SCOPES),
        resource_name=f"StateSet {audience}",
    )
    return wrapped, [*routes, *([identity.route(resource_url)] if identity is not None else [])]


class ExplainedRequireAuth(RequireAuthMiddleware):
    """The SDK's 401 for a request without a valid token, saying why it is refused (none sent, not this mesh's,
    revoked, expired, or for another server) rather than only that authentication is required."""

    def __init__(
        self,
        app: ASGIApp,
        required_scopes: list[str],
        metadata_url: AnyHttpUrl,
        trust: TrustRoot,
        audiences: tuple[str, ...],
    ) -> None:
        super().__init__(app, required_scopes, metadata_url)
        self.trust, self.audiences = trust, audiences

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if isinstance(scope.get("user"), AuthenticatedUser):
            await super().__call__(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else None
        why = self.trust.refusal(token, self.audiences)
        await self._send_auth_error(send, status_code=401, error="invalid_token", description=why)


async def _not_found(_: Request) -> JSONResponse:
    return JSONResponse({"error": "not_found"}, status_code=404)


UNKNOWN_WELL_KNOWN = Route("/.well-known/{rest:path}", _not_found, methods=["GET"])
"""404 for metadata the mesh does not serve (an OAuth authorization server's, for one: its tokens come from
`stateset token issue`), where the token check would answer 401 and send a client looking for a token."""


def protected_resource_metadata_url(resource_url: str) -> str:
    """RFC 9728: the metadata of `https://host/path` is at `https://host/.well-known/oauth-protected-resource/path`."""
    scheme, _, rest = resource_url.partition("://")
    host, _, path = rest.partition("/")
    return f"{scheme}://{host}/.well-known/oauth-protected-resource/{path}".rstrip("/")


class ToolScopeCheck:
    """A 2026-era tool call names its tool in the `Mcp-Name` header: refuse it at the HTTP level, 403 with the scope
    a token would need, so a client can step up its token. Calls that name no tool (2025 era) are checked by the
    server's gate in band; so are the gateway's calls for its callers (it holds mesh:delegate, the caller's
    scopes travel in the call)."""

    def __init__(self, app: ASGIApp, scopes: ToolScopes, metadata_url: str) -> None:
        self.app, self.scopes, self.metadata_url = app, scopes, metadata_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            name = headers.get(MCP_NAME_HEADER.encode())
            if headers.get(MCP_METHOD_HEADER.encode()) == b"tools/call" and name is not None:
                needed = self.scopes.get(name.decode(errors="replace"), None)
                granted = getattr(scope.get("auth"), "scopes", [])
                if needed is not None and needed not in granted and "mesh:delegate" not in granted:
                    await self._refuse(send, needed, name.decode(errors="replace"))
                    return
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send, needed: str, tool: str) -> None:
        description = f"{tool} needs the {needed} scope"
        challenge = (
            f'Bearer error="insufficient_scope", error_description="{description}", scope="{needed}", '
            f'resource_metadata="{self.metadata_url}"'
        )
        body = json.dumps({"error": "insufficient_scope", "error_description": description}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", challenge.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def check_exposure(host: str, *, authenticated: bool) -> None:
    if host not in LOOPBACK_HOSTS and not authenticated:
        raise ConfigError(
            f"refusing to serve on {host} without bearer tokens (--no-auth): anyone on the network could move money"
        )


GRACEFUL_SHUTDOWN_SECONDS = 3


class PortInUseError(ConfigError):
    """Another process listens on the port."""


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port. Taken before anything else starts, so a port in use is one line
    naming it, not a data directory set up for nothing and a traceback."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is in use by another process; stop it, or choose another port with --port"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def bound_url(sock: socket.socket, path: str = "") -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"


def public_url(sock: socket.socket, environ: Mapping[str, str]) -> str:
    """Where clients reach this process: `STATESET_PUBLIC_URL` (behind a proxy, or bound to every interface), else
    the address it is bound to. It names the protected-resource metadata, and a server proves it is the server at
    this URL and no other (servers.common.pinning)."""
    named = environ.get("STATESET_PUBLIC_URL")
    if not named:
        return bound_url(sock)
    if not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", named):
        raise ConfigError(
            f"STATESET_PUBLIC_URL={named!r} is not an http(s) URL without query, e.g. https://mesh.example"
        )
    return named.rstrip("/")


PEER_SERVERS = ("wallet", "governance", "reputation", "discovery")
"""Servers that call each other; one run alone reaches the others at `STATESET_<NAME>_URL`."""


async def serve_one(
    opener: Callable[[MeshSettings, Mapping[str, str]], AbstractAsyncContextManager[Any]],
    mesh: MeshSettings,
    environ: Mapping[str, str],
    *,
    name: str,
    transport: TransportName,
    host: str = "127.0.0.1",
    port: int = 8000,
    peer_port: int | None = None,
    no_auth: bool = False,
) -> None:
    """`stateset serve <name>`: open one server and serve it until cancelled or, for stdio, until the host
    closes stdin.

    Over HTTP every MCP request needs a mesh token for this server (`stateset token issue`), unless `no_auth`.
    Over stdio the server acts for the host that launched it: as `STATESET_TOKEN`'s principal when set, else as
    the local operator. With `peer_port`, a stdio server also serves streamable HTTP on 127.0.0.1:`peer_port` for
    the servers it shares a data directory with (a host starts each in its own process), with tokens; and a
    server that reaches peers at `STATESET_<NAME>_URL` presents a token of its own service principal, minted here.
    """
    if peer_port is not None and transport != "stdio":
        raise ConfigError(f"--peer-port is for stdio servers; over {transport} the peers reach this one at --port")
    sock = None  # the port first: one in use is one line, before anything is created
    if transport != "stdio":
        check_exposure(host, authenticated=not no_auth)
        sock = listen(host, port)
    elif peer_port is not None:
        sock = listen("127.0.0.1", peer_port)
    data_dir = mesh.data_dir()
    trust = None if no_auth else TrustRoot.of_home(data_dir, environ)
    if transport == "stdio":
        host_principal = stdio_principal(name, environ, trust or TrustRoot.of_home(data_dir, environ))
    elif no_auth:
        set_process_principal(LOCAL_OPERATOR)
        logger.warning("--no-auth: every caller of %s acts as the local operator, with every scope", name)
    if not no_auth:  # under --no-auth its peers are expected open too: a token would go unproven to them
        environ = dict(environ) | peer_tokens(name, environ, data_dir)
    # over HTTP, a key of this process's own that the authority certifies: the mesh's clients check it
    identity = (
        None if trust is None or sock is None else ServerIdentity.certified(Authority.load(data_dir, environ), [name])
    )
    async with opener(mesh, environ) as running:
        if transport == "stdio":  # said once the server is open (a data directory in use is one line)
            logger.info("over stdio, %s acts for the host that launched it, as %s", name, host_principal.did)
            set_process_principal(host_principal)
        server: MCPServer[Any] = running.server
        if isinstance(server, MeshServer):
            server.gate.trust = trust  # checks the gateway's tokens for the callers it acts for
        if sock is None:
            await server.run_stdio_async()
            return
        http: Literal["http", "sse"] = "sse" if transport == "sse" else "http"
        base = public_url(sock, environ)
        app = http_app(
            server,
            http,
            host=host if transport != "stdio" else "127.0.0.1",
            base_url=base,
            trust=trust,
            identity=identity,
            max_sessions=mesh.max_sessions_per_principal,
        )
        logger.info("serving %s over %s at %s%s", server.name, http, base, SSE_PATH if http == "sse" else MCP_PATH)
        if transport != "stdio":
            await run_app(app, sock)
            return
        async with anyio.create_task_group() as tasks:  # stdio for the host, HTTP for the peers
            tasks.start_soon(run_app, app, sock)
            await server.run_stdio_async()
            tasks.cancel_scope.cancel()


def stdio_principal(name: str, environ: Mapping[str, str], trust: TrustRoot) -> Principal:
    """Whom a stdio server acts for: the principal of `STATESET_TOKEN` (checked), else the local operator."""
    token = environ.get("STATESET_TOKEN")
    if not token:
        return LOCAL_OPERATOR
    register_secret(token)
    principal = trust.verify(token, (name, MESH_AUDIENCE))
    if principal is None:
        raise ConfigError(f"STATESET_TOKEN is not a valid, unexpired, unrevoked mesh token for the {name} server")
    return principal


def peer_tokens(name: str, environ: Mapping[str, str], data_dir: Path) -> dict[str, str]:
    """`STATESET_<PEER>_TOKEN` for every peer this server reaches by URL without one: a token of this server's
    service principal for that peer, from the mesh authority of the data directory."""
    wanted = [
        peer
        for peer in PEER_SERVERS
        if environ.get(f"STATESET_{peer.upper()}_URL") and not environ.get(f"STATESET_{peer.upper()}_TOKEN")
    ]
    if not wanted:
        return {}
    authority = Authority.load(data_dir, environ)
    principal = service_principal(name)
    return {
        f"STATESET_{peer.upper()}_TOKEN": authority.issue(
            principal.did, principal.scopes, MAX_TTL_SECONDS, audience=peer
        ).token
        for peer in wanted
    }


async def run_app(app: ASGIApp, sock: socket.socket) -> None:
    """Serve an ASGI app on a listening socket (see `listen`) until SIGINT, SIGTERM or cancellation."""
    config = uvicorn.Config(
        app,
        log_config=None,
        lifespan="on",
        access_log=False,
        # Listen streams and legacy SSE streams stay open until the client leaves; without a bound,
        # SIGTERM would wait for every subscriber (another server's follower) to go away first.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    await uvicorn.Server(config).serve(sockets=[sock])


class _EmbeddedServer(uvicorn.Server):
    """uvicorn's server, leaving SIGINT and SIGTERM to the process's own (its `serve` takes them over)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, name: str = "server", lifespan: bool = False
) -> AsyncIterator[str]:
    """Serve `app` on loopback inside this process until the block exits (an adapter's sandbox emulator, a
    test's server); yields its base URL (port 0 picks a free port). It takes no signals: it stops with the block."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on" if lifespan else "off",
        timeout_graceful_shutdown=1,  # open streams (subscribers) must not hold the shutdown up
    )
    server = _EmbeddedServer(config)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve)
        while not server.started:
            if tasks.cancel_scope.cancel_called or server.should_exit:
                raise RuntimeError(f"the {name} did not start on {host}:{port}")
            await anyio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://{host}:{bound}"
        logger.info("%s listening at %s", name, url)
        try:
            yield url
        finally:
            server.should_exit = True
