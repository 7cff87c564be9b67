"""Enterprise adapters (Salesforce, SAP) as MCP servers; they arrive with their own issue."""
