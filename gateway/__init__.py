"""The gateway: one aggregate MCP server over every backend, the same code as a library inside each
agent, the state replicas it keeps, and `stateset up`, the whole mesh in one process."""
