"""Reaching another mesh server: calling its tools, and following its change log.

A `Peer` is another server as this one sees it: in-process (its `MCPServer`, when both run in one
process, as in `stateset up` and the tests) or over streamable HTTP (`STATESET_<NAME>_URL`, with
`STATESET_<NAME>_TOKEN` when the peer requires a bearer token), reached through servers.common.clients.
Every call opens its own short-lived client, so a peer that restarts is simply reached again on the
next call.

`follow` keeps a replica of a peer's change log (servers.common.changes): it listens for updates to
`<scheme>://changes` (2026-07-28 `subscriptions/listen`, or 2025-11-25 `resources/subscribe`), reads every
page after its cursor, and hands each page to the follower, which applies it and saves the cursor in one
transaction. It reconnects with backoff for as long as the server runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.server.mcpserver import MCPServer

from servers.common.auth import Principal
from servers.common.changes import Change, ChangePage
from servers.common.clients import Target, connect, describe_error, subscribe_legacy
from servers.common.errors import MeshError
from servers.common.logging import register_secret
from servers.common.passwords import read_secret
from servers.common.pinning import Pin, pinning_trust

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


class PeerUnavailableError(MeshError):
    """The peer could not be reached or did not answer; the same call may succeed later."""


class PeerRefusedError(MeshError):
    """The peer answered with a tool error; its message says why."""


@dataclass(frozen=True)
class Peer:
    """Another mesh server this one calls."""

    name: str
    target: Target
    timeout_seconds: float = 10.0

    @classmethod
    def in_process(
        cls,
        name: str,
        server: MCPServer[Any] | Callable[[], Awaitable[MCPServer[Any]]],
        *,
        principal: Principal,
        mode: str = "auto",
    ) -> Peer:
        """A server in this process, or a function that waits for it to start and returns it (servers
        started together in one process follow each other, so one of them starts before the other), called as
        `principal` (the calling server's service principal)."""
        return cls(name, Target(server=server, mode=mode, principal=principal))

    @classmethod
    def from_env(cls, name: str, environ: Mapping[str, str], data_dir: Path) -> Peer | None:
        """The peer named by `STATESET_<NAME>_URL`, with the mesh token in `STATESET_<NAME>_TOKEN` or in the 0600
        file `STATESET_<NAME>_TOKEN_FILE` names (`stateset serve` mints one for its own service principal when
        neither is set), sent once the server there proved it is the mesh's `name` (the authority of `data_dir`
        or of STATESET_AUTHORITY_KEY_FILE certified it); None when the URL is not configured."""
        key = f"STATESET_{name.upper()}"
        url = environ.get(f"{key}_URL") or None
        if url is None:
            return None
        token = environ.get(f"{key}_TOKEN") or None
        token_file = environ.get(f"{key}_TOKEN_FILE") or None
        if token is None and token_file is not None:
            token = read_secret(Path(token_file), f"the {name} server's token")
        if token is None:
            return cls(name, Target(url=url))
        register_secret(token)
        pin = Pin(pinning_trust(data_dir, environ, needed_for=f"reaching the {name} server at {url}"), name)
        return cls(name, Target(url=url, headers={"Authorization": f"Bearer {token}"}, pin=pin))

    def __str__(self) -> str:
        return f"the {self.name} server ({self.target.url or self.target.describe()})"

    def connect(self, *, message_handler: Any = None) -> AbstractAsyncContextManager[Client]:
        return connect(self.target, timeout_seconds=self.timeout_seconds, message_handler=message_handler)

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """Call one of the peer's tools; its structured result.

        Raises:
            PeerRefusedError: the tool answered with an error.
            PeerUnavailableError: the peer could not be reached or the call timed out.
        """
        try:
            with anyio.fail_after(self.timeout_seconds):
                async with self.connect() as client:
                    result = await client.call_tool(tool, arguments)
        except MeshError:
            raise
        except Exception as exc:  # transport, protocol and timeout failures all mean "try again later"
            raise PeerUnavailableError(f"{self} did not answer {tool}: {describe_error(exc)}") from exc
        if result.is_error:
            message = " ".join(getattr(block, "text", "") for block in result.content)
            raise PeerRefusedError(f"{self} refused {tool}: {message.removeprefix(f'Error executing tool {tool}: ')}")
        structured: dict[str, Any] | None = result.structured_content
        if structured is None:
            raise PeerUnavailableError(f"{self} answered {tool} without a structured result")
        return structured


async def read_json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    content = result.contents[0]
    if not isinstance(content, types.TextResourceContents):
        raise PeerUnavailableError(f"{uri} is not a JSON text resource")
    return json.loads(content.text)


Apply = Callable[[list[Change], int], Awaitable[None]]
"""Applies a page of changes and saves the cursor (the last entry's seq) in one transaction."""


async def follow(
    peer: Peer,
    scheme: str,
    *,
    cursor: Callable[[], Awaitable[int]],
    apply: Apply,
    retry_seconds: float = 1.0,
) -> None:
    """Keep applying `scheme`'s change log from `peer` until cancelled, reconnecting with backoff."""
    head_uri = f"{scheme}://changes"
    backoff = retry_seconds
    failures = 0
    while True:
        try:
            async with _updates(peer, head_uri) as (client, updates):
                logger.info("following %s's %s", peer, head_uri)
                backoff, failures = retry_seconds, 0
                await _catch_up(client, scheme, cursor, apply)
                async for _ in updates:
                    await _catch_up(client, scheme, cursor, apply)
        except Exception as exc:
            failures += 1
            # a peer that is still starting is normal once; again and again it is worth a warning
            level = logging.INFO if failures == 1 else logging.WARNING
            logger.log(level, "following %s failed (%s); retrying in %.0f s", peer, describe_error(exc), backoff)
        await anyio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


async def _catch_up(client: Client, scheme: str, cursor: Callable[[], Awaitable[int]], apply: Apply) -> None:
    after = await cursor()
    while True:
        page = ChangePage.model_validate(await read_json(client, f"{scheme}://changes/{after}"))
        if page.changes:
            after = page.changes[-1].seq
            await apply(page.changes, after)
        if not page.more:
            return


@asynccontextmanager
async def _updates(peer: Peer, uri: str) -> AsyncIterator[tuple[Client, AsyncIterator[object]]]:
    """A connected client and the stream of update events for `uri`, in whichever era was negotiated."""
    send, receive = anyio.create_memory_object_stream[object](16)

    async def on_message(message: Any) -> None:  # 2025-11-25: notifications arrive on the session
        if isinstance(message, types.ResourceUpdatedNotification) and message.params.uri == uri:
            with suppress(anyio.WouldBlock):  # a full buffer already holds a wake-up; dropping this one loses nothing
                send.send_nowait(message)

    async with send, receive, peer.connect(message_handler=on_message) as client:
        if client.protocol_version >= "2026-07-28":
            async with client.listen(resource_subscriptions=[uri]) as events:
                yield client, events
        else:
            await subscribe_legacy(client, uri)
            yield client, receive
