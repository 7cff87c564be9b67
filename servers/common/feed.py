"""Resource-update notifications in both MCP protocol eras.

A service publishes the URIs its committed change touched; the feed tells every subscriber:

- 2026-07-28 clients listen with `subscriptions/listen`; the SDK's `SubscriptionBus` fans events out.
- 2025-11-25 clients call `resources/subscribe` and receive `notifications/resources/updated` on their
  session. `MCPServer` does not serve `resources/subscribe`, so the feed registers the two handlers on
  the low-level server (the SDK exposes no public hook for them) and keeps the sessions per URI.

URIs are matched exactly, as the SDK's listen streams do: subscribe to the form the server lists.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated

logger = logging.getLogger(__name__)

# A subscriber that cannot take a notification within this time is dropped rather than stall a payment.
SEND_TIMEOUT_SECONDS = 2.0


class Publisher(Protocol):
    """What a service needs to announce changes; the feed implements it, tests may record instead."""

    async def publish(self, uris: Iterable[str]) -> None: ...


class ChangeFeed:
    """Delivers `resources/updated` for published URIs to subscribers of both eras."""

    def __init__(self) -> None:
        self.bus = InMemorySubscriptionBus()
        self._sessions: dict[str, set[ServerSession]] = {}

    def attach(self, server: MCPServer[Any]) -> None:
        """Serve legacy `resources/subscribe` and `resources/unsubscribe` on `server`."""
        lowlevel = server._lowlevel_server  # no public API for these two methods in mcp 2.3
        lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, self._subscribe)
        lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, self._unsubscribe)

    async def publish(self, uris: Iterable[str]) -> None:
        for uri in dict.fromkeys(uris):  # each URI once, in order
            await self.bus.publish(ResourceUpdated(uri=uri))
            for session in list(self._sessions.get(uri, ())):
                delivered = False
                with anyio.move_on_after(SEND_TIMEOUT_SECONDS):
                    try:
                        await session.send_resource_updated(uri)
                        delivered = True
                    except Exception:  # a closed or broken session: forget it
                        logger.debug("dropping a subscriber of %s whose session is gone", uri)
                if not delivered:
                    self._forget(uri, session)

    def subscriber_count(self, uri: str) -> int:
        return len(self._sessions.get(uri, ()))

    async def _subscribe(
        self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        self._sessions.setdefault(str(params.uri), set()).add(ctx.session)
        return types.EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        self._forget(str(params.uri), ctx.session)
        return types.EmptyResult()

    def _forget(self, uri: str, session: ServerSession) -> None:
        sessions = self._sessions.get(uri)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._sessions[uri]
