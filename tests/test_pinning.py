"""The mesh's clients send a token only to a server that proves it is the mesh server the token is for.

Over real HTTP on loopback: a server with its certified key answers the challenge and gets the token; a process
squatting the port (answering nothing, showing another authority's certificate, relaying the challenge to the real
server elsewhere, replaying an old proof, or certified for another server) is refused before any token leaves, and
sees none. The gateway and a server's peers pin the same way.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.config import BackendConfig, MeshConfig
from gateway.launcher import running_mesh
from servers.common.auth import ALL_SCOPES, MESH_AUDIENCE, Authority, TrustRoot, current_principal
from servers.common.clients import Target, connect
from servers.common.feed import ChangeFeed
from servers.common.peers import Peer
from servers.common.pinning import (
    AUTHORITY_KEY_VARIABLE,
    IDENTITY_PREFIX,
    Pin,
    ServerIdentity,
    ServerIdentityError,
    identity_url,
    pinning_trust,
)
from servers.common.settings import ConfigError, MeshSettings
from servers.common.surface import new_server
from servers.common.transports import http_app, public_url, serving
from tests.e2e.conftest import free_port
from tests.helpers import ERAS, OPEN_SCOPES, call, scaled

pytestmark = pytest.mark.anyio

OPERATOR = "did:stateset:operator:admin"
PASSWORD = {"STATESET_KEYSTORE_PASSWORD": "pinning-test-password"}


def authority_in(home: Path) -> Authority:
    home.mkdir(mode=0o700, exist_ok=True)
    return Authority.load(home, PASSWORD)


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return authority_in(tmp_path / "mesh")


def whoami_server() -> MCPServer[Any]:
    server = new_server("wallet", title="t", instructions="t", feed=ChangeFeed(), scopes=OPEN_SCOPES)

    @server.tool()
    def whoami() -> dict[str, str]:
        principal = current_principal()
        return {"did": principal.did if principal else ""}

    return server


@asynccontextmanager
async def real_server(authority: Authority, port: int | None = None) -> AsyncIterator[str]:
    """The `wallet` server over HTTP with tokens and its certified key; yields its MCP URL."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    identity = ServerIdentity.certified(authority, ["wallet"])
    app = http_app(whoami_server(), "http", base_url=base, trust=authority.trust_root(), identity=identity)
    async with serving(app, port=port, lifespan=True):
        yield f"{base}/mcp"


class Squatter:
    """A process on a mesh server's port: it records every header it is sent, and answers the identity challenge
    with `prove` (None: it does not know the route)."""

    def __init__(self, prove: Any = None) -> None:
        self.headers: list[dict[str, str]] = []
        self.prove = prove

    def app(self) -> Starlette:
        async def identity(request: Request) -> Response:
            self.headers.append(dict(request.headers))
            if self.prove is None:
                return Response(status_code=404)
            return JSONResponse(await self.prove(request))

        async def anything(request: Request) -> Response:
            self.headers.append(dict(request.headers))
            return Response(status_code=404)

        return Starlette(
            routes=[
                Route(f"{IDENTITY_PREFIX}/mcp", identity),
                Route("/{path:path}", anything, methods=["GET", "POST", "DELETE"]),
            ]
        )

    @property
    def saw_a_token(self) -> bool:
        return any("authorization" in headers for headers in self.headers)


def pinned(url: str, token: str, trust: TrustRoot, server: str = "wallet", era: str = "2026-07-28") -> Target:
    return Target(url=url, headers={"Authorization": f"Bearer {token}"}, pin=Pin(trust, server), mode=ERAS[era])


@asynccontextmanager
async def squatting(squatter: Squatter, port: int | None = None) -> AsyncIterator[str]:
    port = port or free_port()
    async with serving(squatter.app(), port=port):
        yield f"http://127.0.0.1:{port}/mcp"


async def refusal(target: Target) -> str:
    with pytest.raises(ServerIdentityError) as refused:
        async with connect(target, timeout_seconds=scaled(30)):
            pass
    return str(refused.value)


@pytest.mark.parametrize("era", list(ERAS))
async def test_the_real_server_proves_who_it_is_and_gets_the_token(authority: Authority, era: str) -> None:
    token = authority.issue(OPERATOR, ALL_SCOPES, 3600, audience="wallet").token
    async with real_server(authority) as url:
        async with connect(pinned(url, token, authority.trust_root(), era=era), timeout_seconds=scaled(30)) as client:
            assert await call(client, "whoami") == {"did": OPERATOR}
        mesh_wide = Pin(authority.trust_root(), MESH_AUDIENCE)  # a mesh-wide token: any server of this mesh
        async with httpx2.AsyncClient() as http:
            await mesh_wide.check(http, url)


async def test_a_squatter_that_cannot_answer_gets_no_token(authority: Authority) -> None:
    squatter = Squatter()
    async with squatting(squatter) as url:
        why = await refusal(pinned(url, authority.issue(OPERATOR, ALL_SCOPES, 3600).token, authority.trust_root()))
    assert why.startswith(f"{url} did not prove it is the mesh's wallet server") and "HTTP 404" in why
    assert "its token was not sent" in why
    assert squatter.headers and not squatter.saw_a_token


async def test_a_squatter_certified_by_another_authority_gets_no_token(authority: Authority, tmp_path: Path) -> None:
    forged = ServerIdentity.certified(authority_in(tmp_path / "forger"), ["wallet"])
    squatter = Squatter()

    async def prove(request: Request) -> dict[str, str]:
        return forged.prove(request.query_params["nonce"], url)

    squatter.prove = prove
    async with squatting(squatter) as url:
        why = await refusal(pinned(url, authority.issue(OPERATOR, ALL_SCOPES, 3600).token, authority.trust_root()))
    assert "the certificate is not the mesh authority's" in why
    assert not squatter.saw_a_token


async def test_a_squatter_relaying_the_challenge_to_the_real_server_gets_no_token(authority: Authority) -> None:
    squatter = Squatter()
    async with real_server(authority) as real:

        async def relay(request: Request) -> Any:
            async with httpx2.AsyncClient() as http:
                return (await http.get(identity_url(real), params=dict(request.query_params))).json()

        squatter.prove = relay
        async with squatting(squatter) as url:
            why = await refusal(pinned(url, authority.issue(OPERATOR, ALL_SCOPES, 3600).token, authority.trust_root()))
    assert f"it proves it is the server at {real}, not at {url}" in why
    assert not squatter.saw_a_token


async def test_a_squatter_replaying_an_old_proof_on_the_same_port_gets_no_token(authority: Authority) -> None:
    port = free_port()
    async with real_server(authority, port) as url, httpx2.AsyncClient() as http:
        recorded = (await http.get(identity_url(url), params={"nonce": "n" * 43})).json()
    squatter = Squatter()

    async def replay(_: Request) -> dict[str, str]:
        return dict(recorded)

    squatter.prove = replay
    async with squatting(squatter, port) as same_url:
        assert same_url == url
        why = await refusal(pinned(url, authority.issue(OPERATOR, ALL_SCOPES, 3600).token, authority.trust_root()))
    assert "it signed another nonce than the one it was sent" in why
    assert not squatter.saw_a_token


async def test_a_server_certified_for_another_name_gets_no_token_meant_for_that_name(authority: Authority) -> None:
    async with real_server(authority) as url:  # the wallet, where the client expects governance
        why = await refusal(
            pinned(url, authority.issue(OPERATOR, ALL_SCOPES, 3600).token, authority.trust_root(), "governance")
        )
    assert "did not prove it is the mesh's governance server (the mesh authority certified it for wallet)" in why


async def test_a_certificate_or_a_proof_is_never_a_token_and_a_bad_nonce_is_400(authority: Authority) -> None:
    async with real_server(authority) as url, httpx2.AsyncClient(timeout=scaled(30)) as http:
        answer = (await http.get(identity_url(url), params={"nonce": "x" * 32})).json()
        assert set(answer) == {"certificate", "proof"}
        for credential in answer.values():
            response = await http.post(
                url,
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
                headers={"authorization": f"Bearer {credential}", "accept": "application/json, text/event-stream"},
            )
            assert response.status_code == 401
        for nonce in ("", "short", "x" * 129, "x" * 31 + "!"):
            bad = await http.get(identity_url(url), params={"nonce": nonce})
            assert bad.status_code == 400 and "nonce must be 32 to 128" in bad.text
    token = authority.issue(OPERATOR, ALL_SCOPES, 3600).token
    with pytest.raises(Exception, match="not a server certificate"):
        authority.trust_root().certified_key(token)  # nor is a token a certificate


async def test_a_peer_pins_with_the_data_directory_s_authority_or_the_key_file_it_is_given(
    authority: Authority, tmp_path: Path
) -> None:
    token = authority.issue("did:stateset:service:discovery", ALL_SCOPES, 3600, audience="wallet").token
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    async with real_server(authority) as url:
        environ = {"STATESET_WALLET_URL": url, "STATESET_WALLET_TOKEN": token}
        with pytest.raises(ConfigError, match=f"set {AUTHORITY_KEY_VARIABLE} to a file holding"):
            Peer.from_env("wallet", environ, elsewhere)
        key_file = tmp_path / "authority.pub"
        key_file.write_text(authority.trust_root().public_pem())
        peer = Peer.from_env("wallet", environ | {AUTHORITY_KEY_VARIABLE: str(key_file)}, elsewhere)
        assert peer is not None and await peer.call("whoami") == {"did": "did:stateset:service:discovery"}
        shared = Peer.from_env("wallet", environ, authority.data_dir)  # the mesh's own data directory
        assert shared is not None and await shared.call("whoami") == {"did": "did:stateset:service:discovery"}
    assert pinning_trust(authority.data_dir, {}, needed_for="x").key_id == authority.key_id


async def test_the_gateway_sends_a_url_backend_its_token_only_once_it_proved_it_is_that_server(
    tmp_path: Path,
) -> None:
    squatter = Squatter()
    environ = dict(os.environ) | {"STATESET_HOME": str(tmp_path / "home"), "STATESET_LOG_LEVEL": "WARNING"}
    async with squatting(squatter) as url:
        config = MeshConfig(backends={"wallet": BackendConfig(url=url)})
        async with running_mesh(MeshSettings.from_env(environ), environ, config=config) as mesh:
            assert not await mesh.gateway.wait_ready(scaled(1))
            error = mesh.gateway.backends["wallet"].error or ""
    assert "did not prove it is the mesh's wallet server" in error
    assert squatter.headers and not squatter.saw_a_token


def test_the_url_a_server_proves_is_where_it_listens_or_the_public_url_it_is_given() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert public_url(sock, {}) == f"http://127.0.0.1:{port}"
        assert public_url(sock, {"STATESET_PUBLIC_URL": "https://mesh.example/"}) == "https://mesh.example"
        for bad in ("mesh.example", "ftp://mesh.example", "https://mesh.example/?x=1", "https://"):
            with pytest.raises(ConfigError, match="STATESET_PUBLIC_URL"):
                public_url(sock, {"STATESET_PUBLIC_URL": bad})
