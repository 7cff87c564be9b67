"""The shipped configuration files: every one loads, and names only what exists."""

from __future__ import annotations

import json
from pathlib import Path

from servers import SERVERS
from servers.discovery.planning import load_templates
from servers.discovery.settings import DEFAULT_TEMPLATES
from servers.reputation.settings import ReputationSettings

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_the_claude_desktop_example_launches_servers_that_exist() -> None:
    config = json.loads((CONFIGS / "claude_desktop_config.json").read_text())
    for entry in config["mcpServers"].values():
        assert entry["args"][0] == "serve" and entry["args"][1] in SERVERS


def test_the_default_templates_and_reputation_parameters_load() -> None:
    assert {"procurement", "lead_to_opportunity"} <= set(load_templates(DEFAULT_TEMPLATES))
    params = ReputationSettings.default().config.params()
    assert abs(sum(params.weights.values()) - 1) < 1e-9
