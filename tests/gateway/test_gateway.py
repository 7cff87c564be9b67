"""The gateway with real backend servers: names, error planes, timeouts, a backend failing and coming
back, list changes and resource updates forwarded to hosts of both eras."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.subscriptions import ResourceUpdated, ToolsListChanged
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from pydantic import Field

from gateway.aggregate import HEALTH_URI, Gateway, build_aggregate
from gateway.backends import Backend, Target
from gateway.naming import MAX_NAME, qualified
from servers.common.errors import MeshError
from servers.common.feed import ChangeFeed
from servers.common.gate import FORBIDDEN
from servers.common.surface import new_server
from servers.common.transports import http_app, serving
from tests.helpers import ERAS, OPEN_SCOPES, call, eventually, refused, scaled

pytestmark = pytest.mark.anyio


def echo_server(name: str = "echo") -> tuple[MCPServer[Any], ChangeFeed]:
    feed = ChangeFeed()
    server = new_server(name, title=name, instructions="test backend", feed=feed, scopes=OPEN_SCOPES)

    @server.tool()
    async def echo(text: Annotated[str, Field(max_length=10)], times: int = 1) -> dict[str, str]:
        """Say it back."""
        return {"said": text * times}

    @server.tool()
    async def fail() -> str:
        """A tool error."""
        raise MeshError("the echo went wrong")

    @server.tool()
    async def forbidden() -> str:
        """A protocol error."""
        raise MCPError(FORBIDDEN, "this tool needs the echo:admin scope")

    @server.tool()
    async def slow(seconds: float) -> str:
        """Takes its time."""
        await anyio.sleep(seconds)
        return "done"

    @server.tool()
    async def work(steps: int, ctx: Context) -> str:
        """Reports its progress."""
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step}")
        return "worked"

    @server.tool()
    async def ring(uri: str) -> str:
        """Announce that `uri` changed."""
        await feed.publish([uri])
        return "rung"

    @server.resource(f"{name}://state", mime_type="application/json")
    async def state() -> str:
        """Some state."""
        return json.dumps({"ok": True})

    @server.resource(f"{name}://items/{{item}}", mime_type="application/json")
    async def item(item: str) -> str:
        """One item."""
        return json.dumps({"item": item})

    @server.prompt()
    def greet(who: str) -> str:
        """A greeting."""
        return f"Hello, {who}"

    return server, feed


@dataclass
class Mesh:
    gateway: Gateway
    aggregate: Any
    echo: MCPServer[Any]


@pytest.fixture
async def mesh(era: str) -> AsyncIterator[Mesh]:
    echo, _ = echo_server()
    other, _ = echo_server("other")
    backends = {
        "echo": Backend("echo", Target(server=echo, mode=ERAS[era]), timeout_seconds=1.0),
        "other": Backend("other", Target(server=other, mode=ERAS[era])),
    }
    gateway = Gateway(backends)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(gateway.run)
        assert await gateway.wait_ready(scaled(5))
        yield Mesh(gateway, build_aggregate(gateway), echo)
        tasks.cancel_scope.cancel()


@pytest.fixture
async def host(mesh: Mesh, era: str) -> AsyncIterator[Client]:
    async with Client(mesh.aggregate, mode=ERAS[era]) as client:  # type: ignore[arg-type]
        yield client


def test_names_are_stable_and_short() -> None:
    assert qualified("wallet", "execute_payment") == "wallet_execute_payment"
    long = qualified("salesforce", "x" * 80)
    assert len(long) == MAX_NAME and long == qualified("salesforce", "x" * 80) and long.startswith("salesforce_xxx")
    assert qualified("salesforce", "x" * 80) != qualified("salesforce", "x" * 81)


async def test_every_backend_tool_resource_and_prompt_is_listed_under_its_server(host: Client) -> None:
    names = {tool.name for tool in (await host.list_tools()).tools}
    assert {"echo_echo", "echo_fail", "other_echo", "other_slow"} <= names
    resources = {str(r.uri) for r in (await host.list_resources()).resources}
    assert {"echo://state", "other://state", HEALTH_URI} <= resources
    templates = {t.uri_template for t in (await host.list_resource_templates()).resource_templates}
    assert {"echo://items/{item}", "other://items/{item}"} <= templates
    assert {p.name for p in (await host.list_prompts()).prompts} == {"echo_greet", "other_greet"}
    prompt = await host.get_prompt("other_greet", {"who": "Ada"})
    assert "Hello, Ada" in prompt.messages[0].content.text  # type: ignore[union-attr]


async def test_calls_and_reads_are_routed_to_their_backend(host: Client) -> None:
    assert (await call(host, "echo_echo", text="hi", times=2)) == {"said": "hihi"}
    read = await host.read_resource("other://items/42")
    assert json.loads(read.contents[0].text) == {"item": "42"}  # type: ignore[union-attr]
    health = json.loads((await host.read_resource(HEALTH_URI)).contents[0].text)  # type: ignore[union-attr]
    assert health["status"] == "ok" and health["backends"]["echo"]["state"] == "up"


async def test_errors_stay_on_their_plane_and_name_the_backend(host: Client) -> None:
    assert await refused(host, "echo_fail") == "[echo] Error executing tool fail: the echo went wrong"
    message = await refused(host, "echo_echo", text="far too long for it")
    assert "arguments for echo_echo do not match its schema: text:" in message
    assert "is too long" in message
    assert "no tool 'nope_nope' in the mesh" in await refused(host, "nope_nope")
    with pytest.raises(MCPError) as caught:
        await host.call_tool("echo_forbidden", {})
    assert caught.value.code == FORBIDDEN and caught.value.message.startswith("backend echo:")
    assert "backend echo did not answer within 1 s" in await refused(host, "echo_slow", seconds=3)
    assert (await call(host, "other_slow", seconds=0)) == {"result": "done"}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
async def test_nan_and_infinity_are_refused_before_the_backend_hears_of_them(mesh: Mesh, value: float) -> None:
    # As they arrive from an HTTP host (JSON-RPC parsing takes the NaN literal); jsonschema calls them numbers.
    result = await mesh.gateway.call_tool("other_slow", {"seconds": value})
    assert result.is_error and result.content[0].text == (  # type: ignore[union-attr]
        f"arguments for other_slow: seconds is {value}, which is not a JSON number; send a finite number"
    )
    nested = await mesh.gateway.call("echo", "echo", {"text": "hi", "times": 1, "extra": {"deep": [1, value]}})
    assert nested.is_error and "extra/deep/1 is" in nested.content[0].text  # type: ignore[union-attr]


async def test_calls_to_one_backend_run_in_parallel(mesh: Mesh) -> None:
    began = anyio.current_time()
    async with anyio.create_task_group() as tasks:
        for _ in range(12):  # more than the idle workers: new ones start
            tasks.start_soon(mesh.gateway.call_tool, "other_slow", {"seconds": 0.5})
    assert anyio.current_time() - began < 0.5 + scaled(1)  # one after another: 6 s


async def test_backend_progress_reaches_the_host(host: Client) -> None:
    heard: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append((progress, total, message))

    result = await host.call_tool("echo_work", {"steps": 3}, progress_callback=on_progress)
    assert not result.is_error
    assert heard == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


async def test_host_following_a_backend_resource_hears_its_updates(mesh: Mesh, era: str) -> None:
    async with Client(mesh.aggregate, mode=ERAS[era]) as watcher, Client(mesh.aggregate, mode=ERAS[era]) as actor:  # type: ignore[arg-type]
        if watcher.protocol_version >= "2026-07-28":
            async with watcher.listen(resource_subscriptions=["echo://state"]) as events:
                await eventually(lambda: _followed(mesh, "echo://state"))
                await call(actor, "echo_ring", uri="echo://state")
                with anyio.fail_after(scaled(5)):
                    event = await events.__anext__()
                assert isinstance(event, ResourceUpdated) and event.uri == "echo://state"
        else:
            heard = anyio.Event()

            async def on_message(message: Any) -> None:
                if getattr(getattr(message, "params", None), "uri", None) == "echo://state":
                    heard.set()

            async with Client(mesh.aggregate, mode="legacy", message_handler=on_message) as legacy:  # type: ignore[arg-type]
                import warnings

                from mcp.shared.exceptions import MCPDeprecationWarning

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MCPDeprecationWarning)
                    await legacy.session.subscribe_resource("echo://state")
                await call(actor, "echo_ring", uri="echo://state")
                with anyio.fail_after(scaled(5)):
                    await heard.wait()


async def _followed(mesh: Mesh, uri: str) -> bool:
    return uri in mesh.gateway.backends["echo"].subscriptions


async def test_a_backend_that_goes_down_is_named_and_comes_back(era: str) -> None:
    server, _ = echo_server("flaky")
    app = http_app(server, "http")
    async with serving(app, lifespan=True, name="flaky backend") as url:
        port = int(url.rsplit(":", 1)[1])
    steady, _ = echo_server()
    backends = {
        "flaky": Backend("flaky", Target(url=f"http://127.0.0.1:{port}/mcp", mode=ERAS[era]), retry_seconds=0.1),
        "echo": Backend("echo", Target(server=steady, mode=ERAS[era])),
    }
    gateway = Gateway(backends)
    aggregate = build_aggregate(gateway)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(gateway.run)
        assert not await gateway.wait_ready(1)  # flaky is not listening yet
        async with Client(aggregate, mode=ERAS[era]) as host:  # type: ignore[arg-type]
            assert (await call(host, "echo_echo", text="still"))["said"] == "still"  # the rest of the mesh works
            health = json.loads((await host.read_resource(HEALTH_URI)).contents[0].text)  # type: ignore[union-attr]
            assert health["status"] == "degraded" and health["backends"]["flaky"]["state"] == "down"
            async with serving(http_app(server, "http"), port=port, lifespan=True, name="flaky backend"):
                assert await gateway.wait_ready(scaled(10))
                assert (await call(host, "flaky_echo", text="back"))["said"] == "back"
            await eventually(lambda: _down(gateway, "flaky"))
            message = await refused(host, "flaky_echo", text="gone")
            assert "backend flaky is unavailable" in message
            listed = {t.name: t.description for t in (await host.list_tools()).tools}
            assert "[unavailable: backend flaky is down]" in (listed["flaky_echo"] or "")
        tasks.cancel_scope.cancel()


async def _down(gateway: Gateway, name: str) -> bool:
    return gateway.backends[name].state == "down"


async def test_hosts_hear_the_tool_list_change_when_a_backend_comes_and_goes(era: str) -> None:
    server, _ = echo_server("flaky")
    async with serving(http_app(server, "http"), lifespan=True, name="flaky backend") as url:
        port = int(url.rsplit(":", 1)[1])
    gateway = Gateway({"flaky": Backend("flaky", Target(url=f"http://127.0.0.1:{port}/mcp"), retry_seconds=0.1)})
    aggregate = build_aggregate(gateway)
    heard = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            heard.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(gateway.run)
        async with Client(aggregate, mode=ERAS[era], message_handler=on_message) as host:  # type: ignore[arg-type]
            await host.list_tools()  # a 2025-era host is known to the gateway from its first request
            if host.protocol_version >= "2026-07-28":
                async with (
                    host.listen(tools_list_changed=True) as events,
                    serving(http_app(server, "http"), port=port, lifespan=True),
                ):
                    with anyio.fail_after(scaled(10)):
                        while "flaky_echo" not in {tool.name for tool in (await host.list_tools()).tools}:
                            assert isinstance(await events.__anext__(), ToolsListChanged)  # each one refreshes
            else:
                async with serving(http_app(server, "http"), port=port, lifespan=True):
                    with anyio.fail_after(scaled(10)):
                        await heard.wait()
                    await gateway.wait_ready(scaled(5))
                    assert "flaky_echo" in {tool.name for tool in (await host.list_tools()).tools}
        tasks.cancel_scope.cancel()
