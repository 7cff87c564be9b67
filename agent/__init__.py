"""The agent layer: autonomous agents that are MCP clients of the mesh.

An agent is its deployment file (agent.config), its state and audit trail (agent.state, agent.journal),
its key (agent.identity), and the loop (agent.loop) that runs its cycles of perceive → decide → act →
learn through the gateway (agent.mesh), whatever its kind; what a kind of agent does is its workflow
(agent.workflows: the `Workflow` base in agent.workflows.base, one module per kind, e.g. procurement).
agent.server serves an agent to an MCP host; agent.run, agent.demo and agent.wallet_tour are what the
`stateset` command runs.
"""
