"""The shipped configuration files: every one loads, and names only what exists."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.registry import SERVERS
from servers.discovery.planning import load_templates
from servers.discovery.settings import DEFAULT_TEMPLATES
from servers.reputation.settings import ReputationSettings

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_the_claude_desktop_example_is_what_claude_config_prints() -> None:
    from gateway.hosts import claude_config

    example = json.loads((CONFIGS / "claude_desktop_config.json").read_text())
    stateset, home = "/path/to/stateset-mesh/.venv/bin/stateset", Path("/path/to/stateset-mesh/.stateset")
    assert example == claude_config(stateset, home, gateway=False)


def test_the_default_templates_and_reputation_parameters_load() -> None:
    assert {"procurement", "lead_to_opportunity"} <= set(load_templates(DEFAULT_TEMPLATES))
    params = ReputationSettings.default().config.params()
    assert abs(sum(params.weights.values()) - 1) < 1e-9


def test_a_broken_config_names_the_file_and_the_key(tmp_path: Path) -> None:
    import pytest

    from servers.common.settings import ConfigError

    broken = tmp_path / "reputation.yaml"
    text = (CONFIGS / "reputation" / "default.yaml").read_text().replace("half_life_days: 30", "half_life_days: -1")
    broken.write_text(text)
    with pytest.raises(ConfigError) as caught:
        ReputationSettings.from_env({"STATESET_REPUTATION_CONFIG": str(broken)})
    assert str(broken) in str(caught.value) and "scoring.half_life_days" in str(caught.value)
    cycle = tmp_path / "templates.yaml"
    cycle.write_text(
        "templates:\n  loop:\n    subtasks:\n"
        "      - {id: a, capability: x, depends_on: [b]}\n      - {id: b, capability: y, depends_on: [a]}\n"
    )
    with pytest.raises(ConfigError, match="templates.loop: subtasks depend on each other in a cycle"):
        load_templates(cycle)


def test_claude_config_launches_every_server_or_the_gateway(tmp_path: Path) -> None:
    from gateway.hosts import claude_config

    servers = claude_config("/opt/stateset", tmp_path, gateway=False)["mcpServers"]
    assert set(servers) == {f"stateset-{name}" for name in SERVERS}
    assert servers["stateset-sap"] == {
        "command": "/opt/stateset",
        "args": ["serve", "sap", "--home", str(tmp_path.resolve())],
    }
    # the servers others reach serve their loopback port, and those who reach them are told where
    assert servers["stateset-wallet"]["args"][-2:] == ["--peer-port", "8701"]
    # no token in the entries: each server mints its own from the data directory's mesh authority
    assert servers["stateset-reputation"]["env"] == {
        "STATESET_DISCOVERY_URL": "http://127.0.0.1:8704/mcp",
        "STATESET_WALLET_URL": "http://127.0.0.1:8701/mcp",
    }
    assert servers["stateset-discovery"]["env"] == {"STATESET_REPUTATION_URL": "http://127.0.0.1:8703/mcp"}
    gateway = claude_config("/opt/stateset", tmp_path, gateway=True)["mcpServers"]
    assert gateway == {
        "stateset-mesh": {"command": "/opt/stateset", "args": ["gateway", "--home", str(tmp_path.resolve())]}
    }
