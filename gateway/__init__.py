"""The gateway: for now the `stateset` command (cli.py); the aggregate MCP gateway comes with the mesh issue."""
