"""Reaching another MCP server: where it is (`Target`), and a client connected to it (`connect`).

The one way the mesh opens a client to an MCP server, used by a server calling its peers
(servers.common.peers) and by the gateway's supervised backends (gateway.backends). A target is a server
in this process (or a function returning it once it exists), a command speaking stdio, or a streamable
HTTP URL with headers; `mode="legacy"` pins the 2025-11-25 handshake. A URL target with a `pin` sends its headers
(its token) only once the server there proved it is the mesh server the token is for (servers.common.pinning).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPDeprecationWarning

from servers.common.auth import Principal, acting_as
from servers.common.pinning import Pin, ServerIdentityError

# Streams (listen, legacy SSE) stay open while idle; a request that waits longer than this has a server problem.
STREAM_READ_SECONDS = 300.0


@dataclass(frozen=True)
class Target:
    """How to reach an MCP server."""

    server: MCPServer[Any] | Callable[[], Awaitable[MCPServer[Any]]] | None = field(default=None, repr=False)
    """In this process: the server, or a function that waits until it has started and returns it."""
    command: tuple[str, ...] = ()
    env: Mapping[str, str] | None = field(default=None, repr=False)
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Sent with every HTTP request (a bearer token among them): never shown."""
    mode: str = "auto"
    principal: Principal | None = None
    """In this process: whom the connection acts as (servers.common.auth)."""
    pin: Pin | None = None
    """By URL: which mesh server must prove it listens there before the headers are sent."""

    def __post_init__(self) -> None:
        if sum((self.server is not None, bool(self.command), self.url is not None)) != 1:
            raise ValueError("a target is exactly one of: an in-process server, a command, a URL")

    @property
    def in_process(self) -> bool:
        return self.server is not None

    def describe(self) -> str:
        if self.server is not None:
            return "in this process"
        if self.command:
            return f"stdio: {' '.join(self.command)}"
        return f"HTTP: {self.url}"


@asynccontextmanager
async def connect(target: Target, *, timeout_seconds: float, message_handler: Any = None) -> AsyncIterator[Client]:
    """A client connected to `target`, closed on exit. It never caches reads: followers must see every change."""
    options: dict[str, Any] = {
        "mode": target.mode,
        "read_timeout_seconds": timeout_seconds,
        "message_handler": message_handler,
        "cache": None,
    }
    if target.server is not None:
        server = target.server if isinstance(target.server, MCPServer) else await target.server()
        # A 2025-era connection starts the server's side in this context, and a 2026-era one serves each call in
        # the caller's task: within this block, both act as the target's principal.
        with acting_as(target.principal) if target.principal is not None else nullcontext():
            async with Client(server, **options) as client:
                yield client
    elif target.command:
        env = dict(target.env) if target.env else None
        params = StdioServerParameters(command=target.command[0], args=list(target.command[1:]), env=env)
        async with Client(params, **options) as client:
            yield client
    else:
        assert target.url is not None
        timeout = httpx2.Timeout(timeout_seconds, read=STREAM_READ_SECONDS)
        unauthorized: list[httpx2.Response] = []  # the last 401 to a request that carried a token

        async def note_unauthorized(response: httpx2.Response) -> None:
            if response.status_code == 401 and "authorization" in response.request.headers:
                unauthorized[:] = [response]

        async with httpx2.AsyncClient(timeout=timeout, event_hooks={"response": [note_unauthorized]}) as http:
            if target.pin is not None:
                await target.pin.check(http, target.url)
            http.headers.update(target.headers)
            try:
                async with Client(streamable_http_client(target.url, http_client=http), **options) as client:
                    yield client
            except Exception as exc:
                if unauthorized:  # the SDK reports a 401 as "an error response": say what it was, and why
                    challenge = unauthorized[-1].headers.get("www-authenticate", "")
                    why = re.search(r'error_description="([^"]*)"', challenge)
                    raise TokenRefusedError(
                        f"{target.url} refused the token (401: {why.group(1) if why else 'no reason given'})"
                    ) from exc
                raise


async def subscribe_legacy(client: Client, uri: str) -> None:
    """2025-11-25 `resources/subscribe`: deprecated in the 2026 era, and what a client of that era uses."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await client.session.subscribe_resource(uri)


class TokenRefusedError(Exception):
    """The server refused the token presented to it (HTTP 401); another try with it fails alike."""


def refusal(exc: BaseException) -> BaseException | None:
    """The refusal within `exc` that retrying cannot cure (a refused token, a server that did not prove it is the
    mesh's), if any."""
    if isinstance(exc, TokenRefusedError | ServerIdentityError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := refusal(inner)) is not None:
                return found
    return None


def describe_error(exc: BaseException) -> str:
    """One line for a log or an error message: the first cause of a group, with its type."""
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return describe_error(exc.exceptions[0])
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
