"""The cap on open sessions per principal (servers.common.sessions), over real HTTP on loopback.

A small server behind tokens, with a cap of 2 (or 1): the 2025-era session one past the cap is refused with 429
while another principal gets in; a session that ends (DELETE, idle expiry, a closed SSE or listen stream) frees
its slot; legacy SSE and 2026-era listen streams are counted; other 2026-era calls hold nothing and always pass.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.routing import Mount

from gateway.launcher import mesh_app, running_mesh
from servers.common.auth import AGENT_SCOPES, Authority, TrustRoot
from servers.common.clients import Target, connect
from servers.common.feed import ChangeFeed
from servers.common.gate import caller
from servers.common.sessions import TOO_MANY_SESSIONS
from servers.common.settings import MAX_SESSIONS_ENV, ConfigError, MeshSettings
from servers.common.surface import new_server
from servers.common.transports import MCP_PATH, http_app, protect, serving
from tests.e2e.conftest import free_port
from tests.helpers import ERAS, eventually, scaled

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}},
}
ACCEPT = "application/json, text/event-stream"


def notes_server() -> Any:
    server = new_server("notes", title="Notes", instructions="notes", feed=ChangeFeed(), scopes={"whoami": None})

    @server.tool()
    def whoami() -> str:
        """The caller's DID."""
        return caller().did

    return server


def agent() -> str:
    return f"did:stateset:agent:{uuid.uuid4()}"


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    return Authority.load(home, {"STATESET_KEYSTORE_PASSWORD": "sessions-test-password"})


@dataclass
class Served:
    url: str  # the MCP endpoint (/mcp or /sse)
    authority: Authority

    def token(self, did: str) -> str:
        return self.authority.issue(did, AGENT_SCOPES, 3600).token

    def auth(self, did: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(did)}"}

    def session(
        self, did: str, era: str = "2025-11-25", *, close: bool = True
    ) -> contextlib.AbstractAsyncContextManager[Client]:
        """An SDK client as `did`; with `close=False` a 2025-era one leaves without DELETE (its session stays)."""
        if close or era != "2025-11-25":
            target = Target(url=self.url, headers=self.auth(did), mode=ERAS[era])
            return connect(target, timeout_seconds=scaled(30))
        return self._unclosed(did)

    @contextlib.asynccontextmanager
    async def _unclosed(self, did: str) -> AsyncIterator[Client]:
        async with (
            httpx2.AsyncClient(headers=self.auth(did), timeout=scaled(30)) as http,
            Client(streamable_http_client(self.url, http_client=http, terminate_on_close=False), mode="legacy") as c,
        ):
            yield c

    def sse(self, did: str) -> contextlib.AbstractAsyncContextManager[Client]:
        # a message the server refused would never be answered: the read timeout fails the test instead
        return Client(sse_client(self.url, headers=self.auth(did)), mode="legacy", read_timeout_seconds=scaled(10))

    async def open_raw(self, did: str) -> httpx2.Response:
        """One 2025-era opening request (initialize) sent by hand; a session it opens is deleted again."""
        headers = {**self.auth(did), "accept": ACCEPT, "content-type": "application/json"}
        async with httpx2.AsyncClient(timeout=scaled(30)) as http:
            response = await http.post(self.url, json=INITIALIZE, headers=headers)
            if "mcp-session-id" in response.headers:
                await http.delete(self.url, headers={**headers, "mcp-session-id": response.headers["mcp-session-id"]})
            return response

    async def sse_raw(self, did: str, **headers: str) -> httpx2.Response:
        """A legacy SSE connection opened by hand: only a refusal (which answers at once) is awaited whole."""
        sent = {**self.auth(did), "accept": "text/event-stream", **headers}
        async with (
            httpx2.AsyncClient(timeout=scaled(30)) as http,
            http.stream("GET", self.url, headers=sent) as response,
        ):
            await response.aread() if response.status_code != 200 else None
            return response


def assert_refused(response: httpx2.Response, did: str, held: int) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == TOO_MANY_SESSIONS
    assert error["message"].startswith(f"{did} has {held} open sessions here, the most allowed")
    assert MAX_SESSIONS_ENV in error["message"]


@contextlib.asynccontextmanager
async def served(authority: Authority, transport: str = "http", cap: int = 2, **options: Any) -> AsyncIterator[Served]:
    server = notes_server()
    trust: TrustRoot = authority.trust_root()
    if options:  # the session manager's own settings (a short idle timeout): the app made as http_app makes it
        inner = server.streamable_http_app(streamable_http_path=MCP_PATH, **options)
        guarded, _ = protect(inner, trust, "notes", f"http://127.0.0.1{MCP_PATH}", server, max_sessions=cap)
        app = Starlette(routes=[Mount("/", app=guarded)], lifespan=lambda _: server.session_manager.run())
    else:
        app = http_app(server, "http" if transport == "http" else "sse", trust=trust, max_sessions=cap)
    async with serving(app, lifespan=True) as base:
        yield Served(f"{base}{MCP_PATH if transport == 'http' else '/sse'}", authority)


async def test_the_session_past_the_cap_is_refused_429_and_another_principal_still_gets_in(
    authority: Authority,
) -> None:
    alice, bob = agent(), agent()
    async with served(authority) as at, AsyncExitStack() as stack:
        for _ in range(2):
            client = await stack.enter_async_context(at.session(alice))
            assert (await client.call_tool("whoami", {})).structured_content == {"result": alice}
        assert_refused(await at.open_raw(alice), alice, 2)
        with pytest.raises(Exception):  # noqa: B017 - the SDK's client fails to start; the status is checked above
            async with at.session(alice):
                pass
        async with at.session(bob) as other:  # another principal is not affected
            assert (await other.call_tool("whoami", {})).structured_content == {"result": bob}
        await stack.aclose()  # both of alice's clients DELETE their sessions
        for _ in range(2):
            assert (await at.open_raw(alice)).status_code == 200


async def test_closing_one_session_frees_exactly_one_slot(authority: Authority) -> None:
    alice = agent()
    async with served(authority) as at, at.session(alice) as first:
        async with at.session(alice):
            assert_refused(await at.open_raw(alice), alice, 2)
        response = await at.open_raw(alice)  # the inner one was deleted: its slot is free, and only its slot
        assert response.status_code == 200, response.text
        async with at.session(alice):
            assert_refused(await at.open_raw(alice), alice, 2)
        assert (await first.call_tool("whoami", {})).structured_content == {"result": alice}


async def test_a_session_left_without_delete_holds_its_slot_until_it_expires_idle(authority: Authority) -> None:
    alice = agent()
    async with served(authority, cap=1, session_idle_timeout=0.5) as at:
        async with at.session(alice, close=False) as client:
            assert (await client.call_tool("whoami", {})).structured_content == {"result": alice}
        assert_refused(await at.open_raw(alice), alice, 1)  # still open on the server: it still counts

        async def opens() -> bool:
            return (await at.open_raw(alice)).status_code == 200

        await eventually(opens)  # once it expires


async def test_legacy_sse_streams_count_and_a_closed_stream_frees_its_slot(authority: Authority) -> None:
    alice, bob = agent(), agent()
    async with served(authority, "sse") as at, AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(at.sse(alice)) for _ in range(2)]
        for client in clients:  # at the cap, messages to open sessions still flow
            assert (await client.call_tool("whoami", {})).structured_content == {"result": alice}
        assert_refused(await at.sse_raw(alice), alice, 2)
        async with at.sse(bob) as other:
            assert (await other.call_tool("whoami", {})).structured_content == {"result": bob}
        await stack.aclose()

        async def opens() -> bool:
            async with contextlib.AsyncExitStack() as attempt:
                try:
                    for _ in range(2):
                        await attempt.enter_async_context(at.sse(alice))
                except Exception:
                    return False
            return True

        await eventually(opens)  # once the server notices the streams closed


async def test_2026_era_calls_hold_no_session_and_pass_at_the_cap(authority: Authority) -> None:
    alice = agent()
    async with served(authority, cap=1) as at, at.session(alice):
        assert_refused(await at.open_raw(alice), alice, 1)
        async with anyio.create_task_group() as tasks:  # more at once than the cap allows sessions

            async def call() -> None:
                async with at.session(alice, "2026-07-28") as client:
                    assert client.protocol_version == "2026-07-28"
                    for _ in range(3):
                        assert (await client.call_tool("whoami", {})).structured_content == {"result": alice}

            for _ in range(4):
                tasks.start_soon(call)


async def test_a_2026_era_listen_stream_holds_a_slot_while_open(authority: Authority) -> None:
    alice = agent()
    async with served(authority, cap=1) as at, at.session(alice, "2026-07-28") as client:
        async with client.listen(resource_subscriptions=["notes://board"]):
            assert_refused(await at.open_raw(alice), alice, 1)
            assert (await client.call_tool("whoami", {})).structured_content == {"result": alice}

        async def opens() -> bool:
            return (await at.open_raw(alice)).status_code == 200

        await eventually(opens)


LISTEN = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "subscriptions/listen",
    "params": {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "probe", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {},
        },
        "notifications": {"toolsListChanged": True},
    },
}


async def test_a_session_id_of_any_kind_exempts_neither_a_listen_nor_a_legacy_sse_stream(authority: Authority) -> None:
    alice = agent()
    async with (
        served(authority, cap=1) as at,
        at.session(alice, "2026-07-28") as client,
        client.listen(resource_subscriptions=["notes://board"]),  # the one slot
        httpx2.AsyncClient(timeout=scaled(30)) as http,
    ):
        headers = {
            **at.auth(alice),
            "accept": ACCEPT,
            "content-type": "application/json",
            "mcp-protocol-version": "2026-07-28",
            "mcp-method": "subscriptions/listen",
            "mcp-session-id": "not-a-session",  # the 2026 era never looks at it
        }
        assert_refused(await http.post(at.url, json=LISTEN, headers=headers), alice, 1)
    async with served(authority, "sse", cap=1) as at, at.sse(alice):
        assert_refused(await at.sse_raw(alice, **{"mcp-session-id": "not-a-session"}), alice, 1)


async def test_every_path_of_the_mesh_and_the_aggregate_are_capped(tmp_path: Path) -> None:
    environ = dict(os.environ) | {
        "STATESET_HOME": str(tmp_path / "home"),
        "STATESET_LOG_LEVEL": "WARNING",
        MAX_SESSIONS_ENV: "1",
    }
    settings = MeshSettings.from_env(environ)
    assert settings.max_sessions_per_principal == 1
    async with running_mesh(settings, environ) as mesh:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        app = mesh_app(
            mesh, base_url=base, trust=mesh.authority.trust_root(), max_sessions=settings.max_sessions_per_principal
        )
        async with serving(app, port=port, lifespan=True):
            alice = agent()
            for path in ("/wallet/mcp", "/mcp"):
                at = Served(f"{base}{path}", mesh.authority)
                async with at.session(alice):
                    assert_refused(await at.open_raw(alice), alice, 1)
                assert (await at.open_raw(alice)).status_code == 200


def test_the_cap_is_read_from_the_environment_and_a_bad_value_is_named() -> None:
    assert MeshSettings.from_env({}).max_sessions_per_principal == 16
    assert MeshSettings.from_env({MAX_SESSIONS_ENV: "3"}).max_sessions_per_principal == 3
    for bad in ("0", "many"):
        with pytest.raises(ConfigError, match=MAX_SESSIONS_ENV):
            MeshSettings.from_env({MAX_SESSIONS_ENV: bad})
