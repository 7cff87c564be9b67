"""The mesh as an agent reaches it: tool calls and resource reads through the gateway, read into the servers'
own pydantic models.

Every answer is validated against the model the server itself returns (`servers.wallet.models.Balance`,
`servers.governance.models.Decision`, ...), so a renamed or retyped field is a mypy error in the agent,
and an answer in a shape the agent does not read (a mesh of another version) is a clear failure naming
the tool, never a KeyError halfway through a payment.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import mcp_types as types
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, TypeAdapter, ValidationError

from gateway.aggregate import Gateway
from gateway.sync import StateSync

M = TypeVar("M", bound=BaseModel)


class ActionFailedError(Exception):
    """A tool refused or failed, or answered in a shape the agent does not read; the message names the tool."""


class MeshClient:
    """Tools and resources of the mesh. Resources come from the agent's replica when it has one (followed on
    first use, kept current by the backends' change notifications), else straight through the gateway."""

    def __init__(self, gateway: Gateway, sync: StateSync | None = None) -> None:
        self.gateway = gateway
        self.sync = sync

    async def call(self, server: str, tool: str, answer: type[M], **arguments: Any) -> M:
        """`server`'s `tool` with `arguments` (None values left out); its structured result as `answer`.

        Raises:
            ActionFailedError: the tool error, or an answer that is not an `answer`, naming the tool.
        """
        arguments = {key: value for key, value in arguments.items() if value is not None}
        result = await self.gateway.call(server, tool, arguments)
        if result.is_error:
            raise ActionFailedError(f"{server}_{tool}: {_text(result)}")
        content = result.structured_content
        if content is None:
            raise ActionFailedError(f"{server}_{tool} answered without structured content: {_text(result)[:200]}")
        return _parse(f"{server}_{tool}", answer, content)

    async def read(self, uri: str, shape: type[M], *, fresh: bool = False) -> M:
        """The JSON resource at `uri` as `shape`, from the replica (`fresh` reads it again now).

        Raises:
            ActionFailedError: no backend serves it, or it is not a `shape`.
        """
        if self.sync is None:
            return _parse(uri, shape, await self.read_json(uri))
        try:
            replica = self.sync.get(uri)
            if replica is None:
                replica = await self.sync.follow(uri)
            elif fresh:
                replica = await self.sync.refresh(uri)
        except MCPError as exc:
            raise ActionFailedError(f"reading {uri}: {exc.message}") from exc
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
            ActionFailedError: no backend serves it, or it is not JSON.
        """
        try:
            result = await self.gateway.read_resource(uri)
        except MCPError as exc:
            raise ActionFailedError(f"reading {uri}: {exc.message}") from exc
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
