"""The auth matrix over real HTTP on loopback: every server of `stateset up` and the aggregate, both protocol eras.

No token, a bad signature, an expired, revoked or foreign-audience token: 401 with `WWW-Authenticate` naming the
RFC 9728 metadata. A token without the tool's scope: 403 naming the scope (2026 era, which names the tool in a
header) or the forbidden error in band (2025 era). Another agent's wallet, another agent's `agent_id`, and scope
escalation through the gateway: refused, and nothing changed.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from gateway.launcher import Mesh, mesh_app, running_mesh
from gateway.registry import SERVERS
from servers.common.auth import AGENT_SCOPES, ALGORITHM, ALL_SCOPES, ISSUER, AuthError, Authority
from servers.common.clients import Target, connect
from servers.common.gate import FORBIDDEN
from servers.common.settings import MeshSettings
from servers.common.transports import serving
from tests.conftest import ManualClock
from tests.e2e.conftest import free_port
from tests.helpers import ERAS, call, scaled

pytestmark = pytest.mark.anyio

OPERATOR = "did:stateset:operator:admin"


@dataclass
class Served:
    mesh: Mesh
    base: str
    clock: ManualClock

    def token(
        self, subject: str, scopes: Any = AGENT_SCOPES, *, ttl: int = 3600, audience: str = "stateset-mesh"
    ) -> str:
        return self.mesh.authority.issue(subject, scopes, ttl, audience=audience).token

    def client(self, path: str, token: str, era: str) -> Any:
        return connect(
            Target(url=f"{self.base}{path}", headers={"Authorization": f"Bearer {token}"}, mode=ERAS[era]),
            timeout_seconds=scaled(30),
        )


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    environ = dict(os.environ) | {"STATESET_HOME": str(tmp_path / "home"), "STATESET_LOG_LEVEL": "WARNING"}
    clock = ManualClock(start=float(int(time.time())))
    async with running_mesh(MeshSettings.from_env(environ), environ, clock=clock) as mesh:
        assert await mesh.gateway.wait_ready(scaled(30))
        port = free_port()  # the app names its metadata by the URL it serves at
        base = f"http://127.0.0.1:{port}"
        app = mesh_app(mesh, base_url=base, trust=mesh.authority.trust_root())
        async with serving(app, port=port, lifespan=True):
            yield Served(mesh, base, clock)


@pytest.fixture
def forger(tmp_path: Path) -> Authority:
    """Another mesh's authority: its tokens are well formed, and signed by a key this mesh does not trust."""
    home = tmp_path / "forger"
    home.mkdir(mode=0o700)
    return Authority.load(home, {"STATESET_KEYSTORE_PASSWORD": "forger-password"})


def agent() -> str:
    return f"did:stateset:agent:{uuid.uuid4()}"


async def post(served: Served, path: str, token: str | None, **headers: str) -> httpx2.Response:
    """A tools/list request; only its status and headers are read (an accepted one may answer as a stream)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    sent = {"content-type": "application/json", "accept": "application/json, text/event-stream", **headers}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    async with (
        httpx2.AsyncClient(timeout=scaled(30)) as http,
        http.stream("POST", f"{served.base}{path}", json=body, headers=sent) as response,
    ):
        if response.status_code in (401, 403):
            await response.aread()
        return response


def assert_401(response: httpx2.Response, served: Served, path: str, why: str) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    assert f'resource_metadata="{served.base}/.well-known/oauth-protected-resource{path}"' in challenge
    assert why in response.json()["error_description"] and why in challenge  # it says why


ENDPOINTS = [f"/{name}/mcp" for name in SERVERS] + ["/mcp"]


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_every_endpoint_refuses_a_missing_forged_expired_revoked_or_foreign_token(
    served: Served, forger: Authority, path: str
) -> None:
    audience = path.split("/")[1] if path != "/mcp" else "gateway"
    assert_401(await post(served, path, None), served, path, "a mesh token is required")
    assert_401(await post(served, path, "not-a-token"), served, path, "not a token of this mesh")
    forged = forger.issue(OPERATOR, ALL_SCOPES, 3600).token
    assert_401(await post(served, path, forged), served, path, "not signed by its authority")
    other = "wallet" if audience != "wallet" else "governance"
    foreign = served.token(OPERATOR, ALL_SCOPES, audience=other)
    assert_401(await post(served, path, foreign), served, path, f"is for {other}, not for {audience} or stateset-mesh")
    good = served.token(OPERATOR, ALL_SCOPES, audience=audience)
    assert (await post(served, path, good)).status_code not in (401, 403)
    short = served.mesh.authority.issue(OPERATOR, ALL_SCOPES, 60)
    assert (await post(served, path, short.token)).status_code not in (401, 403)
    served.clock.advance(61)
    assert_401(await post(served, path, short.token), served, path, f"token {short.token_id} expired at ")
    revoked = served.mesh.authority.issue(OPERATOR, ALL_SCOPES, 3600)
    assert (await post(served, path, revoked.token)).status_code not in (401, 403)
    served.mesh.authority.revoke(revoked.token_id, revoked.expires_at)
    assert_401(await post(served, path, revoked.token), served, path, f"token {revoked.token_id} was revoked")
    async with httpx2.AsyncClient(timeout=scaled(30)) as http:
        metadata = (await http.get(f"{served.base}/.well-known/oauth-protected-resource{path}")).json()
    assert metadata["resource"] == f"{served.base}{path}" and "wallet:pay" in metadata["scopes_supported"]


async def test_metadata_the_mesh_does_not_serve_is_404_not_a_token_demand(served: Served) -> None:
    async with httpx2.AsyncClient(timeout=scaled(30)) as http:
        for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
            assert (await http.get(f"{served.base}{path}")).status_code == 404
        assert (await http.get(f"{served.base}/.well-known/oauth-protected-resource/wallet/mcp")).status_code == 200


async def test_a_2026_call_without_the_tools_scope_is_403_naming_it(served: Served) -> None:
    token = served.token(agent())
    response = await post(served, "/wallet/mcp", token, **{"mcp-method": "tools/call", "mcp-name": "fund_wallet"})
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="wallet:admin"' in challenge


@pytest.mark.parametrize("era", list(ERAS))
async def test_an_agent_moves_only_its_own_money(served: Served, era: str) -> None:
    alice, mallory = agent(), agent()
    operator = served.token(OPERATOR, ALL_SCOPES)
    limits = {"daily_limit": "10", "per_transaction_limit": "10"}
    async with served.client("/wallet/mcp", served.token(alice), era) as client:
        victim = (await call(client, "create_wallet", label="alice", **limits))["address"]
        assert (await call(client, "get_balance", address=victim))["available"] == "0"
    async with served.client("/wallet/mcp", operator, era) as client:
        await call(client, "fund_wallet", address=victim, amount="100")
    async with served.client("/wallet/mcp", served.token(mallory), era) as client:
        own = (await call(client, "create_wallet", label="mallory", **limits))["address"]
        attacks = [
            ("fund_wallet", {"address": own, "amount": "1000000"}),
            ("set_spending_limits", {"address": victim, "daily_limit": "1000000"}),
            ("execute_payment", {"from_address": victim, "to_address": own, "amount": "9"}),
            ("get_balance", {"address": victim}),
        ]
        for tool, arguments in attacks:
            with pytest.raises(MCPError) as caught:
                await client.call_tool(tool, arguments)
            if era == "2026-07-28" and tool == "fund_wallet":  # refused as HTTP 403 (the tool named in a header)
                assert caught.value.message == "Server returned an error response"
            else:
                assert caught.value.code == FORBIDDEN, (tool, caught.value.message)
    async with served.client("/wallet/mcp", operator, era) as client:
        assert (await call(client, "get_balance", address=victim))["available"] == "100"
        assert (await call(client, "get_balance", address=own))["available"] == "0"


@pytest.mark.parametrize("era", list(ERAS))
async def test_governance_evaluates_an_agent_only_as_itself(served: Served, era: str) -> None:
    me, someone = agent(), agent()
    action = {"type": "payment", "amount": "5", "counterparty": "0x" + "11" * 20, "payer": "0x" + "22" * 20}
    async with served.client("/governance/mcp", served.token(me), era) as client:
        decision = await call(client, "evaluate_action", agent_id=me, action=action)
        assert decision["agent_id"] == me
        with pytest.raises(MCPError) as caught:
            await client.call_tool("evaluate_action", {"agent_id": someone, "action": action})
        assert caught.value.code == FORBIDDEN


@pytest.mark.parametrize("era", list(ERAS))
async def test_the_gateway_gives_no_caller_more_than_its_own_scopes(served: Served, era: str) -> None:
    async with served.client("/mcp", served.token(agent(), audience="gateway"), era) as host:
        policy = await call(host, "governance_get_policy")
        with pytest.raises(MCPError) as caught:
            await host.call_tool("governance_set_policy", {"policy": {"version": 1}})
        assert caught.value.code == FORBIDDEN and "governance:admin" in caught.value.message
        assert (await call(host, "governance_get_policy"))["version"] == policy["version"]
        victim = await _someone_elses_wallet(served, era)
        with pytest.raises(MCPError) as caught:
            await host.call_tool("wallet_fund_wallet", {"address": victim, "amount": "1000"})
        assert caught.value.code == FORBIDDEN
    async with served.client("/mcp", served.token(OPERATOR, ALL_SCOPES), era) as host:
        assert (await call(host, "wallet_get_balance", address=victim))["available"] == "0"


async def _someone_elses_wallet(served: Served, era: str) -> str:
    async with served.client("/wallet/mcp", served.token(agent()), era) as client:
        created = await call(client, "create_wallet", label="x", daily_limit="1", per_transaction_limit="1")
        return str(created["address"])


async def test_a_client_of_the_mesh_is_refused_without_the_right_principal_in_process(served: Served) -> None:
    """In process, with no principal on the connection or the process, nothing is served."""
    from servers.common.auth import set_process_principal

    set_process_principal(None)
    async with Client(served.mesh.servers["wallet"]) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("get_balance", {"address": "0x" + "22" * 20})
        assert caught.value.code == FORBIDDEN and "does not know who is calling" in caught.value.message


def test_an_audience_is_a_server_s_name_or_the_mesh(forger: Authority) -> None:
    for bad in ('w"x', "wallet\r\nX-Evil: 1", "", "Wallet", "a" * 33):
        with pytest.raises(AuthError, match="is not a server's name"):
            forger.issue(OPERATOR, ALL_SCOPES, 60, audience=bad)
    assert forger.issue(OPERATOR, ALL_SCOPES, 60, audience="sap").audience == "sap"


def test_a_401_description_carries_no_quote_or_control_character_whatever_the_token_holds(forger: Authority) -> None:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": OPERATOR, "aud": 'w"x\r\n', "scope": "", "iat": now, "exp": now + 60, "jti": "j"}
    token = jwt.encode(claims, forger._key, algorithm=ALGORITHM)  # signed by the authority, as an older issue might
    why = forger.trust_root().refusal(token, ("wallet",))
    assert why == "token j is for w?x??, not for wallet"
