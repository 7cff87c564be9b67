"""Resource-update notifications in both MCP protocol eras.

A service publishes the URIs its committed change touched; the feed tells every subscriber:

- 2026-07-28 clients listen with `subscriptions/listen`; the SDK's `SubscriptionBus` fans events out.
- 2025-11-25 clients call `resources/subscribe` and receive `notifications/resources/updated` on their
  connection's standalone stream. `MCPServer` does not serve `resources/subscribe`, so the feed registers
  the two handlers on the low-level server (the SDK exposes no public hook for them) and keeps the
  connections per URI, forgetting a connection's subscriptions when it closes.

URIs are matched exactly, as the SDK's listen streams do: subscribe to the form the server lists.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import anyio
import mcp_types as types
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated, ServerEvent

logger = logging.getLogger(__name__)

# A subscriber that cannot take a notification within this time is skipped rather than stall a payment.
SEND_TIMEOUT_SECONDS = 2.0
_CLEANUP_KEY = "stateset.feed.cleanup"


class Publisher(Protocol):
    """What a service needs to announce changes; the feed implements it, tests may record instead."""

    async def publish(self, uris: Iterable[str]) -> None: ...


class _Bus(InMemorySubscriptionBus):
    """The SDK's bus, counting its listen streams: a publish with no one listening skips the bus, whose
    every publish ends with a pass through the event loop (five per payment, about 5 % of one)."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners = 0

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        unsubscribe = super().subscribe(listener)
        self.listeners += 1
        done = False

        def once() -> None:
            nonlocal done
            if not done:
                done = True
                self.listeners -= 1
                unsubscribe()

        return once


class ChangeFeed:
    """Delivers `resources/updated` for published URIs to subscribers of both eras."""

    def __init__(self, *, on_subscribe: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.bus = _Bus()
        self._connections: dict[str, set[Connection]] = {}
        self._on_subscribe = on_subscribe  # a gateway follows the resource at its backend

    def attach(self, server: MCPServer[Any] | Server[Any]) -> None:
        """Serve legacy `resources/subscribe` and `resources/unsubscribe` on `server`."""
        lowlevel = server._lowlevel_server if isinstance(server, MCPServer) else server  # no public API in mcp 2.3
        lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, self._subscribe)
        lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, self._unsubscribe)

    async def publish(self, uris: Iterable[str]) -> None:
        for uri in dict.fromkeys(uris):  # each URI once, in order
            if self.bus.listeners:
                await self.bus.publish(ResourceUpdated(uri=uri))
            for connection in list(self._connections.get(uri, ())):
                # Connection.send_* never raises: a closed stream drops the notification.
                with anyio.move_on_after(SEND_TIMEOUT_SECONDS):
                    await connection.send_resource_updated(uri)

    def subscriber_count(self, uri: str) -> int:
        return len(self._connections.get(uri, ()))

    async def _subscribe(
        self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        connection = _connection(ctx)
        if self._on_subscribe is not None:
            await self._on_subscribe(str(params.uri))
        self._connections.setdefault(str(params.uri), set()).add(connection)
        if _CLEANUP_KEY not in connection.state:  # forget every subscription of a connection when it closes
            connection.state[_CLEANUP_KEY] = True
            connection.exit_stack.callback(self._forget_connection, connection)
        return types.EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        self._forget(str(params.uri), _connection(ctx))
        return types.EmptyResult()

    def _forget(self, uri: str, connection: Connection) -> None:
        connections = self._connections.get(uri)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self._connections[uri]

    def _forget_connection(self, connection: Connection) -> None:
        for uri in list(self._connections):
            self._forget(uri, connection)


def _connection(ctx: ServerRequestContext[Any]) -> Connection:
    """The client connection behind a request. Requests get a fresh `ServerSession` each; the connection
    is what a subscription belongs to. mcp 2.3 exposes it to lowlevel handlers only as a private field."""
    connection: Connection = ctx.session._connection
    return connection
