"""The wallet's MCP surface: thin tools and resources over `WalletService`."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from servers.common.auth import TrustRoot
from servers.common.bindings import WalletBinding
from servers.common.bounds import UriParameter
from servers.common.feed import ChangeFeed
from servers.common.gate import ToolScopes, caller, may_act_for
from servers.common.identity import Address, AgentDid, Signature, parse_address
from servers.common.money import UsdcAmount
from servers.common.surface import CREATE, MOVE_MONEY, READ, REBALANCE, SET, new_server, resource_errors, to_json
from servers.wallet.limits import MultiSig, SpendingRules
from servers.wallet.models import (
    ApprovalReceipt,
    Balance,
    Cursor,
    IdempotencyKey,
    Label,
    Limits,
    LimitsReceipt,
    Memo,
    MultiSigPolicy,
    PaymentReceipt,
    Proposal,
    ProposalId,
    SlashOrder,
    SlashResult,
    TransactionPage,
    TreasuryPlan,
    TreasuryStrategy,
    Wallet,
)
from servers.wallet.service import WalletService

INSTRUCTIONS = """\
USDC wallets for autonomous agents. Amounts are decimal strings of USDC ("12.5", at most 6 decimals).
Every payment is checked against the wallet's per-transaction and rolling 24-hour limits, signed as an
EIP-712 transfer authorization by the wallet's own key, and settled on the local ledger. Pass an
idempotency_key with execute_payment so a retry never pays twice. Payments at or above a wallet's
multi-sig threshold go through propose_transaction and sign_proposal. Payments above
approval_required_above need a governance approval receipt. Read wallet://{address}/balance and
subscribe to it to follow changes. A wallet is its owner's (by default whoever created it): only the
owner acts on it, unless the caller holds wallet:admin (or wallet:audit to read, wallet:stake to stake).
Lowering a limit is the owner's call; raising one needs governance's approval (an action of type
raise_limits) passed as approval to set_spending_limits."""

WalletAddress = Annotated[Address, Field(description="The wallet's address")]
PROPOSAL_ID = UriParameter("proposal_id", ProposalId)


SCOPES: ToolScopes = {
    "create_wallet": "wallet:pay",
    "get_balance": "wallet:read",
    "fund_wallet": "wallet:admin",
    "execute_payment": "wallet:pay",
    "set_spending_limits": "wallet:pay",
    "list_transactions": "wallet:read",
    "propose_transaction": "wallet:pay",
    "sign_proposal": "wallet:pay",
    "stake": "wallet:pay",
    "unstake": "wallet:pay",
    "slash_stake": None,  # the order's signature by the reputation key is the authority
    "optimize_treasury": "wallet:pay",
    "sign_binding": "wallet:pay",  # the caller must be the wallet's owner (or hold wallet:admin)
}


def build_server(service: WalletService, feed: ChangeFeed, trust: TrustRoot | None = None) -> MCPServer[Any]:
    server = new_server(
        "wallet", title="StateSet Wallet", instructions=INSTRUCTIONS, feed=feed, scopes=SCOPES, trust=trust
    )

    @server.tool(annotations=CREATE)
    async def create_wallet(
        label: Label,
        daily_limit: Annotated[UsdcAmount, Field(description="Most that may leave the wallet in any 24 hours")],
        per_transaction_limit: Annotated[UsdcAmount, Field(description="Most that one payment may move")],
        owner: Annotated[
            AgentDid | None,
            Field(
                description="The owning agent, did:stateset:agent:<uuid>; by default the caller (another: wallet:admin)"
            ),
        ] = None,
        multi_sig: Annotated[
            MultiSigPolicy | None, Field(description="Co-signers required for payments at or above `above`")
        ] = None,
        treasury_strategy: TreasuryStrategy = "balanced",
        approval_required_above: Annotated[
            UsdcAmount | None, Field(description="Payments above this need a governance approval receipt")
        ] = None,
    ) -> Wallet:
        """Create a wallet with a fresh secp256k1 key, kept encrypted; returns its address and settings."""
        rules = SpendingRules(
            daily_limit=daily_limit,
            per_transaction_limit=per_transaction_limit,
            approval_required_above=approval_required_above,
            multi_sig=None
            if multi_sig is None
            else MultiSig(tuple(multi_sig.signers), multi_sig.threshold, multi_sig.above),
        )
        return await service.create_wallet(
            caller=caller(), label=label, owner=owner, rules=rules, treasury_strategy=treasury_strategy
        )

    @server.tool(annotations=READ)
    async def get_balance(address: WalletAddress) -> Balance:
        """A wallet's money: available, staked, liquidity, reserved (for pending proposals) and total."""
        return await service.get_balance(address, caller=caller())

    @server.tool(annotations=CREATE)
    async def fund_wallet(address: WalletAddress, amount: UsdcAmount) -> Balance:
        """Credit a wallet on the local ledger: the sandbox faucet, for wallet:admin only. Returns the new balance."""
        return await service.fund_wallet(address, amount)

    @server.tool(annotations=MOVE_MONEY)
    async def execute_payment(
        from_address: Annotated[Address, Field(description="The paying wallet, held by this server")],
        to_address: Annotated[Address, Field(description="The payee; any address except the payer")],
        amount: UsdcAmount,
        memo: Memo = "",
        idempotency_key: IdempotencyKey | None = None,
        approval: Annotated[
            ApprovalReceipt | None, Field(description="Governance approval receipt, needed above the wallet's limit")
        ] = None,
    ) -> PaymentReceipt:
        """Pay USDC: checks limits, signs an EIP-712 transfer authorization with the payer's key, settles.

        A repeated idempotency_key returns the first receipt and moves no money.
        """
        return await service.execute_payment(
            from_address=from_address,
            to_address=to_address,
            amount=amount,
            memo=memo,
            idempotency_key=idempotency_key,
            approval=approval,
            caller=caller(),
        )

    @server.tool(annotations=SET)
    async def set_spending_limits(
        address: WalletAddress,
        daily_limit: UsdcAmount | None = None,
        per_transaction_limit: UsdcAmount | None = None,
        approval: Annotated[
            LimitsReceipt | None,
            Field(description="Governance's limits_receipt for exactly the new pair of limits; needed to raise one"),
        ] = None,
    ) -> Limits:
        """Change a wallet's daily (rolling 24 h) and per-transaction limits; give one or both.

        Lowering is the owner's call. Raising either one needs governance's receipt for exactly the resulting
        pair (evaluate_action with type raise_limits), used once, unless the caller holds wallet:admin.
        """
        return await service.set_spending_limits(
            address,
            caller=caller(),
            daily_limit=daily_limit,
            per_transaction_limit=per_transaction_limit,
            approval=approval,
        )

    @server.tool(annotations=READ)
    async def list_transactions(
        address: WalletAddress,
        limit: Annotated[int, Field(ge=1, le=100, description="Entries per page")] = 20,
        cursor: Cursor | None = None,
    ) -> TransactionPage:
        """A wallet's history, newest first, one page at a time."""
        return await service.list_transactions(address, caller=caller(), limit=limit, cursor=cursor)

    @server.tool(annotations=CREATE)
    async def propose_transaction(
        address: WalletAddress,
        to_address: Address,
        amount: UsdcAmount,
        memo: Memo = "",
        approval: Annotated[
            ApprovalReceipt | None, Field(description="Governance approval receipt, needed above the wallet's limit")
        ] = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> Proposal:
        """Propose a multi-sig payment: reserves the money and returns the EIP-712 typed data each signer signs.

        The proposal expires (24 h by default; the expiry is inside the signed data) and then releases the money.
        A retry with the same idempotency_key and arguments returns the first proposal and reserves nothing more.
        """
        return await service.propose_transaction(
            address=address,
            to_address=to_address,
            amount=amount,
            memo=memo,
            approval=approval,
            idempotency_key=idempotency_key,
            caller=caller(),
        )

    @server.tool(annotations=MOVE_MONEY)
    async def sign_proposal(
        proposal_id: ProposalId,
        signer: Annotated[Address, Field(description="One of the wallet's multi-sig signers")],
        signature: Annotated[
            Signature, Field(description="The signer's EIP-712 signature over the proposal's typed_data")
        ],
    ) -> Proposal:
        """Add a signer's signature to a proposal; the payment executes when the threshold is reached.

        The signature is the authority: any caller holding wallet:pay may deliver a co-signer's signature.
        """
        return await service.sign_proposal(proposal_id=proposal_id, signer=signer, signature=signature)

    @server.tool(annotations=REBALANCE)
    async def stake(address: WalletAddress, amount: UsdcAmount) -> Balance:
        """Lock available USDC as stake: it backs the agent's reputation and can be slashed for misconduct."""
        return await service.stake(address, amount, caller=caller())

    @server.tool(annotations=REBALANCE)
    async def unstake(address: WalletAddress, amount: UsdcAmount) -> Balance:
        """Release staked USDC back to available."""
        return await service.unstake(address, amount, caller=caller())

    @server.tool(annotations=MOVE_MONEY)
    async def slash_stake(order: SlashOrder) -> SlashResult:
        """Carry out a slash order signed by the trusted reputation server: once per incident id."""
        return await service.slash_stake(order)

    @server.tool(annotations=REBALANCE)
    async def optimize_treasury(
        address: WalletAddress,
        strategy: Annotated[TreasuryStrategy | None, Field(description="Defaults to the wallet's own strategy")] = None,
        apply: Annotated[bool, Field(description="Move the money; otherwise only show the plan")] = False,
    ) -> TreasuryPlan:
        """Allocate a wallet among liquid (available), staked and liquidity buckets by strategy.

        conservative 60/30/10, balanced 30/40/30, aggressive 10/30/60 (percent).
        """
        return await service.optimize_treasury(address, caller=caller(), strategy=strategy, apply=apply)

    @server.tool(annotations=READ)
    async def sign_binding(
        address: WalletAddress,
        agent_id: Annotated[AgentDid, Field(description="The wallet's owner, the agent listing it in discovery")],
    ) -> WalletBinding:
        """Sign, with the wallet's key, that the wallet belongs to its owner `agent_id`: discovery lists a wallet
        in an agent's card only with this signature in `mesh.wallet_proof`. Only for the wallet's owner."""
        may_act_for(agent_id, "wallet:admin")
        return await service.sign_binding(address, agent_id)

    @server.resource("wallet://wallets", title="Wallets", mime_type="application/json")
    async def wallets() -> str:
        """The caller's wallets (every wallet, to wallet:audit and wallet:admin): address, label, owner, strategy."""
        return to_json(await service.list_wallets(caller=caller()))

    @server.resource("wallet://{address}/balance", title="Balance", mime_type="application/json")
    async def balance(address: str) -> str:
        """A wallet's balance by bucket."""
        with resource_errors():
            return to_json(await service.get_balance(parse_address(address), caller=caller()))

    @server.resource("wallet://{address}/transactions", title="Transactions", mime_type="application/json")
    async def transactions(address: str) -> str:
        """A wallet's 50 newest history entries."""
        with resource_errors():
            return to_json(
                await service.list_transactions(parse_address(address), caller=caller(), limit=50, cursor=None)
            )

    @server.resource("wallet://{address}/limits", title="Spending limits", mime_type="application/json")
    async def limits(address: str) -> str:
        """A wallet's limits and what is spent of the rolling 24-hour budget."""
        with resource_errors():
            return to_json(await service.get_limits(parse_address(address), caller=caller()))

    @server.resource("wallet://proposals/{proposal_id}", title="Proposal", mime_type="application/json")
    async def proposal(proposal_id: str) -> str:
        """A multi-sig proposal, its signatures and, once executed, its payment."""
        with resource_errors():
            return to_json(await service.get_proposal(PROPOSAL_ID(proposal_id), caller=caller()))

    return server
