"""What every server's MCP surface shares: construction, tool annotations, resource encoding, and how
caller mistakes are answered.

A caller mistake gets one sentence naming the value and what is allowed, on its plane: bad tool
arguments a tool error (without pydantic's banner, error codes and links), a bad or unknown resource
URI or an unknown prompt the invalid-params error (-32602).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, GetPromptResult, InputRequiredResult, ToolAnnotations
from pydantic import BaseModel, TypeAdapter, ValidationError

from servers.common.changes import ChangePage
from servers.common.errors import InvalidInputError, MeshError, NotFoundError
from servers.common.feed import ChangeFeed
from servers.common.gate import Gate, ToolScopes

if TYPE_CHECKING:
    from servers.common.auth import TrustRoot


def package_version() -> str:
    try:
        return metadata.version("stateset-mesh")
    except metadata.PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0"


class MeshServer(MCPServer[Any]):
    """An `MCPServer` behind its gate (servers.common.gate), answering caller mistakes in one sentence, on the
    right plane."""

    def __init__(self, name: str, *, gate: Gate, **options: Any) -> None:
        super().__init__(name, middleware=[gate], **options)
        self.gate = gate

    def add_tool(self, fn: Callable[..., Any], name: str | None = None, *args: Any, **options: Any) -> None:
        tool = name or fn.__name__
        if tool not in self.gate.scopes:  # a tool without a scope would be open to everyone
            raise RuntimeError(f"the {self.name} server declares no scope for its tool {tool}")
        super().add_tool(fn, name, *args, **options)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            # The SDK wraps arguments that fail validation (and only those) around pydantic's ValidationError.
            if isinstance(exc, UnexpectedToolError) or not isinstance(exc.__cause__, ValidationError):
                raise
            raise ToolError(f"Error executing tool {name}: {argument_problems(exc.__cause__)}") from exc.__cause__

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        known = sorted(prompt.name for prompt in await self.list_prompts())
        if name not in known:  # the SDK reports it as a crash (-32603)
            raise MCPError(INVALID_PARAMS, f"no prompt {name!r} here; prompts: {', '.join(known) or 'none'}")
        return await super().get_prompt(name, arguments, context)


def argument_problems(error: ValidationError) -> str:
    """What is wrong with a tool's arguments: one sentence per problem, naming the argument, the value
    and what is allowed."""
    problems = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(part) for part in problem["loc"]) or "the arguments"
        cause = (problem.get("ctx") or {}).get("error")
        if problem["type"] in ("value_error", "assertion_error") and cause is not None:
            problems.append(str(cause))  # our validators' own sentence (InvalidInputError): value and rule
        elif problem["type"] == "missing":
            problems.append(f"{where} is required")
        elif problem["type"] == "extra_forbidden":
            problems.append(f"{where} is not a known argument or field")
        elif problem["type"] in ("string_too_long", "too_long"):  # pydantic names the limit, not always the size
            unit = "characters" if problem["type"] == "string_too_long" else "items"
            size, limit = len(problem["input"]), problem["ctx"]["max_length"]
            problems.append(
                f"{where} {_shown(problem['input'])} holds {size} {unit}; at most {limit} {unit} are accepted"
            )
        else:
            problems.append(f"{where} {_shown(problem['input'])}: {problem['msg'][:1].lower()}{problem['msg'][1:]}")
    return "; ".join(problems)


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def new_server(
    name: str,
    *,
    title: str,
    instructions: str,
    feed: ChangeFeed,
    scopes: ToolScopes,
    trust: TrustRoot | None = None,
) -> MCPServer[Any]:
    """An `MCPServer` whose resource updates reach subscribers of both protocol eras through `feed`, each of
    whose tools needs the scope `scopes` names. `trust` checks the tokens of callers the gateway acts for."""
    server: MCPServer[Any] = MeshServer(
        name,
        gate=Gate(name, scopes, trust),
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


def to_json(value: BaseModel | list[Any]) -> str:
    """A resource body: the same JSON a tool's structured output carries."""
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return TypeAdapter(list[Any]).dump_json(value).decode()


@contextmanager
def resource_errors() -> Iterator[None]:
    """Report our errors on the resource plane: a caller's mistake in the URI (an unknown id, a malformed
    value) as not-found (-32602, SEP-2164), the rest as -32603."""
    try:
        yield
    except (NotFoundError, InvalidInputError) as exc:
        raise ResourceNotFoundError(str(exc)) from exc
    except MeshError as exc:
        raise ResourceError(str(exc)) from exc


# The largest sequence number SQLite stores (a signed 64-bit integer).
_CURSOR = re.compile(r"[0-9]{1,19}")
MAX_CURSOR = 2**63 - 1


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
            if not _CURSOR.fullmatch(after) or int(after) > MAX_CURSOR:
                raise InvalidInputError(
                    f"cursor {after!r} is not a sequence number (0 to {MAX_CURSOR})",
                    hint="use 0 to read from the start",
                )
            return to_json(await page(int(after)))
