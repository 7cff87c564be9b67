"""An agent's first start, and every start after: its state, its wallet (funded from the sandbox faucet) and
its listing in discovery, whatever kind of agent it is.

The agent does what is its own as itself (its principal, `did:stateset:agent:<uuid>`): it creates its wallet (so
it owns it), has the wallet sign the binding its card shows discovery, and registers. What is not an agent's to
do is the operator's, when the start has one: minting its first funds with the faucet (wallet:admin) and telling
governance who owns the agent and which wallet is its (governance:admin). Without an operator (an agent holding
only its own token) those are left to the operator, and the timeline says so.

A new agent is saved before anything is created for it elsewhere, and a start that was stopped halfway
looks before it acts (a wallet this agent already owns, a balance already funded, a listing already
there), so an agent stopped at any point of its first start ends with one wallet, funded once, listed
once. A wallet's rules are set when it is created: a multi-sig rule the deployment file asks for is
never dropped, and a start without enough co-signers is refused before anything is created.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.config import AgentConfig
from agent.mesh import ActionFailedError, MeshClient
from agent.state import AgentState, Goal
from agent.workflows.base import AgentContext
from servers.common.bindings import WalletBinding
from servers.common.errors import InvalidInputError
from servers.common.identity import did_pkh, parse_address
from servers.common.money import format_usdc
from servers.common.settings import ConfigError
from servers.discovery.models import AgentRecord, Registration
from servers.governance.models import AgentProfile
from servers.wallet.models import Balance, MultiSigPolicy, Wallet, WalletSummary


async def start(
    agent: AgentContext, goals: Sequence[Goal], cosigners: Sequence[str] = (), operator: MeshClient | None = None
) -> AgentState:
    """Load the agent, or create it with `goals`: its state, wallet, funds and listing; `operator` funds it and
    records its owner in governance.

    Raises:
        ConfigError: the deployment file asks for co-signers it does not name and `cosigners` does not add.
    """
    journal, config, identity = agent.journal, agent.config, agent.identity
    state = await journal.store.load(identity.agent_id)
    if state is not None and state.bootstrapped_at is not None:
        journal.adopt(state)
        journal.emit("bootstrap", f"{state.name} resumed", f"version {state.version}, cycle {state.metrics.cycles}")
        return state
    resuming = state is not None
    if state is None:
        multi_sig_policy(config, cosigners)  # refused before anything is created
        state = await journal.store.save(
            AgentState(
                id=identity.agent_id,
                did=did_pkh(identity.address, identity.chain_id),
                name=config.name,
                type=config.type,
                address=identity.address,
                owner=identity.owner,
                capabilities=list(config.capabilities),
                goals=list(goals),
                permissions=list(config.permissions),
            )
        )
    journal.adopt(state)
    await _wallet_and_listing(agent, state, cosigners, operator, resuming=resuming)
    state.bootstrapped_at = agent.clock()
    await journal.save()
    return state


def multi_sig_policy(config: AgentConfig, cosigners: Sequence[str]) -> MultiSigPolicy | None:
    """A new wallet's multi-sig rule: the file's signers and `cosigners`, at least the threshold of them.

    Raises:
        ConfigError: fewer signers than the threshold, or one that is not an address, saying what to pass.
    """
    rule = config.wallet.multi_sig
    if rule is None:
        return None
    try:
        signers = list(dict.fromkeys(parse_address(s, field="co-signer") for s in [*rule.signers, *cosigners]))
    except InvalidInputError as exc:
        raise ConfigError(f"{config.source}: wallet.multi_sig: {exc}") from None
    if len(signers) < rule.threshold:
        raise ConfigError(
            f"{config.source}: wallet.multi_sig: payments of {format_usdc(rule.above)} USDC or more need "
            f"{rule.threshold} co-signers and {len(signers)} {'is' if len(signers) == 1 else 'are'} named: pass "
            "--cosigner ADDRESS for each (the addresses of the people who co-sign), or list them under "
            "wallet.multi_sig.signers. The wallet's rules are set when it is created, so the agent does not "
            "start without them."
        )
    return MultiSigPolicy(signers=signers, threshold=rule.threshold, above=format_usdc(rule.above))


async def _wallet_and_listing(
    agent: AgentContext, state: AgentState, cosigners: Sequence[str], operator: MeshClient | None, *, resuming: bool
) -> None:
    """The wallet, its funds and the listing. A new agent has none of them; one whose start was stopped
    halfway is asked about each before it is made."""
    journal, mesh, config, wallet = agent.journal, agent.mesh, agent.config, agent.config.wallet
    address = state.wallet or (await _own_wallet(agent, state.id) if resuming else None)
    new_wallet = address is None
    multi_sig = None
    if address is None:
        multi_sig = multi_sig_policy(config, cosigners)
        created = await mesh.call(
            "wallet",
            "create_wallet",
            Wallet,
            label=config.name,
            daily_limit=format_usdc(wallet.daily_limit),
            per_transaction_limit=format_usdc(wallet.per_transaction_limit),
            owner=state.id,
            multi_sig=None if multi_sig is None else multi_sig.model_dump(mode="json"),
            approval_required_above=None
            if wallet.approval_required_above is None
            else format_usdc(wallet.approval_required_above),
        )
        address = created.address
    state.wallet = address
    await journal.save()
    funded = "funded with"
    if operator is None:
        funded = "to be funded by the operator (the faucet is wallet:admin's) with"
    elif new_wallet or not await _funded(agent, address):
        await operator.call(
            "wallet", "fund_wallet", Balance, address=address, amount=format_usdc(wallet.initial_balance)
        )
    if operator is not None:  # who owns the agent, for governance's rule that no one approves their own request
        profile = AgentProfile(agent_id=state.id, owner=state.owner, address=address)
        await operator.call("governance", "set_agent_profile", AgentProfile, profile=profile.model_dump(mode="json"))
    if new_wallet or not await _listed(agent, state.id, address):
        binding = await mesh.call("wallet", "sign_binding", WalletBinding, address=address, agent_id=state.id)
        registration = agent.identity.registration(
            capabilities=config.capabilities,
            description=config.description,
            price=format_usdc(config.price),
            region=config.region,
            wallet=address,
            issued_at=int(agent.clock()),
            endpoint=f"http://127.0.0.1/agents/{config.name}/mcp",
            wallet_proof=binding.signature,
        )
        await mesh.call("discovery", "register_agent", Registration, **registration)
    rule = wallet.multi_sig
    journal.emit(
        "bootstrap",
        f"{config.name} created",
        f"{state.id}\nsigning key {state.address}; wallet {address} {funded} "
        f"{format_usdc(wallet.initial_balance)} USDC\nlimits {format_usdc(wallet.per_transaction_limit)} per "
        f"payment, {format_usdc(wallet.daily_limit)} a day"
        + (f"; {rule.threshold} co-signers at {format_usdc(rule.above)} USDC or more" if rule else "")
        + "\nlisted in discovery as "
        + ", ".join(config.capabilities),
    )


async def _own_wallet(agent: AgentContext, agent_id: str) -> str | None:
    """The wallet a start that was stopped halfway created for this agent, if any."""
    wallets = await agent.mesh.read_list("wallet://wallets", WalletSummary)
    return next((w.address for w in wallets if w.owner == agent_id), None)


async def _funded(agent: AgentContext, address: str) -> bool:
    """Whether the faucet paid in already: before its first cycle nothing else moves the agent's money."""
    balance = await agent.mesh.call("wallet", "get_balance", Balance, address=address)
    return balance.total > 0


async def _listed(agent: AgentContext, agent_id: str, wallet: str) -> bool:
    try:
        record = await agent.mesh.call("discovery", "get_agent", AgentRecord, agent_id=agent_id)
    except ActionFailedError:
        return False  # not listed (or discovery cannot say: registering tells which)
    return record.card.mesh.wallet == wallet
