"""One supervised MCP client per backend server.

A backend's client is opened, used and closed in one owning task (`Backend.run`): the SDK's clients
hold cancel scopes that must stay in the task that entered them. Callers of a stdio or HTTP backend hand
their request to that task and await the answer; workers in the owner's task group run the requests
(one more starts whenever all are busy, so calls proceed in parallel; reusing workers halves the hand-off,
to about 20 µs). An in-process backend is called in the caller's own task, with no hop. When the
connection fails, pending calls fail with the backend named, the backend is marked down, and the owner
reconnects with backoff; the catalog (tools, resources, templates, prompts) it last saw is kept, so the
aggregate still lists the backend's tools and can say they are unavailable.

Changes a backend announces (tools/list_changed, resources/updated) reach `on_change`, in whichever
protocol era the backend speaks.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import jsonschema
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import Client
from mcp.client.subscriptions import ResourceUpdated
from mcp.shared.exceptions import MCPDeprecationWarning

from servers.common.auth import acting_as
from servers.common.clients import Target, connect, describe_error, refusal, subscribe_legacy

__all__ = ["Backend", "BackendUnavailableError", "Catalog", "Target"]

logger = logging.getLogger(__name__)

State = Literal["connecting", "up", "down"]
MAX_BACKOFF_SECONDS = 30.0
HEARTBEAT_SECONDS = 2.0
IDLE_WORKERS = 4  # request workers kept waiting per connected backend


class BackendUnavailableError(Exception):
    """The backend is not connected, broke during the call, or did not answer in time."""


@dataclass
class Catalog:
    """What a backend offers, as last listed; replaced whole on every refresh."""

    tools: list[types.Tool] = field(default_factory=list)
    resources: list[types.Resource] = field(default_factory=list)
    templates: list[types.ResourceTemplate] = field(default_factory=list)
    prompts: list[types.Prompt] = field(default_factory=list)
    _validators: dict[str, jsonschema.Draft202012Validator | None] = field(default_factory=dict, repr=False)

    def validator(self, tool: str) -> jsonschema.Draft202012Validator | None:
        """The checker of the tool's input schema, built once per catalog (None for an unknown tool)."""
        if tool not in self._validators:
            known = next((t for t in self.tools if t.name == tool), None)
            self._validators[tool] = None if known is None else jsonschema.Draft202012Validator(known.input_schema)
        return self._validators[tool]


Change = Callable[["Backend", str | None], Awaitable[None]]
"""on_change(backend, uri): uri None means the catalog changed; otherwise that resource did."""


@dataclass
class _Request:
    call: Callable[[Client], Awaitable[Any]]
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None
    error: BaseException | None = None


class Backend:
    def __init__(
        self,
        name: str,
        target: Target,
        *,
        timeout_seconds: float = 30.0,
        on_change: Change | None = None,
        retry_seconds: float = 1.0,
    ) -> None:
        self.name = name
        self.target = target
        self.timeout_seconds = timeout_seconds
        self.catalog = Catalog()
        self.catalog_version = 0  # bumped whenever the catalog is replaced, for caches keyed on it
        self.state: State = "connecting"
        self.error: str | None = None
        self.refusal: str | None = None
        """Why it is down, when retrying cannot cure it (servers.common.clients.refusal): a token refused, a server
        that did not prove it is the mesh's."""
        self._refused = anyio.Event()
        self.protocol_version: str | None = None
        self.connected_at: float | None = None
        self.subscriptions: set[str] = set()
        self._on_change = on_change
        self._retry_seconds = retry_seconds
        self._requests: MemoryObjectSendStream[_Request] | None = None
        self._in_process: Client | None = None  # the open in-memory client of an in-process backend
        self._up = anyio.Event()
        self.listening: frozenset[str] = frozenset()  # what the backend has acknowledged it will announce
        self._listening_changed = anyio.Event()
        self._resubscribe = anyio.Event()

    # the owning task

    async def run(self) -> None:
        """Keep the backend connected until cancelled."""
        backoff = self._retry_seconds
        while True:
            try:
                await self._session()
                backoff = self._retry_seconds
            except Exception as exc:
                self._mark_down(exc)
                logger.warning(
                    "backend %s (%s) is down: %s; retrying in %.0f s",
                    self.name,
                    self.target.describe(),
                    self.error,
                    backoff,
                )
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _session(self) -> None:
        send, receive = anyio.create_memory_object_stream[_Request](math.inf)
        changes_in, changes_out = anyio.create_memory_object_stream[str | None](256)

        async def on_message(message: Any) -> None:  # 2025-11-25: notifications arrive on the session
            lists = (
                types.ToolListChangedNotification,
                types.ResourceListChangedNotification,
                types.PromptListChangedNotification,
            )
            with suppress(anyio.WouldBlock):  # a full buffer already holds a refresh
                if isinstance(message, lists):
                    changes_in.send_nowait(None)
                elif isinstance(message, types.ResourceUpdatedNotification):
                    changes_in.send_nowait(str(message.params.uri))

        async with AsyncExitStack() as stack:
            for stream in (send, receive, changes_in, changes_out):
                stack.enter_context(stream)
            client = await stack.enter_async_context(self._client(on_message))
            self.protocol_version = client.protocol_version
            await self._refresh(client)
            self._requests, self.state, self.error, self.connected_at = send, "up", None, time.time()
            self.refusal, self._refused = None, anyio.Event()
            self._in_process = client if self.target.in_process else None
            self._up.set()
            logger.info("backend %s is up (%s, %s)", self.name, self.target.describe(), client.protocol_version)
            try:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._serve, client, receive, tasks)
                    tasks.start_soon(self._changes, client, changes_out)
                    if client.protocol_version >= "2026-07-28":
                        tasks.start_soon(self._listen, client, changes_in)
                    else:
                        await self._subscribe_legacy(client)
                        tasks.start_soon(self._heartbeat, client)
            finally:
                self._requests = self._in_process = None
                send.close()
                await self._fail_pending(receive)

    def _client(self, on_message: Any) -> AbstractAsyncContextManager[Client]:
        return connect(self.target, timeout_seconds=self.timeout_seconds, message_handler=on_message)

    async def _serve(self, client: Client, requests: MemoryObjectReceiveStream[_Request], tasks: Any) -> None:
        """Workers in the owning task's group take requests; one more starts whenever all are busy, so
        calls never queue behind each other and a quiet backend keeps only a few idle workers."""
        idle = 0

        async def worker() -> None:
            nonlocal idle
            with requests.clone() as mine:
                async for request in mine:
                    idle -= 1
                    if idle == 0:
                        tasks.start_soon(worker)
                        idle += 1
                    try:
                        request.result = await request.call(client)
                    except Exception as exc:
                        request.error = exc
                    finally:
                        request.done.set()
                    if idle >= IDLE_WORKERS:
                        return
                    idle += 1

        for _ in range(IDLE_WORKERS):
            tasks.start_soon(worker)
            idle += 1

    async def _fail_pending(self, requests: MemoryObjectReceiveStream[_Request]) -> None:
        while True:
            try:
                request = requests.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                return
            request.error = BackendUnavailableError(f"backend {self.name} disconnected")
            request.done.set()

    async def _changes(self, client: Client, changes: MemoryObjectReceiveStream[str | None]) -> None:
        async for uri in changes:
            if uri is None:
                await self._refresh(client)
            if self._on_change is not None:
                await self._on_change(self, uri)

    async def _listen(self, client: Client, changes: MemoryObjectSendStream[str | None]) -> None:
        """2026-07-28: one listen stream for list changes and the resources someone follows; opened again
        with the new set whenever someone follows another resource."""
        while True:
            self._resubscribe = anyio.Event()
            wanted = frozenset(self.subscriptions)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._pump, client, wanted, changes)
                await self._resubscribe.wait()
                tasks.cancel_scope.cancel()

    async def _pump(self, client: Client, wanted: frozenset[str], changes: MemoryObjectSendStream[str | None]) -> None:
        async with client.listen(
            tools_list_changed=True,
            prompts_list_changed=True,
            resources_list_changed=True,
            resource_subscriptions=sorted(wanted),
        ) as events:
            self._listening(wanted)
            async for event in events:
                with suppress(anyio.WouldBlock):
                    changes.send_nowait(event.uri if isinstance(event, ResourceUpdated) else None)

    def _listening(self, uris: frozenset[str]) -> None:
        self.listening = uris
        self._listening_changed.set()
        self._listening_changed = anyio.Event()

    async def _heartbeat(self, client: Client) -> None:
        """2025-11-25: a ping every few seconds notices a backend that went away between calls (2026-era
        connections notice it through their listen stream)."""
        while True:
            await anyio.sleep(HEARTBEAT_SECONDS)
            with anyio.fail_after(self.timeout_seconds), warnings.catch_warnings():
                warnings.simplefilter("ignore", MCPDeprecationWarning)  # deprecated in 2026, not in this era
                await client.send_ping()

    async def _subscribe_legacy(self, client: Client) -> None:
        for uri in sorted(self.subscriptions):
            await subscribe_legacy(client, uri)

    async def _refresh(self, client: Client) -> None:
        capabilities = client.server_capabilities
        catalog = Catalog()
        if capabilities.tools is not None:
            catalog.tools = (await client.list_tools()).tools
        if capabilities.resources is not None:
            catalog.resources = (await client.list_resources()).resources
            catalog.templates = (await client.list_resource_templates()).resource_templates
        if capabilities.prompts is not None:
            catalog.prompts = (await client.list_prompts()).prompts
        self.catalog = catalog
        self.catalog_version += 1

    def _mark_down(self, exc: BaseException) -> None:
        self.state = "down"
        self._up = anyio.Event()
        self.error = describe_error(exc)
        found = refusal(exc)
        self.refusal = None if found is None else str(found)
        if found is not None:
            self._refused.set()

    async def wait_refused(self) -> None:
        """Until it is refused in a way retrying cannot cure (see `refusal`)."""
        await self._refused.wait()

    # callers

    async def request(self, call: Callable[[Client], Awaitable[Any]], *, limit: float | None = None) -> Any:
        """Run `call` with the backend's client in its owning task; its result.

        Raises:
            BackendUnavailableError: not connected, disconnected during the call, or no answer within the timeout.
        """
        limit = self.timeout_seconds if limit is None else limit
        requests = self._requests
        if requests is None or self.state != "up":
            raise BackendUnavailableError(f"backend {self.name} is unavailable ({self.error or 'connecting'})")
        if self._in_process is not None:
            # the 2026 era calls an in-process server in the caller's task: it acts as the target's principal
            principal = self.target.principal
            with acting_as(principal) if principal is not None else nullcontext():
                return await self._direct(self._in_process, call, limit)
        request = _Request(call)
        try:
            requests.send_nowait(request)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise BackendUnavailableError(
                f"backend {self.name} is unavailable ({self.error or 'reconnecting'})"
            ) from None
        with anyio.move_on_after(limit) as waited:
            await request.done.wait()
        if waited.cancelled_caught:
            raise BackendUnavailableError(f"backend {self.name} did not answer within {limit:g} s")
        if request.error is not None:
            raise request.error
        return request.result

    async def _direct(self, client: Client, call: Callable[[Client], Awaitable[Any]], limit: float) -> Any:
        """An in-process backend, called in the caller's task: no hop when co-located. Safe because its
        in-memory client, once open, keeps no per-task state; the owning task still opens and closes it."""
        with anyio.move_on_after(limit) as waited:
            try:
                return await call(client)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
                raise BackendUnavailableError(f"backend {self.name} disconnected") from None
        assert waited.cancelled_caught
        raise BackendUnavailableError(f"backend {self.name} did not answer within {limit:g} s")

    async def wait_up(self, seconds: float) -> bool:
        with anyio.move_on_after(seconds):
            await self._up.wait()
            return True
        return False

    async def follow(self, uri: str, *, within: float = 2.0) -> None:
        """Ask the backend to announce changes to `uri` (kept across reconnections); returns once it has
        acknowledged, or after `within` seconds."""
        new = uri not in self.subscriptions
        self.subscriptions.add(uri)
        if self.state != "up" or self.protocol_version is None:
            return  # followed from the next connection on
        if self.protocol_version < "2026-07-28":
            if new:
                await self.request(lambda client: subscribe_legacy(client, uri))
            return
        with anyio.move_on_after(within):
            while uri not in self.listening:
                self._resubscribe.set()
                await self._listening_changed.wait()
