"""Serve any of our MCP servers over stdio, streamable HTTP, or legacy HTTP+SSE.

One server object answers both protocol eras on every transport: the 2025-11-25 handshake and the
2026-07-28 stateless requests arrive over stdio, streamable HTTP and the legacy HTTP+SSE transport alike.

HTTP listens on 127.0.0.1 unless told otherwise (the SDK then also turns on DNS-rebinding protection).
With a token verifier every MCP endpoint requires `Authorization: Bearer <token>`; `/health` stays open so
orchestrators can probe it. Binding a non-loopback address without tokens is refused.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import logging
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

import anyio
import uvicorn
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from servers.common.keystore import peer_token
from servers.common.logging import register_secret
from servers.common.settings import ConfigError, MeshSettings

logger = logging.getLogger(__name__)

TransportName = Literal["stdio", "http", "sse"]
TRANSPORTS: tuple[TransportName, ...] = ("stdio", "http", "sse")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MCP_PATH = "/mcp"
SSE_PATH = "/sse"
SSE_MESSAGE_PATH = "/messages/"


class StaticTokenVerifier:
    """Bearer tokens fixed at start-up, each naming its client and scopes. Compared in constant time."""

    def __init__(self, tokens: Mapping[str, tuple[str, Sequence[str]]]) -> None:
        self._tokens = {token: (client, list(scopes)) for token, (client, scopes) in tokens.items()}
        for token in self._tokens:
            register_secret(token)

    async def verify_token(self, token: str) -> AccessToken | None:
        for known, (client_id, scopes) in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return AccessToken(token=token, client_id=client_id, scopes=scopes)
        return None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> StaticTokenVerifier | None:
        """`STATESET_HTTP_TOKENS="client-a:token-a,client-b:token-b@governance:admin"`, or None when unset.

        After `@`, a `+`-separated list of scopes the token carries.
        """
        raw = environ.get("STATESET_HTTP_TOKENS", "").strip()
        if not raw:
            return None
        tokens: dict[str, tuple[str, list[str]]] = {}
        for index, entry in enumerate(raw.split(","), start=1):
            credentials, _, scopes = entry.strip().partition("@")
            client_id, sep, token = credentials.partition(":")
            if not sep or not client_id or len(token) < 16:
                raise ConfigError(
                    f"STATESET_HTTP_TOKENS entry {index} is not 'client:token[@scope+scope]' "
                    "with a token of 16 or more characters"
                )
            tokens[token] = (client_id, [scope for scope in scopes.split("+") if scope])
        return cls(tokens)


def http_app(
    server: MCPServer[Any],
    transport: Literal["http", "sse"],
    *,
    host: str = "127.0.0.1",
    token_verifier: TokenVerifier | None = None,
    required_scopes: Sequence[str] = (),
) -> Starlette:
    """The ASGI app for one server: MCP at `/mcp` (http) or `/sse` + `/messages/` (sse), and `/health`."""
    check_exposure(host, token_verifier)
    if transport == "http":
        inner = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    else:
        inner = server.sse_app(sse_path=SSE_PATH, message_path=SSE_MESSAGE_PATH, host=host)
    guarded = inner if token_verifier is None else require_bearer(inner, token_verifier, required_scopes)

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

    return Starlette(routes=[Route("/health", health), Mount("/", app=guarded)], lifespan=lifespan)


def require_bearer(app: ASGIApp, verifier: TokenVerifier, required_scopes: Sequence[str] = ()) -> ASGIApp:
    """Wrap `app` so that every request needs a valid bearer token (401 without, 403 without a scope)."""
    protected = RequireAuthMiddleware(app, list(required_scopes))
    return AuthenticationMiddleware(AuthContextMiddleware(protected), backend=BearerAuthBackend(verifier))


def check_exposure(host: str, token_verifier: TokenVerifier | None) -> None:
    if host not in LOOPBACK_HOSTS and token_verifier is None:
        raise ConfigError(
            f"refusing to serve on {host} without bearer tokens: anyone on the network could move money; "
            "set STATESET_HTTP_TOKENS or listen on 127.0.0.1"
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


async def serve_one(
    opener: Callable[[MeshSettings, Mapping[str, str]], AbstractAsyncContextManager[Any]],
    mesh: MeshSettings,
    environ: Mapping[str, str],
    *,
    transport: TransportName,
    host: str = "127.0.0.1",
    port: int = 8000,
    peer_port: int | None = None,
) -> None:
    """`stateset serve <name>`: open one server and serve it until cancelled or, for stdio, until the host
    closes stdin.

    With `peer_port`, a stdio server also serves streamable HTTP on 127.0.0.1:`peer_port` for the servers it
    shares a data directory with (a host starts each in its own process): that port takes only the data
    directory's peer token (servers.common.keystore.peer_token), which the others present through
    `STATESET_<NAME>_TOKEN_FILE`.
    """
    verifier = StaticTokenVerifier.from_env(environ)
    if peer_port is not None and transport != "stdio":
        raise ConfigError(f"--peer-port is for stdio servers; over {transport} the peers reach this one at --port")
    if transport != "stdio":
        check_exposure(host, verifier)
        sock = listen(host, port)
    elif peer_port is not None:
        sock = listen("127.0.0.1", peer_port)
        verifier = StaticTokenVerifier({peer_token(mesh.data_dir()): ("peer", [])})
    async with opener(mesh, environ) as running:
        server: MCPServer[Any] = running.server
        if transport == "stdio" and peer_port is None:
            await server.run_stdio_async()
            return
        http: Literal["http", "sse"] = "sse" if transport == "sse" else "http"
        app = http_app(server, http, host=host if transport != "stdio" else "127.0.0.1", token_verifier=verifier)
        logger.info(
            "serving %s over %s at %s", server.name, http, bound_url(sock, SSE_PATH if http == "sse" else MCP_PATH)
        )
        if transport != "stdio":
            await run_app(app, sock)
            return
        async with anyio.create_task_group() as tasks:  # stdio for the host, HTTP for the peers
            tasks.start_soon(run_app, app, sock)
            await server.run_stdio_async()
            tasks.cancel_scope.cancel()


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
