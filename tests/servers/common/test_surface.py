"""Caller mistakes at any server's surface: one sentence naming the value and what is allowed, on its plane."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ConfigDict, Field

from servers.common.changes import ChangePage
from servers.common.feed import ChangeFeed
from servers.common.identity import Address, parse_address
from servers.common.money import UsdcAmount
from servers.common.surface import new_server, resource_errors, serve_change_log
from tests.helpers import ERAS, OPEN_SCOPES, refused

pytestmark = pytest.mark.anyio


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    daily: UsdcAmount
    label: str = Field(max_length=8)


def build() -> MCPServer[Any]:
    server = new_server("shop", title="Shop", instructions="A test server.", feed=ChangeFeed(), scopes=OPEN_SCOPES)
    pages: list[int] = []

    @server.tool()
    async def fund(address: Address, amount: UsdcAmount, limits: Limits, count: Annotated[int, Field(ge=1)]) -> str:
        """Fund a wallet."""
        return "funded"

    @server.resource("shop://{address}/balance")
    async def balance(address: str) -> str:
        with resource_errors():
            return parse_address(address)

    async def page(after: int) -> ChangePage:
        pages.append(after)
        return ChangePage(changes=[], head=0, more=False)

    serve_change_log(server, "shop", page)
    return server


@pytest.fixture(params=list(ERAS))
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    async with Client(build(), mode=ERAS[request.param]) as connected:
        yield connected


async def test_bad_arguments_get_one_sentence_each_without_pydantic_boilerplate(client: Client) -> None:
    arguments = {"address": 5, "amount": "0", "limits": {"daily": "1", "label": "x" * 9, "colour": "red"}}
    message = await refused(client, "fund", **arguments)
    assert message == (
        "address 5 is not an Ethereum address; use 0x followed by 40 hex digits; "
        "amount '0' is zero; amounts must be greater than 0; "
        "limits.label 'xxxxxxxxx' holds 9 characters; at most 8 characters are accepted; "
        "limits.colour is not a known argument or field; "
        "count is required"
    )


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("shop://0xnot/balance", "address '0xnot' is not an Ethereum address"),
        ("shop://changes/99999999999999999999", "cursor '99999999999999999999' is not a sequence number"),
        ("shop://changes/²", "cursor '²' is not a sequence number (0 to 9223372036854775807)"),
        ("shop://changes/-1", "cursor '-1' is not a sequence number"),
    ],
)
async def test_a_malformed_value_in_a_resource_uri_is_invalid_params(client: Client, uri: str, says: str) -> None:
    with pytest.raises(MCPError) as caught:
        await client.read_resource(uri)
    assert caught.value.code == types.INVALID_PARAMS and says in caught.value.message


async def test_the_largest_cursor_reads_an_empty_page(client: Client) -> None:
    result = await client.read_resource(f"shop://changes/{2**63 - 1}")
    assert '"more":false' in result.contents[0].text  # type: ignore[union-attr]


async def test_an_unknown_prompt_is_invalid_params(client: Client) -> None:
    with pytest.raises(MCPError) as caught:
        await client.get_prompt("nope", {})
    assert caught.value.code == types.INVALID_PARAMS and caught.value.message == "no prompt 'nope' here; prompts: none"
