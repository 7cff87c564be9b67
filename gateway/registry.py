"""The servers a mesh is made of, by name, and where each listens alone.

Naming a server imports nothing: `opener(name)` imports the module whose `running(mesh, environ)` opens
it only when it is asked for, so the command line can list the servers and a host's `stateset serve
wallet` loads the wallet alone. The registry sits in the gateway because the gateway is the first layer
that sees both the servers and the adapters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from servers.common.settings import MeshSettings


class RunningServer(Protocol):
    @property
    def server(self) -> MCPServer[Any]: ...


Opener = Callable[["MeshSettings", Mapping[str, str]], AbstractAsyncContextManager[RunningServer]]

# name -> module whose `running(mesh, environ)` opens the server
SERVERS: dict[str, str] = {
    "wallet": "servers.wallet.app",
    "governance": "servers.governance.app",
    "reputation": "servers.reputation.app",
    "discovery": "servers.discovery.app",
    "salesforce": "adapters.salesforce.app",
    "sap": "adapters.sap.app",
}
# where `stateset serve <name> --transport http` listens by default
DEFAULT_PORTS: dict[str, int] = {
    "wallet": 8701,
    "governance": 8702,
    "reputation": 8703,
    "discovery": 8704,
    "salesforce": 8705,
    "sap": 8706,
}


def opener(name: str) -> Opener:
    """The `running` context manager of a named server."""
    if name not in SERVERS:
        raise KeyError(f"unknown server {name!r}; known: {', '.join(sorted(SERVERS))}")
    running: Opener = import_module(SERVERS[name]).running
    return running
