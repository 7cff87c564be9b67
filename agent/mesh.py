"""The mesh as an agent reaches it: tool calls and resource reads through the gateway, read into the servers'
own pydantic models.

Every answer is validated against the model the server itself returns (`servers.wallet.models.Balance`,
`servers.governance.models.Decision`, ...), so a renamed or retyped field is a mypy error in the agent,
and an answer in a shape the agent does not read (a mesh of another version) is a clear failure naming
the tool, never a KeyError halfway through a payment.

A failure says what kind it is, since what the agent does next depends on it (a purchase already paid for
is retried after an outage and ends only on a refusal):

    ActionFailedError         neither of the two below: an answer the agent does not read, arguments the
    │                         gateway refused, a tool that crashed, credentials a platform refused
    ├── MeshUnavailableError  the backend or the platform behind it did not answer: down, too slow, busy, or
    │                         the answer lost. Nothing was refused; the same call, with the same idempotency
    │                         key, may succeed later
    └── ToolRefusedError      the backend answered and refused: the same call would be refused again

MCP tool errors carry only text, so the kind is read from the wording the gateway (gateway.backends,
gateway.aggregate) and the servers (adapters.base, adapters.retry, servers.common.errors.StorageError) use
for an outage; tests/agent/test_mesh.py provokes each outage for real and checks its class.
"""

from __future__ import annotations

import json
import re
from contextlib import nullcontext
from typing import Any, TypeVar

import mcp_types as types
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, TypeAdapter, ValidationError

from gateway.aggregate import Gateway
from gateway.sync import StateSync
from servers.common.auth import Principal, acting_as

M = TypeVar("M", bound=BaseModel)


class ActionFailedError(Exception):
    """A tool refused or failed, or answered in a shape the agent does not read; the message names the tool."""


class MeshUnavailableError(ActionFailedError):
    """The backend, or the platform behind it, did not answer (down, disconnected, too slow, busy, or its answer
    was lost): nothing was refused, and the same call may succeed later."""


class ToolRefusedError(ActionFailedError):
    """The backend answered the call and refused it (a rule of the server, or the platform behind it saying no):
    the same call would be refused again."""


# The gateway's own words for a backend it could not reach or that did not answer (gateway.backends,
# gateway.aggregate), at the start of the message.
_GATEWAY_UNAVAILABLE = re.compile(r"backend \S+ (is unavailable|did not answer within|disconnected|broke off during)")
# A server's words for a platform or store that did not answer (adapters.retry, adapters.base), an answer lost
# after the request was sent (OutcomeUnknownError), a platform's status that means "try later", or its store
# failing (servers.common.errors.StorageError).
_BACKEND_UNAVAILABLE = re.compile(
    r"did not answer|may or may not have been applied|refused the request \(HTTP (5\d\d|408|429)\)"
    r"|the data store failed"
)
# Calls the server could not judge on their merits, which a person fixes without the call changing: the SDK's
# whole message for a tool that crashed (the cause is in the server's log), and a platform refusing the adapter's
# credentials or session (adapters.base's AuthenticationError; HTTP 401 or 403).
_CRASHED = re.compile(r"Error executing tool \S+")
_ACCESS_REFUSED = re.compile(r"refused the [\w ]+ credentials|refused the request \(HTTP 40[13]\)")


def _tool_failure(server: str, tool: str, message: str) -> ActionFailedError:
    """The failure a tool error result stands for. The gateway prefixes a backend's own errors with
    `[<server>]`; an error without it is the gateway's (unreachable, or the agent's arguments refused)."""
    error = f"{server}_{tool}: {message}"
    from_backend = message.removeprefix(f"[{server}] ")
    if from_backend == message:
        return MeshUnavailableError(error) if _GATEWAY_UNAVAILABLE.match(message) else ActionFailedError(error)
    if _BACKEND_UNAVAILABLE.search(from_backend):
        return MeshUnavailableError(error)
    if _CRASHED.fullmatch(from_backend) or _ACCESS_REFUSED.search(from_backend):
        return ActionFailedError(error)
    return ToolRefusedError(error)


def _read_failure(uri: str, exc: MCPError) -> ActionFailedError:
    error = f"reading {uri}: {exc.message}"
    return MeshUnavailableError(error) if _GATEWAY_UNAVAILABLE.match(exc.message) else ActionFailedError(error)


class MeshClient:
    """Tools and resources of the mesh. Resources come from the agent's replica when it has one (followed on
    first use, kept current by the backends' change notifications), else straight through the gateway.

    With a `principal`, every call and read is that principal's: a gateway in this process passes it on to the
    backends (gateway.delegation). Without one, the calls are whoever the gateway's connections are: over a URL,
    the bearer token the gateway presents."""

    def __init__(self, gateway: Gateway, sync: StateSync | None = None, principal: Principal | None = None) -> None:
        self.gateway = gateway
        self.sync = sync
        self.principal = principal

    def acting(self) -> Any:
        """The context in which this client's calls are its principal's."""
        return nullcontext() if self.principal is None else acting_as(self.principal)

    def as_principal(self, principal: Principal) -> MeshClient:
        """The same mesh, without the replica, called as `principal` (an operator, a person)."""
        return MeshClient(self.gateway, principal=principal)

    async def call(self, server: str, tool: str, answer: type[M], **arguments: Any) -> M:
        """`server`'s `tool` with `arguments` (None values left out); its structured result as `answer`.

        Raises:
            MeshUnavailableError: the backend or the platform behind it did not answer.
            ToolRefusedError: the tool refused the call.
            ActionFailedError: any other failure, e.g. an answer that is not an `answer`; each naming the tool.
        """
        arguments = {key: value for key, value in arguments.items() if value is not None}
        try:
            with self.acting():
                result = await self.gateway.call(server, tool, arguments)
        except MCPError as exc:  # a protocol error the backend raised (not authorised, not ready)
            raise ActionFailedError(f"{server}_{tool}: {exc.message}") from exc
        if result.is_error:
            raise _tool_failure(server, tool, _text(result))
        content = result.structured_content
        if content is None:
            raise ActionFailedError(f"{server}_{tool} answered without structured content: {_text(result)[:200]}")
        return _parse(f"{server}_{tool}", answer, content)

    async def read(self, uri: str, shape: type[M], *, fresh: bool = False) -> M:
        """The JSON resource at `uri` as `shape`, from the replica (`fresh` reads it again now).

        Raises:
            MeshUnavailableError: its backend did not answer.
            ActionFailedError: no backend serves it, or it is not a `shape`.
        """
        if self.sync is None:
            return _parse(uri, shape, await self.read_json(uri))
        try:
            with self.acting():
                replica = self.sync.get(uri)
                if replica is None:
                    replica = await self.sync.follow(uri)
                elif fresh:
                    replica = await self.sync.refresh(uri)
        except MCPError as exc:
            raise _read_failure(uri, exc) from exc
        return _parse(uri, shape, replica.data)

    async def read_list(self, uri: str, item: type[M]) -> list[M]:
        """A JSON list resource, straight through the gateway.

        Raises:
            ActionFailedError: no backend serves it, or it is not a list of `item`.
        """
        data = await self.read_json(uri)
        try:
            return TypeAdapter(list[item]).validate_python(data)  # type: ignore[valid-type]
        except ValidationError as exc:
            raise ActionFailedError(f"{uri} is not a list of {item.__name__}: {_first(exc)}") from exc

    async def read_json(self, uri: str) -> Any:
        """A JSON resource straight through the gateway, without a replica.

        Raises:
            MeshUnavailableError: its backend did not answer.
            ActionFailedError: no backend serves it, or it is not JSON.
        """
        try:
            with self.acting():
                result = await self.gateway.read_resource(uri)
        except MCPError as exc:
            raise _read_failure(uri, exc) from exc
        block = result.contents[0]
        if not isinstance(block, types.TextResourceContents):
            raise ActionFailedError(f"{uri} is not JSON text")
        try:
            return json.loads(block.text)
        except ValueError as exc:
            raise ActionFailedError(f"{uri} is not JSON: {exc}") from exc


def _parse(source: str, shape: type[M], data: Any) -> M:
    try:
        return shape.model_validate(data)
    except ValidationError as exc:
        raise ActionFailedError(f"{source} answered in a shape this agent does not read: {_first(exc)}") from exc


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"


def _text(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))
