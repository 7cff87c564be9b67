"""configs/mesh.yaml: backends in process, over stdio and over HTTP with a token, in one gateway."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from mcp import Client
from mcp.shared.exceptions import MCPError

from gateway.config import DEFAULT_CONFIG, MeshConfig, load_mesh_config
from gateway.launcher import running_mesh
from gateway.registry import SERVERS
from servers.common.auth import AGENT_SCOPES, Authority, Principal, acting_as
from servers.common.settings import ConfigError, MeshSettings
from servers.common.transports import http_app, serving
from tests.gateway.test_gateway import echo_server
from tests.helpers import ERAS, call, refused, scaled


async def refused_or_forbidden(client: Client, tool: str, **arguments: object) -> str:
    try:
        return await refused(client, tool, **arguments)
    except MCPError as exc:
        return str(exc)


def test_the_shipped_config_runs_every_server_in_process() -> None:
    config = load_mesh_config({})
    assert config == load_mesh_config({}, DEFAULT_CONFIG)
    assert config.in_process == list(SERVERS)


@pytest.mark.parametrize(
    ("backends", "named"),
    [
        ({"wallet": {}}, "give exactly one of in_process"),
        ({"wallet": {"in_process": True, "url": "http://127.0.0.1:1/mcp"}}, "give exactly one of"),
        ({"echo": {"in_process": True}}, "'echo' cannot run in process"),
        ({"Wallet!": {"url": "http://127.0.0.1:1/mcp"}}, "backend name 'Wallet!' must match"),
        ({"sap": {"url": "ftp://x"}}, "backends.sap.url"),
        ({"sap": {"command": ["x"], "token_env": "T"}}, "apply only to a url backend"),
        ({"sap": {"url": "http://127.0.0.1:1/mcp", "era": "2024-11-05"}}, "backends.sap.era"),
        ({"sap": {"url": "http://127.0.0.1:1/mcp", "token": "inline"}}, "backends.sap.token"),
    ],
)
def test_a_mistake_names_the_file_the_backend_and_the_rule(tmp_path: Path, backends: object, named: str) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(yaml.safe_dump({"backends": backends}))
    with pytest.raises(ConfigError) as caught:
        load_mesh_config({"STATESET_MESH_CONFIG": str(path)})
    assert str(path) in str(caught.value) and named in str(caught.value)


def test_a_token_comes_from_the_environment_only() -> None:
    config = MeshConfig.model_validate({"backends": {"sap": {"url": "http://h/mcp", "token_env": "SAP_TOKEN"}}})
    with pytest.raises(ConfigError, match="token_env SAP_TOKEN is not set"):
        config.targets({})
    target = config.targets({"SAP_TOKEN": "t0ken"})["sap"]
    assert target.headers == {"Authorization": "Bearer t0ken"} and "t0ken" not in target.describe()


@pytest.mark.anyio
@pytest.mark.parametrize("era", list(ERAS))
async def test_one_gateway_over_in_process_stdio_and_http_backends(tmp_path: Path, era: str) -> None:
    echo, _ = echo_server()
    (tmp_path / "echo-home").mkdir(mode=0o700)
    foreign = Authority.load(tmp_path / "echo-home", {"STATESET_KEYSTORE_PASSWORD": "echo-password"})
    token = foreign.issue("did:stateset:service:gateway", [], 3600, audience="echo").token
    async with serving(http_app(echo, "http", trust=foreign.trust_root()), lifespan=True) as url:
        pin = "2025-11-25" if era == "2025-11-25" else "auto"
        config = MeshConfig.model_validate(
            {
                "backends": {
                    "wallet": {"in_process": True},
                    "governance": {  # on the mesh's data directory, which the gateway names to it
                        "command": [sys.executable, "-m", "agent.cli", "serve", "governance"],
                        "env": {"STATESET_LOG_LEVEL": "WARNING"},
                        "era": pin,
                    },
                    "echo": {"url": f"{url}/mcp", "token_env": "ECHO_TOKEN", "era": pin},
                }
            }
        )
        environ = dict(os.environ) | {"ECHO_TOKEN": token}
        mesh = MeshSettings.from_env(environ, home=tmp_path / "mesh")
        async with running_mesh(mesh, environ, config=config) as running:
            assert set(running.servers) == {"wallet"}
            assert await running.gateway.wait_ready(scaled(30))
            async with Client(running.aggregate, mode=ERAS[era]) as host:  # type: ignore[arg-type]
                names = {tool.name for tool in (await host.list_tools()).tools}
                assert {"wallet_get_balance", "governance_get_policy", "echo_echo"} <= names
                assert (await call(host, "echo_echo", text="hi"))["said"] == "hi"
                policy = await call(host, "governance_get_policy")
                assert policy["version"]
                assert (await refused(host, "wallet_get_balance", address="0x" + "11" * 20)).startswith("[wallet] ")
            health = running.gateway.health()["backends"]
            assert health["governance"]["target"].startswith("stdio:")
            assert health["echo"]["protocol_version"] == era
            assert token not in repr(health)


SERVE_GOVERNANCE = [sys.executable, "-m", "agent.cli", "serve", "governance"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("era", "name", "home_flag"),
    [(era, "governance", False) for era in ERAS] + [("2026-07-28", "gov", False), ("2025-11-25", "governance", True)],
)
async def test_a_mesh_server_the_gateway_launches_serves_its_callers_as_themselves(
    tmp_path: Path, era: str, name: str, home_flag: bool
) -> None:
    home = tmp_path / "mesh"
    command = [*SERVE_GOVERNANCE, *(["--home", str(home)] if home_flag else [])]
    config = MeshConfig.model_validate(
        {"backends": {name: {"command": command, "env": {"STATESET_LOG_LEVEL": "WARNING"}}}}
    )
    environ = dict(os.environ) | {"STATESET_HOME": str(home)}
    async with running_mesh(MeshSettings.from_env(environ), environ, config=config) as running:
        assert await running.gateway.wait_ready(scaled(30))
        async with Client(running.aggregate, mode=ERAS[era]) as operator:  # type: ignore[arg-type]
            policy = await call(operator, f"{name}_get_policy")
        agent = Principal(f"did:stateset:agent:{uuid.uuid4()}", AGENT_SCOPES)
        with acting_as(agent):
            async with Client(running.aggregate, mode=ERAS[era]) as host:  # type: ignore[arg-type]
                why = await refused_or_forbidden(host, f"{name}_set_policy", policy=policy["document"])
                assert "governance:admin" in why  # the child serves the agent, not the gateway that launched it
        async with Client(running.aggregate, mode=ERAS[era]) as operator:  # type: ignore[arg-type]
            assert (await call(operator, f"{name}_set_policy", policy=policy["document"]))["version"]


@pytest.mark.anyio
async def test_a_mesh_server_launched_on_another_data_directory_fails_closed_not_open(tmp_path: Path) -> None:
    """It would otherwise act for its host as the local operator, and every caller of the gateway with it."""
    elsewhere = tmp_path / "elsewhere"
    config = MeshConfig.model_validate(
        {"backends": {"governance": {"command": [*SERVE_GOVERNANCE, "--home", str(elsewhere)]}}}
    )
    environ = dict(os.environ) | {"STATESET_HOME": str(tmp_path / "mesh"), "STATESET_LOG_LEVEL": "WARNING"}
    async with running_mesh(MeshSettings.from_env(environ), environ, config=config) as running:
        assert not await running.gateway.wait_ready(scaled(3))
        with acting_as(Principal(f"did:stateset:agent:{uuid.uuid4()}", AGENT_SCOPES)):
            async with Client(running.aggregate) as host:  # type: ignore[arg-type]
                names = {tool.name for tool in (await host.list_tools()).tools}
                assert "governance_set_policy" not in names
