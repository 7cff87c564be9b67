"""The mesh's MCP servers. Each package has the same inner shape; `SERVERS` names the ones that run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from importlib import import_module
from typing import Any, Protocol

from mcp.server.mcpserver import MCPServer

from servers.common.settings import MeshSettings


class RunningServer(Protocol):
    @property
    def server(self) -> MCPServer[Any]: ...


Opener = Callable[[MeshSettings, Mapping[str, str]], AbstractAsyncContextManager[RunningServer]]

# name -> module whose `running(mesh, environ)` opens the server; imported only when asked for.
SERVERS: dict[str, str] = {
    "wallet": "servers.wallet.app",
    "governance": "servers.governance.app",
    "reputation": "servers.reputation.app",
    "discovery": "servers.discovery.app",
    "salesforce": "adapters.salesforce.app",
    "sap": "adapters.sap.app",
}


def opener(name: str) -> Opener:
    """The `running` context manager of a named server."""
    if name not in SERVERS:
        raise KeyError(f"unknown server {name!r}; known: {', '.join(sorted(SERVERS))}")
    running: Opener = import_module(SERVERS[name]).running
    return running
