"""The mesh's MCP servers, one package each with the same inner shape, over `servers.common`.

No server package imports another: they reach each other over MCP (servers.common.peers). Which
servers make a mesh, with the adapters, is the gateway's to say (gateway.registry).
"""
