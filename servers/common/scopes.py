"""Every scope a mesh token may carry, what it allows, and the usual sets: plain data, imported by the command
line's help without loading any token code. docs/security.md shows this table.

A tool needs one scope (each server's `SCOPES` table in its server.py) and, for what belongs to someone, to be
its owner or hold the admin scope of its server (servers.common.gate).
"""

SCOPES: dict[str, str] = {
    "wallet:read": "read the balances, history, limits and proposals of the caller's own wallets",
    "wallet:pay": "create wallets owned by the caller, pay from them, co-sign, stake and unstake, lower limits",
    "wallet:admin": "the faucet (local ledger only), any wallet whatever its owner, raising limits without approval",
    "wallet:audit": "read any wallet, whatever its owner (the reputation server checking stake; auditors)",
    "wallet:stake": "move money between any wallet's available and staked balance (the reputation server, for the "
    "wallet's owner, once it has checked the owner)",
    "governance:evaluate": "have the caller's own actions evaluated; read its decisions and explanations",
    "governance:approve": "vote on approvals and answer host approvals for others (never for oneself)",
    "governance:admin": "replace the policy, mark agents critical, act for any agent",
    "reputation:rate": "rate an agent the caller has dealt with (a settled payment between their wallets)",
    "reputation:admin": "record violations and slash, act for any agent",
    "discovery:register": "register and update the caller's own agent card",
    "discovery:admin": "change or remove any agent's card",
    "salesforce:read": "read and query Salesforce records",
    "salesforce:write": "create and update Salesforce records",
    "sap:read": "read SAP purchase orders, stock and materials",
    "sap:write": "create and change SAP purchase orders and goods movements",
    "mesh:delegate": "call backends on behalf of other principals (the gateway)",
}
ALL_SCOPES = frozenset(SCOPES)
AGENT_SCOPES = frozenset(
    {
        "wallet:read",
        "wallet:pay",
        "governance:evaluate",
        "reputation:rate",
        "discovery:register",
        "salesforce:read",
        "salesforce:write",
        "sap:read",
        "sap:write",
    }
)
"""What an agent's token carries by default: everything on its own behalf, nothing over others."""
SERVICE_SCOPES: dict[str, frozenset[str]] = {
    "gateway": frozenset({"mesh:delegate"}),
    "reputation": frozenset({"wallet:read", "wallet:pay", "wallet:audit", "wallet:stake"}),
    "discovery": frozenset(),
}
"""What each mesh server may do at the others when it calls them itself (its service principal)."""
PERSON_SCOPES = frozenset({"wallet:read", "governance:evaluate", "governance:approve", "salesforce:read", "sap:read"})

__all__ = ["AGENT_SCOPES", "ALL_SCOPES", "PERSON_SCOPES", "SCOPES", "SERVICE_SCOPES"]
