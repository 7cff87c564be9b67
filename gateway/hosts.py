"""What an MCP host needs to launch the mesh: Claude Desktop's `mcpServers` entries.

Two shapes, both over stdio with one data directory:

- the gateway: one entry, the whole mesh in one process behind the aggregate (`<server>_<tool>`);
- one entry per server. The host starts each in its own process, so the servers that others reach
  (the wallet for reputation's stake, reputation and discovery for each other) also serve streamable
  HTTP on their loopback port (`--peer-port`), which takes only tokens of the data directory's mesh authority,
  and the servers that reach them are told where; each mints its own service token from the same authority.
  The wallet trusts the governance and reputation keys kept in the same data directory.

Plain data only: printing the entries starts nothing and imports neither MCP nor any key code.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from gateway.registry import DEFAULT_PORTS, SERVERS

# server -> the peers it calls, by the setting that names each one's URL
PEERS: dict[str, dict[str, str]] = {
    "reputation": {"STATESET_DISCOVERY_URL": "discovery", "STATESET_WALLET_URL": "wallet"},
    "discovery": {"STATESET_REPUTATION_URL": "reputation"},
}


def claude_config(command: str, home: Path, *, gateway: bool) -> dict[str, Any]:
    """mcpServers entries that launch `command` (this installation's `stateset`) with data in `home`."""
    data = str(home.resolve())
    if gateway:
        return {"mcpServers": {"stateset-mesh": {"command": command, "args": ["gateway", "--home", data]}}}
    reached = {peer for peers in PEERS.values() for peer in peers.values()}
    entries: dict[str, Any] = {}
    for name in SERVERS:
        args = ["serve", name, "--home", data]
        if name in reached:
            args += ["--peer-port", str(DEFAULT_PORTS[name])]
        entry: dict[str, Any] = {"command": command, "args": args}
        if name in PEERS:
            entry["env"] = {}
            for setting, peer in PEERS[name].items():
                entry["env"][setting] = f"http://127.0.0.1:{DEFAULT_PORTS[peer]}/mcp"
        entries[f"stateset-{name}"] = entry
    return {"mcpServers": entries}


def stateset_command() -> str:
    """This installation's `stateset`: the running one, the one beside this Python, or the one on PATH."""
    for candidate in (Path(sys.argv[0]), Path(sys.executable).parent / "stateset"):
        if candidate.name == "stateset" and candidate.is_file():
            return str(candidate.resolve())
    return shutil.which("stateset") or "stateset"
