"""What a data directory (`STATESET_HOME`) holds besides each server's SQLite file, by name.

Plain names, no imports: the command line and the Claude Desktop entries name these files without loading
any server code.
"""

PASSWORD_FILE = "keystore.password"
"""The keystores' password (0600), unless STATESET_KEYSTORE_PASSWORD is set."""
PEER_TOKEN_FILE = "peer.token"
"""The bearer token servers sharing the directory present to each other's loopback peer port (0600)."""
SERVER_KEYSTORES = {"governance": "governance.keystore.json", "reputation": "reputation.keystore.json"}
"""The keys servers sign with for others to trust (approval receipts, slash orders), by role."""
