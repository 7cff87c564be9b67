"""Who may do what with a wallet. Pure.

A wallet belongs to its `owner`, a DID: the agent (or person) whose token may act on it. Every tool and resource
that names a wallet asks here, with the wallet's stored owner, before anything changes:

| right | the owner, holding | anyone holding                 | tools and resources                                  |
|-------|--------------------|--------------------------------|------------------------------------------------------|
| READ  | wallet:read        | wallet:audit or wallet:admin   | get_balance, list_transactions, wallet://… reads     |
| STAKE | wallet:pay         | wallet:stake or wallet:admin   | stake, unstake                                       |
| SPEND | wallet:pay         | wallet:admin                   | execute_payment, propose_transaction,                |
|       |                    |                                | optimize_treasury, set_spending_limits              |

Raising a limit needs more than SPEND (servers.wallet.service.set_spending_limits): a governance receipt for
exactly that change, or wallet:admin. Two acts name no owner: co-signing a proposal, whose authority is the
co-signer's EIP-712 signature, and slashing, whose authority is the reputation key's signed order. The faucet is
wallet:admin's alone (the gate checks it).

A refusal is a protocol error (FORBIDDEN): no retry by the model helps, and nothing has changed when it is raised.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp.shared.exceptions import MCPError

from servers.common.auth import Principal
from servers.common.gate import forbidden

ADMIN = "wallet:admin"
AUDIT = "wallet:audit"


@dataclass(frozen=True)
class Right:
    own: str
    """The scope the owner acts with."""
    anyone: tuple[str, ...]
    """Scopes that reach every wallet, whoever owns it."""

    def allows(self, principal: Principal, owner: str | None) -> bool:
        if any(principal.has(scope) for scope in self.anyone):
            return True
        return owner is not None and principal.did == owner and principal.has(self.own)

    def check(self, principal: Principal, owner: str | None, address: str, act: str) -> None:
        """Raise unless `principal` may `act` (a verb phrase: "pay from") on the wallet at `address`.

        Raises:
            MCPError: FORBIDDEN, naming the caller, the act, the owner and the scopes that would do.
        """
        if not self.allows(principal, owner):
            raise refusal(principal, self, owner, address, act)


READ = Right("wallet:read", (AUDIT, ADMIN))
STAKE = Right("wallet:pay", ("wallet:stake", ADMIN))
SPEND = Right("wallet:pay", (ADMIN,))


def refusal(principal: Principal, right: Right, owner: str | None, address: str, act: str) -> MCPError:
    others = " or ".join(right.anyone)
    if owner == principal.did:  # its own wallet, but a token without the scope
        return forbidden(f"{principal.did} may not {act} its wallet {address} without the {right.own} scope")
    return forbidden(
        f"{principal.did} may not {act} wallet {address}: it belongs to {owner or 'no one'}; "
        f"only its owner (with {right.own}) or a holder of {others} may"
    )


def listed_owner(principal: Principal) -> str | None:
    """Whose wallets a listing shows `principal`: everyone's (None) to wallet:audit and wallet:admin, else its own.

    Raises:
        MCPError: FORBIDDEN, a principal without wallet:read.
    """
    if READ.allows(principal, None):
        return None
    if not principal.has(READ.own):
        raise forbidden(f"{principal.did} may not list wallets without the {READ.own} scope")
    return principal.did


def owner_for(principal: Principal, requested: str | None) -> str:
    """Who owns a wallet `principal` creates: itself unless it names another, which takes wallet:admin.

    Raises:
        MCPError: FORBIDDEN, another owner named without wallet:admin.
    """
    if requested is None or requested == principal.did:
        return principal.did
    if not principal.has(ADMIN):
        raise forbidden(
            f"{principal.did} may not create a wallet owned by {requested}: a wallet's owner is its creator, "
            f"unless the creator holds {ADMIN}"
        )
    return requested


def may_raise_limits_unapproved(principal: Principal) -> bool:
    """wallet:admin raises limits without a governance receipt; everyone else needs one."""
    return principal.has(ADMIN)
