"""What every server's MCP surface shares: construction, tool annotations, resource encoding."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, TypeAdapter

from servers.common.changes import ChangePage
from servers.common.errors import InvalidInputError, MeshError, NotFoundError
from servers.common.feed import ChangeFeed


def package_version() -> str:
    try:
        return metadata.version("stateset-mesh")
    except metadata.PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0"


def new_server(name: str, *, title: str, instructions: str, feed: ChangeFeed) -> MCPServer[Any]:
    """An `MCPServer` whose resource updates reach subscribers of both protocol eras through `feed`."""
    server: MCPServer[Any] = MCPServer(
        name,
        title=title,
        instructions=instructions,
        version=package_version(),
        subscriptions=feed.bus,
    )
    feed.attach(server)
    return server


# Tool annotations, named for what the tool does to the world. Our servers act only on their own data
# (local ledger, emulators), so none of them is open-world.
READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
"""Reads state, changes nothing."""
CREATE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
"""Adds something new; repeating it adds another."""
SET = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
"""Overwrites settings; repeating it with the same values changes nothing more."""
MOVE_MONEY = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)
"""Moves money irreversibly; an idempotency key makes a repeat safe."""
REBALANCE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
"""Moves money between the caller's own buckets; repeating it reaches the same allocation."""


# JSON-RPC leaves -32000..-32099 to implementations; this one means "authenticated, but not allowed".
FORBIDDEN = -32003


def require_scope(scope: str) -> None:
    """Refuse the call unless its bearer token carries `scope`.

    Without a token there is no one to refuse: stdio is the operator's own process, and HTTP without
    STATESET_HTTP_TOKENS listens on loopback only.

    Raises:
        MCPError: FORBIDDEN, a protocol error, since no retry by the model can help.
    """
    token = get_access_token()
    if token is not None and scope not in token.scopes:
        raise MCPError(
            FORBIDDEN, f"this tool needs the {scope} scope; the token of {token.client_id} does not carry it"
        )


def to_json(value: BaseModel | list[Any]) -> str:
    """A resource body: the same JSON a tool's structured output carries."""
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return TypeAdapter(list[Any]).dump_json(value).decode()


@contextmanager
def resource_errors() -> Iterator[None]:
    """Report our errors on the resource plane: unknown ids as not-found (-32602), the rest as -32603."""
    try:
        yield
    except NotFoundError as exc:
        raise ResourceNotFoundError(exc.message) from exc
    except MeshError as exc:
        raise ResourceError(str(exc)) from exc


def serve_change_log(server: MCPServer[Any], scheme: str, page: Callable[[int], Awaitable[ChangePage]]) -> None:
    """The two resources of a change log (servers.common.changes): its head and its pages."""

    @server.resource(f"{scheme}://changes", title="Change log", mime_type="application/json")
    async def changes_head() -> str:
        """The newest sequence number; subscribe to this resource to hear of every change."""
        return to_json((await page(2**62)).model_copy(update={"more": False}))

    @server.resource(f"{scheme}://changes/{{after}}", title="Changes after a cursor", mime_type="application/json")
    async def changes_page(after: str) -> str:
        """Up to 500 entries after sequence number `after`, oldest first; `more` says whether to read on."""
        with resource_errors():
            if not after.isdigit():
                raise InvalidInputError(
                    f"cursor {after!r} is not a sequence number", hint="use 0 to read from the start"
                )
            return to_json(await page(int(after)))
