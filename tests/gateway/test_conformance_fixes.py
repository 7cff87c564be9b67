"""What the MCP conformance suite (.ci/conformance) found in the aggregate gateway, shown through the SDK's
client in both protocol eras."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from gateway.aggregate import Gateway, build_aggregate
from gateway.backends import Backend, Target
from servers.common.feed import ChangeFeed
from servers.common.surface import new_server
from tests.helpers import ERAS, OPEN_SCOPES, scaled

pytestmark = pytest.mark.anyio


@pytest.fixture
async def host(era: str) -> AsyncIterator[Client]:
    backend = new_server("echo", title="echo", instructions="test backend", feed=ChangeFeed(), scopes=OPEN_SCOPES)

    @backend.resource("echo://state", mime_type="application/json")
    async def state() -> str:
        """Some state."""
        return json.dumps({"ok": True})

    gateway = Gateway({"echo": Backend("echo", Target(server=backend, mode=ERAS[era]))})
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(gateway.run)
        assert await gateway.wait_ready(scaled(5))
        async with Client(build_aggregate(gateway), mode=ERAS[era]) as client:  # type: ignore[arg-type]
            yield client
        tasks.cancel_scope.cancel()


@pytest.mark.parametrize(
    "uri",
    [
        "test://nonexistent-resource-for-conformance-testing",  # no backend has this scheme: the gateway answers
        "echo://nothing-here",  # the owning backend answers, and the gateway passes its error on
    ],
)
async def test_reading_a_missing_resource_is_invalid_params_naming_the_uri(host: Client, uri: str) -> None:
    """SEP-2164: -32602 with the requested URI in the error's data (conformance: sep-2164-resource-not-found)."""
    with pytest.raises(MCPError) as caught:
        await host.read_resource(uri)
    assert caught.value.code == types.INVALID_PARAMS
    assert caught.value.data == {"uri": uri}
    assert uri in caught.value.message
