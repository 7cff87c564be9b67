"""The agent runtime; for now the demo that walks an agent's payments through the wallet server."""
