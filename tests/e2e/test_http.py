"""`stateset serve wallet` over streamable HTTP and legacy SSE on 127.0.0.1, with and without bearer tokens."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.conftest import STATESET, STEP, Launch, Running, child_env, free_port, issue_token, launched, serving
from tests.helpers import ERAS, call

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


# One server per transport for the tests that configure nothing: each makes wallets of its own.
@pytest.fixture(scope="module")
def over_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with serving(tmp_path_factory.mktemp("http"), "--transport", "http") as served:
        yield served


@pytest.fixture(scope="module")
def over_sse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with serving(tmp_path_factory.mktemp("sse"), "--transport", "sse") as served:
        yield served


@pytest.mark.parametrize("era", list(ERAS))
async def test_streamable_http_serves_both_protocol_eras(over_http: Running, era: str) -> None:
    health = httpx2.get(f"{over_http.base}/health", timeout=STEP).json()
    assert health == {"status": "ok", "server": "wallet", "transport": "http"}
    async with Client(f"{over_http.base}/mcp", mode=ERAS[era], read_timeout_seconds=STEP) as client:  # type: ignore[arg-type]
        assert client.protocol_version == era
        payer = (await call(client, "create_wallet", label="a", daily_limit="9", per_transaction_limit="9"))["address"]
        await call(client, "fund_wallet", address=payer, amount="5")
        text = (await client.read_resource(f"wallet://{payer}/balance")).contents[0].text  # type: ignore[union-attr]
        assert '"available":"5"' in text


@pytest.mark.parametrize("era", list(ERAS))
async def test_legacy_sse_transport_serves_both_protocol_eras(over_sse: Running, era: str) -> None:
    async with Client(sse_client(f"{over_sse.base}/sse"), mode=ERAS[era], read_timeout_seconds=STEP) as client:  # type: ignore[arg-type]
        assert client.protocol_version == era
        wallet = await call(client, "create_wallet", label="sse", daily_limit="9", per_transaction_limit="9")
        assert wallet["label"] == "sse"


async def test_by_default_every_mcp_request_needs_a_mesh_token_and_a_revoked_one_is_refused(tmp_path: Path) -> None:
    token, token_id = issue_token(tmp_path, "did:stateset:operator:ops", "all")
    with serving(tmp_path, "--transport", "http", auth=True) as served:
        assert httpx2.get(f"{served.base}/health", timeout=STEP).status_code == 200  # probes stay open
        request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        for headers in ({}, {"Authorization": "Bearer not-a-mesh-token"}):
            response = httpx2.post(f"{served.base}/mcp", json=request, headers=headers, timeout=STEP)
            assert response.status_code == 401
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith('Bearer error="invalid_token"')
            assert f'resource_metadata="{served.base}/.well-known/oauth-protected-resource/mcp"' in challenge
        metadata = httpx2.get(f"{served.base}/.well-known/oauth-protected-resource/mcp", timeout=STEP).json()
        assert metadata["resource"] == f"{served.base}/mcp"
        for era in ERAS.values():
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
            async with http, Client(streamable_http_client(f"{served.base}/mcp", http_client=http), mode=era) as client:  # type: ignore[arg-type]
                assert len((await client.list_tools()).tools) == 13
        revoked = await anyio.run_process([STATESET, "token", "revoke", token_id], env=child_env(tmp_path))
        assert revoked.returncode == 0
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx2.post(f"{served.base}/mcp", json=request, headers=headers, timeout=STEP).status_code == 401
        assert token not in served.log.read_text()


async def test_sse_also_requires_the_token(tmp_path: Path) -> None:
    token, _ = issue_token(tmp_path, "did:stateset:operator:ops", "all")
    with serving(tmp_path, "--transport", "sse", auth=True) as served:
        assert httpx2.get(f"{served.base}/sse", timeout=STEP).status_code == 401
        async with Client(
            sse_client(f"{served.base}/sse", headers={"Authorization": f"Bearer {token}"}), read_timeout_seconds=STEP
        ) as client:
            assert len((await client.list_tools()).tools) == 13


def test_serving_beyond_loopback_without_tokens_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [STATESET, "serve", "wallet", "--transport", "http", "--host", "0.0.0.0", "--port", "1", "--no-auth"],
        env=child_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=STEP,
    )
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 without bearer tokens" in result.stderr


def test_a_foreign_host_header_is_refused(over_http: Running) -> None:
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx2.post(f"{over_http.base}/mcp", json=request, headers={"Host": "evil.example:80"}, timeout=STEP)
    assert response.status_code == 421


async def test_up_asks_every_caller_for_a_token_and_writes_the_operators_on_first_start(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    up = Launch(
        [STATESET, "up", "--port", str(port), "--home", str(home)],
        port=port,
        ready="/ready",
        env=child_env(home),
        log=tmp_path / "up.log",
        name="stateset up",
    )
    with launched(up) as (running,):
        token_file = home / "operator.token"
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        token = token_file.read_text().strip()
        for path in ("/mcp", "/wallet/mcp", "/governance/sse"):
            assert httpx2.get(f"{running.base}{path}", timeout=STEP).status_code == 401
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        async with http, Client(streamable_http_client(f"{running.base}/mcp", http_client=http)) as client:  # type: ignore[arg-type]
            wallet = await call(client, "wallet_create_wallet", label="ops", daily_limit="9", per_transaction_limit="9")
            assert wallet["owner"] == "did:stateset:operator:admin"
        log = running.log.read_text()
        assert f"Authorization: Bearer $(cat {token_file})" in log and token not in log
