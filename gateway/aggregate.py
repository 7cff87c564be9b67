"""The gateway: many backend MCP servers behind one, and the same routing as a library.

`Gateway` is the library: it owns the supervised backends (gateway.backends), names their tools and
prompts `<server>_<tool>` (gateway.naming), routes calls and reads, checks arguments against the
backend's input schema before forwarding, and keeps every error on its plane:

- a backend's tool error stays a tool error, its text prefixed with the backend's name;
- an unreachable or slow backend is a tool error naming it and the timeout;
- a backend's protocol error (an MCPError, such as a missing scope) stays a protocol error, named.

`build_aggregate(gateway)` serves it as one MCP server (both eras): tools, resources, templates and
prompts merged; `mesh://health`; progress relayed; list changes and resource updates forwarded to hosts, who may follow
any backend resource. One backend down never takes the aggregate down: its tools stay listed, say they
are unavailable, and come back when it does (hosts hear tools/list_changed both times).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import jsonschema
import mcp_types as types
from mcp import Client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.subscriptions import ListenHandler
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ToolsListChanged

from gateway.backends import Backend, BackendUnavailableError
from gateway.delegation import Delegation
from gateway.naming import qualified
from servers.common.feed import ChangeFeed
from servers.common.surface import package_version

logger = logging.getLogger(__name__)

HEALTH_URI = "mesh://health"


class Gateway:
    def __init__(self, backends: Mapping[str, Backend], *, delegation: Delegation | None = None) -> None:
        self.backends = dict(backends)
        self.delegation = delegation  # without it, backends see the gateway's own connection (a trusted host's)
        self.feed = ChangeFeed(on_subscribe=self.follow)
        self._connections: set[Any] = set()  # 2025-era hosts, for list_changed
        self._watchers: list[Callable[[str], Awaitable[None]]] = []
        self._routes: dict[str, tuple[Backend, types.Tool]] = {}
        self._routes_key: tuple[int, ...] = ()
        for backend in self.backends.values():
            backend._on_change = self._changed  # the gateway hears every backend's changes
        self._states = {name: backend.state for name, backend in self.backends.items()}

    async def run(self) -> None:
        """Keep every backend connected until cancelled."""
        async with anyio.create_task_group() as tasks:
            for backend in self.backends.values():
                tasks.start_soon(backend.run)
            tasks.start_soon(self._watch_states)

    async def wait_ready(self, seconds: float) -> bool:
        """True once every backend is up (False when `seconds` pass first)."""
        with anyio.move_on_after(seconds):
            for backend in self.backends.values():
                await backend.wait_up(seconds)
            return all(backend.state == "up" for backend in self.backends.values())
        return False

    # names

    def routes(self) -> dict[str, tuple[Backend, types.Tool]]:
        """Every tool by its mesh name; rebuilt only when a backend's catalog was replaced."""
        key = tuple(backend.catalog_version for backend in self.backends.values())
        if key != self._routes_key:
            self._routes = {
                qualified(name, tool.name): (backend, tool)
                for name, backend in self.backends.items()
                for tool in backend.catalog.tools
            }
            self._routes_key = key
        return self._routes

    def tools(self) -> list[types.Tool]:
        listed = []
        for name, (backend, tool) in self.routes().items():
            description = tool.description or ""
            if backend.state != "up":
                description = f"[unavailable: backend {backend.name} is {backend.state}] {description}"
            listed.append(tool.model_copy(update={"name": name, "description": f"[{backend.name}] {description}"}))
        return listed

    # calls

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None = None, *, progress: ProgressFnT | None = None
    ) -> types.CallToolResult:
        """Call `<server>_<tool>` with the backend's answer, or a tool error naming what went wrong. The
        backend's progress reports reach `progress`."""
        route = self.routes().get(name)
        if route is None:
            return _tool_error(f"no tool {name!r} in the mesh; tools are named <server>_<tool>")
        backend, tool = route
        return await self.call(backend.name, tool.name, dict(arguments or {}), progress=progress)

    async def call(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        progress: ProgressFnT | None = None,
    ) -> types.CallToolResult:
        """`tool` of backend `server`, its arguments checked against the tool's schema first."""
        backend = self.backends.get(server)
        if backend is None:
            return _tool_error(f"no backend {server!r}; known: {', '.join(sorted(self.backends))}")
        not_json = _not_json_number(arguments)
        if not_json is not None:  # jsonschema takes NaN for a number; sent on, it would arrive as null
            where, value = not_json
            return _tool_error(
                f"arguments for {qualified(server, tool)}: {where} is {value}, which is not a JSON number;"
                " send a finite number"
            )
        validator = backend.catalog.validator(tool)
        if validator is not None and not validator.is_valid(arguments):
            problem = _problem(validator, arguments)
            return _tool_error(f"arguments for {qualified(server, tool)} do not match its schema: {problem}")
        try:
            meta = self._on_behalf(server)
            result: types.CallToolResult = await backend.request(
                lambda client: client.call_tool(tool, arguments, progress_callback=progress, meta=meta)
            )
        except BackendUnavailableError as exc:
            return _tool_error(str(exc))
        except MCPError as exc:
            raise MCPError(exc.code, f"backend {server}: {exc.message}", exc.data) from exc
        except Exception:  # a transport broke mid-call: the host hears what to do, the log has the cause
            logger.exception("backend %s failed %s", server, tool)
            return _tool_error(
                f"backend {server} broke off during {tool}, so whether it took effect is unknown; check its "
                "state before repeating it, or repeat it with the same idempotency key"
            )
        if result.is_error:
            content = [
                block.model_copy(update={"text": f"[{server}] {block.text}"})
                if isinstance(block, types.TextContent)
                else block
                for block in result.content
            ]
            result = result.model_copy(update={"content": content})
        return result

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        if uri == HEALTH_URI:
            return types.ReadResourceResult(
                contents=[
                    types.TextResourceContents(uri=uri, mime_type="application/json", text=json.dumps(self.health()))
                ]
            )
        backend = self._owner(uri)
        try:
            meta = self._on_behalf(backend.name)
            result: types.ReadResourceResult = await backend.request(
                lambda client: client.read_resource(uri, meta=meta)
            )
        except BackendUnavailableError as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from exc
        except MCPError as exc:
            raise MCPError(exc.code, f"backend {backend.name}: {exc.message}", exc.data) from exc
        return result

    def _on_behalf(self, backend: str) -> Any:
        return None if self.delegation is None else self.delegation.meta(backend)

    async def follow(self, uri: str) -> None:
        """Have the owning backend announce changes to `uri`."""
        if uri != HEALTH_URI:
            await self._owner(uri).follow(uri)

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok" if all(b.state == "up" for b in self.backends.values()) else "degraded",
            "backends": {
                name: {
                    "state": backend.state,
                    "target": backend.target.describe(),
                    "protocol_version": backend.protocol_version,
                    "error": backend.error,
                    "tools": len(backend.catalog.tools),
                    "up_since": backend.connected_at if backend.state == "up" else None,
                }
                for name, backend in self.backends.items()
            },
            "checked_at": time.time(),
        }

    def _owner(self, uri: str) -> Backend:
        for backend in self.backends.values():
            if any(str(resource.uri) == uri for resource in backend.catalog.resources):
                return backend
        for backend in self.backends.values():
            if any(_template_matches(template.uri_template, uri) for template in backend.catalog.templates):
                return backend
        scheme = uri.split("://", 1)[0]
        if scheme in self.backends:
            return self.backends[scheme]
        # resource not found (SEP-2164): invalid params, with the URI in the error data
        raise MCPError(types.INVALID_PARAMS, f"no backend serves {uri}", {"uri": uri})

    # change propagation

    def watch(self, on_update: Callable[[str], Awaitable[None]]) -> Callable[[], None]:
        """Have `on_update(uri)` hear every followed resource's change (in-process users, such as the
        replica); returns what stops it."""
        self._watchers.append(on_update)
        return lambda: self._watchers.remove(on_update)

    async def _changed(self, backend: Backend, uri: str | None) -> None:
        if uri is not None:
            await self.feed.publish([uri])
            for on_update in list(self._watchers):
                try:
                    await on_update(uri)
                except Exception:
                    logger.exception("a watcher of %s failed", uri)
            return
        await self._announce_lists()

    async def _announce_lists(self) -> None:
        for event in (ToolsListChanged(), ResourcesListChanged(), PromptsListChanged()):
            await self.feed.bus.publish(event)
        for connection in list(self._connections):
            with anyio.move_on_after(2):
                await connection.send_tool_list_changed()
                await connection.send_resource_list_changed()
                await connection.send_prompt_list_changed()

    async def _watch_states(self) -> None:
        """A backend going down or coming back changes what the aggregate lists: tell the hosts."""
        while True:
            await anyio.sleep(0.1)
            states = {name: backend.state for name, backend in self.backends.items()}
            if states != self._states:
                self._states = states
                await self._announce_lists()

    def seen(self, ctx: ServerRequestContext[Any]) -> None:
        """Remember a 2025-era host's connection, to send it list changes."""
        connection = getattr(ctx.session, "_connection", None)  # mcp 2.3 exposes it only privately
        legacy = not (ctx.protocol_version or "").startswith("2026")
        if connection is not None and legacy and connection not in self._connections:
            self._connections.add(connection)
            connection.exit_stack.callback(self._connections.discard, connection)


def build_aggregate(gateway: Gateway, *, name: str = "stateset-mesh") -> Server[Any]:
    """The gateway as one MCP server, in both protocol eras."""
    listen = ListenHandler(gateway.feed.bus)

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        gateway.seen(ctx)
        return types.ListToolsResult(tools=gateway.tools())

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        gateway.seen(ctx)
        # report_progress is a no-op when the host asked for none (and in-process hosts carry no token to check)
        return await gateway.call_tool(params.name, params.arguments, progress=ctx.session.report_progress)

    async def list_resources(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        gateway.seen(ctx)
        resources = [
            types.Resource(uri=HEALTH_URI, name="mesh-health", title="Mesh health", mime_type="application/json")
        ]
        for backend in gateway.backends.values():
            resources += backend.catalog.resources
        return types.ListResourcesResult(resources=resources)

    async def list_templates(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        templates = [t for backend in gateway.backends.values() for t in backend.catalog.templates]
        return types.ListResourceTemplatesResult(resource_templates=templates)

    async def read_resource(
        ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        return await gateway.read_resource(str(params.uri))

    async def list_prompts(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        prompts = [
            prompt.model_copy(update={"name": qualified(name, prompt.name)})
            for name, backend in gateway.backends.items()
            for prompt in backend.catalog.prompts
        ]
        return types.ListPromptsResult(prompts=prompts)

    async def get_prompt(ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams) -> types.GetPromptResult:
        for name, backend in gateway.backends.items():
            for prompt in backend.catalog.prompts:
                if qualified(name, prompt.name) == params.name:

                    async def get(client: Client, original: str = prompt.name) -> types.GetPromptResult:
                        return await client.get_prompt(original, params.arguments)

                    try:
                        result: types.GetPromptResult = await backend.request(get)
                    except BackendUnavailableError as exc:
                        raise MCPError(types.INTERNAL_ERROR, str(exc)) from exc
                    return result
        raise MCPError(types.INVALID_PARAMS, f"no prompt {params.name!r} in the mesh")

    async def subscriptions_listen(
        ctx: ServerRequestContext[Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        for uri in params.notifications.resource_subscriptions or []:
            try:
                await gateway.follow(uri)
            except (MCPError, BackendUnavailableError) as exc:
                logger.info("a host follows %s, which no connected backend serves yet: %s", uri, exc)
        return await listen(ctx, params)

    def tool_input_schema(tool_name: str) -> dict[str, Any] | None:
        """For the SDK's check of 2026 Mcp-Param-* headers; without it the SDK lists every tool per call."""
        route = gateway.routes().get(tool_name)
        return None if route is None else route[1].input_schema

    server: Server[Any] = Server(
        name,
        get_tool_input_schema=tool_input_schema,
        version=package_version(),
        title="StateSet Agent Mesh",
        instructions="Every StateSet server's tools as <server>_<tool>: wallet_execute_payment, "
        "governance_evaluate_action, reputation_get_reputation, discovery_find_agents, salesforce_create_lead, "
        "sap_create_purchase_order, ... Read mesh://health for which servers are up.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_subscriptions_listen=subscriptions_listen,
    )
    gateway.feed.attach(server)
    return server


def _tool_error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def _problem(validator: jsonschema.Draft202012Validator, arguments: Mapping[str, Any]) -> str:
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(arguments)))
    if error is None:
        return "(no detail)"
    where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
    return f"{where}: {error.message}"


def _not_json_number(arguments: Mapping[str, Any]) -> tuple[str, float] | None:
    """Where the arguments hold NaN or ±Infinity (JSON has neither), and the value; None when they hold none."""
    stack: list[tuple[str, Any]] = [(key, value) for key, value in arguments.items()]
    while stack:
        where, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return where, value
        if isinstance(value, Mapping):
            stack.extend((f"{where}/{key}", item) for key, item in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((f"{where}/{index}", item) for index, item in enumerate(value))
    return None


def _template_matches(template: str, uri: str) -> bool:
    pattern = re.escape(template)
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
    return re.fullmatch(pattern, uri) is not None
