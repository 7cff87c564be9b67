"""`stateset demo`: the procurement agent end to end, offline, in seconds.

The whole mesh starts in this process (wallet, governance, reputation, discovery, and Salesforce and SAP
against their sandbox emulators). The demo sets the stage as the other parties would: the plant's stock
in SAP is low, sales has an opportunity in Salesforce, three supplier agents are listed in discovery
with reputations earned from earlier buyers, and two officers (a CFO and a controller) approve large
payments in governance and co-sign large payments in the wallet. Then the procurement agent from
configs/agents/procurement.yaml runs its cycles through the gateway: it notices the low stock, finds
and ranks suppliers, asks governance, pays in USDC through a multi-sig proposal, orders in SAP, rates
the supplier, and tells sales. The officers answer between cycles, as people would.

Everyone acts as themselves, with the scopes of their kind: each agent as its DID with AGENT_SCOPES (it owns
its wallet, binds it to its card, registers itself, and rates only whom it paid, the payment receipt as proof),
each officer as `did:stateset:person:<role>` with PERSON_SCOPES (approving in governance; the agent that asked
never approves), and the local operator for what only an operator may do (the policy, the faucet, who owns an
agent). The officers' co-signatures are EIP-712 signatures over the proposal the agent hands them; the agent
delivers them to the wallet, which trusts the signature, not the messenger.

Exit status 0 means every outcome was checked: one order, one payment, the right supplier, the limits
respected, the opportunity updated, the rating recorded.
"""

from __future__ import annotations

import logging
import secrets
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel

from adapters.salesforce.models import RecordResult
from adapters.sap.models import PurchaseOrder
from agent.identity import AgentIdentity
from agent.loop import AgentLoop
from agent.mesh import ActionFailedError, MeshClient
from agent.run import OPERATOR, Timeline, running_agent
from agent.state import AgentState, Task
from agent.workflows import load_agent_config
from gateway.launcher import running_mesh
from servers.common.auth import Principal
from servers.common.bindings import WalletBinding
from servers.common.identity import Signer, new_agent_did
from servers.common.money import format_usdc, parse_usdc
from servers.common.passwords import PASSWORD_ENV
from servers.common.scopes import PERSON_SCOPES
from servers.common.settings import MeshSettings
from servers.discovery.models import Registration
from servers.governance.models import Decision, PolicyView
from servers.reputation.models import RatingReceipt, Reputation, Stake
from servers.wallet.models import Balance, PaymentReceipt, Proposal, Wallet

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
AGENT_CONFIG = CONFIGS / "agents" / "procurement.yaml"
POLICY = CONFIGS / "governance" / "default.yaml"
CAPABILITY = "supply:bike-frames"
OPPORTUNITY = "Acme Cycles - 200 road bikes"
RATINGS_PER_BUYER = 2
BUYER_STAKE = "10"  # what makes an earlier buyer's ratings count fully (reputation's established stake)
BUYER_PAYMENT = "1"  # what each earlier order paid a supplier: the proof behind each rating
DEMO_SCRYPT_N = 2**14
M = TypeVar("M", bound=BaseModel)


class DemoFailure(Exception):
    """An outcome was not what the mesh promises."""


@dataclass
class SupplierAgent:
    identity: AgentIdentity
    price: str
    wallet: str = ""
    wallet_proof: str = ""
    """The wallet's binding to the supplier, as its card shows it."""


@dataclass
class Officer:
    """A person who approves in governance and co-signs in the wallet."""

    role: str
    account: LocalAccount
    mesh: MeshClient

    @property
    def address(self) -> str:
        return str(self.account.address)


async def run_demo(home: Path | None, environ: Mapping[str, str]) -> int:
    with tempfile.TemporaryDirectory(prefix="stateset-demo-") as scratch:
        failed = False
        try:
            await procurement(home or Path(scratch), environ, home_given=home is not None)
        except* DemoFailure as failures:
            failed = True
            for failure in _leaves(failures):
                print(f"\nDEMO FAILED: {failure}", file=sys.stderr)
    return 1 if failed else 0


def _leaves(group: BaseException) -> list[BaseException]:
    if isinstance(group, BaseExceptionGroup):
        return [leaf for inner in group.exceptions for leaf in _leaves(inner)]
    return [group]


async def procurement(
    data_dir: Path, environ: Mapping[str, str], *, cycles: int = 3, home_given: bool = True
) -> Outcome:
    """Run the demo; returns its outcomes (for the test that checks them)."""
    environ = {"STATESET_LOG_LEVEL": "WARNING"} | dict(environ) | {"STATESET_HOME": str(data_dir)}
    if not home_given:  # keys in a directory deleted at exit: a lighter scrypt keeps the demo to seconds, and
        # a password that dies with them leaves no password file behind in the user's config folder
        throwaway = {"STATESET_KEYSTORE_SCRYPT_N": str(DEMO_SCRYPT_N), PASSWORD_ENV: secrets.token_urlsafe(32)}
        environ = throwaway | environ
    logging.getLogger().setLevel(environ["STATESET_LOG_LEVEL"])
    mesh = MeshSettings.from_env(environ, home=data_dir)
    timeline = Timeline()
    async with running_mesh(mesh, environ) as running:
        gateway = running.gateway
        if not await gateway.wait_ready(10):
            raise DemoFailure(f"the mesh did not start: {gateway.health()}")
        operator = MeshClient(gateway, principal=OPERATOR)
        officers = [
            Officer(
                role, Account.create(), operator.as_principal(Principal(f"did:stateset:person:{did}", PERSON_SCOPES))
            )
            for role, did in (("CFO", "cfo"), ("controller", "controller"))
        ]
        timeline.section("the stage")
        timeline.show(
            "mesh",
            "wallet, governance, reputation, discovery, Salesforce and SAP started in this process",
            f"data in {data_dir}; Salesforce and SAP are their sandbox emulators; the agent reaches all of "
            "them through the gateway",
        )
        await set_stage(operator, running.apps["sap"].sandbox, officers, timeline)
        suppliers = await list_suppliers(operator, mesh.chain_id, timeline)
        config = load_agent_config(AGENT_CONFIG)
        timeline.section("the procurement agent")
        async with running_agent(
            gateway,
            config,
            mesh,
            environ,
            cosigners=[officer.address for officer in officers],
            owner=Account.create().address,
            on_event=timeline,
            operator=operator,
        ) as loop:
            for cycle in range(1, cycles + 1):
                timeline.section(f"cycle {cycle}")
                await loop.execute_cycle()
                await officers_answer(loop, officers, timeline)
            return await _outcome(operator, loop, suppliers, timeline)


async def _call(mesh: MeshClient, server: str, tool: str, answer: type[M], **arguments: Any) -> M:
    """`tool` called as `mesh`'s principal."""
    try:
        return await mesh.call(server, tool, answer, **arguments)
    except ActionFailedError as exc:
        raise DemoFailure(f"{exc}") from exc


async def set_stage(operator: MeshClient, sap: Any, officers: list[Officer], timeline: Timeline) -> None:
    policy = yaml.safe_load(POLICY.read_text())
    policy["name"] = "procurement-demo"
    policy["workflows"]["manager_approval"] = {
        "approvers": [officer.address for officer in officers],
        "required": 2,
        "timeout": "1h",
    }
    view = await _call(operator, "governance", "set_policy", PolicyView, policy=policy)
    timeline.show(
        "governance",
        f"policy {view.name} active (version {view.version[:12]}…)",
        "payments: at most 100 USDC each, 500 a day; above 50 USDC the CFO and the controller both approve",
    )
    sap.set_stock("MZ-RM-R300-01", "1710", 40, unit="PC")
    timeline.show("SAP", "stock of MZ-RM-R300-01 (road bike frames) at plant 1710: 40 PC", "reorder point: 100 PC")
    account = await _call(
        operator, "salesforce", "create_record", RecordResult, sobject="Account", fields={"Name": "Acme Cycles"}
    )
    opportunity = await _call(
        operator,
        "salesforce",
        "create_record",
        RecordResult,
        sobject="Opportunity",
        fields={
            "Name": OPPORTUNITY,
            "StageName": "Proposal/Price Quote",
            "CloseDate": "2026-12-31",
            "AccountId": account.id,
        },
    )
    timeline.show("Salesforce", f"opportunity {OPPORTUNITY!r} at Proposal/Price Quote", f"id {opportunity.id}")


async def list_suppliers(operator: MeshClient, chain_id: int, timeline: Timeline) -> dict[str, SupplierAgent]:
    """Three supplier agents and the history behind their reputations: earlier buyers paid them, then rated them,
    each rating with its payment's receipt as proof, each buyer with its stake behind its word."""
    offers = {"Budget Frames": "60", "Frame Works": "80", "Premium Frames": "95"}
    history = {"Budget Frames": 10, "Frame Works": 95, "Premium Frames": 90}  # what earlier buyers saw
    suppliers: dict[str, SupplierAgent] = {}
    for name, price in offers.items():
        identity = _identity(name, chain_id)
        binding = await _listed(operator, identity, CAPABILITY, f"{name} sells road bike frames by the lot", price)
        suppliers[name] = SupplierAgent(identity, price, binding.wallet, binding.signature)
    buyers = [_identity(f"Buyer {n}", chain_id) for n in range(1, 6)]
    payments = len(suppliers) * RATINGS_PER_BUYER
    wallets = {}
    for buyer in buyers:
        address = (await _listed(operator, buyer, "procurement", "an earlier buyer", "1")).wallet
        funds = format_usdc(parse_usdc(BUYER_STAKE) + payments * parse_usdc(BUYER_PAYMENT))
        await _call(operator, "wallet", "fund_wallet", Balance, address=address, amount=funds)
        as_buyer = operator.as_principal(buyer.principal)
        await _call(as_buyer, "reputation", "stake", Stake, agent_id=buyer.agent_id, amount=BUYER_STAKE)
        wallets[buyer.agent_id] = address
    for name, supplier in suppliers.items():
        quality = history[name]
        for n, buyer in enumerate(buyers):
            as_buyer = operator.as_principal(buyer.principal)
            for order in range(RATINGS_PER_BUYER):
                interaction = f"{supplier.identity.name}-{n}-{order}"
                paid = await _call(
                    as_buyer,
                    "wallet",
                    "execute_payment",
                    PaymentReceipt,
                    from_address=wallets[buyer.agent_id],
                    to_address=supplier.wallet,
                    amount=BUYER_PAYMENT,
                    memo=interaction,
                    idempotency_key=interaction.replace(" ", "-"),
                )
                outcomes = {"reliability": quality, "efficiency": quality, "financial_responsibility": quality}
                rating = buyer.rating(supplier.identity.agent_id, interaction, outcomes, payment=paid.model_dump())
                await _call(as_buyer, "reputation", "record_interaction", RatingReceipt, **rating)
    for name, supplier in suppliers.items():
        standing = await _call(
            operator, "reputation", "get_reputation", Reputation, agent_id=supplier.identity.agent_id
        )
        timeline.show(
            "discovery",
            f"{name} listed: {CAPABILITY} at {supplier.price} USDC per lot",
            f"reputation {standing.score:.0f} (lower bound {standing.lcb:.0f}) from "
            f"{len(buyers) * RATINGS_PER_BUYER} ratings by {len(buyers)} earlier buyers, each paid for and "
            f"each buyer staking {BUYER_STAKE} USDC",
        )
    return suppliers


async def _listed(
    operator: MeshClient, identity: AgentIdentity, capability: str, description: str, price: str
) -> WalletBinding:
    """Another agent of the mesh, acting as itself: its own wallet, bound to it, and its card in discovery.
    Returns the wallet's binding."""
    agent = operator.as_principal(identity.principal)
    wallet = await _call(
        agent, "wallet", "create_wallet", Wallet, label=identity.name, daily_limit="10000", per_transaction_limit="1000"
    )
    binding = await _call(
        agent, "wallet", "sign_binding", WalletBinding, address=wallet.address, agent_id=identity.agent_id
    )
    registration = identity.registration(
        capabilities=[capability],
        description=description,
        price=price,
        region="US",
        wallet=wallet.address,
        wallet_proof=binding.signature,
        issued_at=int(time.time()),
        endpoint=f"http://127.0.0.1/agents/{identity.name.lower().replace(' ', '-')}/mcp",
    )
    await _call(agent, "discovery", "register_agent", Registration, **registration)
    return binding


def _identity(name: str, chain_id: int) -> AgentIdentity:
    return AgentIdentity(
        agent_id=new_agent_did(),
        name=name,
        signer=Signer(Account.create()),
        owner=Account.create().address,
        chain_id=chain_id,
    )


async def officers_answer(loop: AgentLoop, officers: list[Officer], timeline: Timeline) -> None:
    """The people in the loop, each as themselves: approvals in governance, and signatures on the wallet
    proposals the agent hands them (the agent delivers them: the wallet trusts the signature)."""
    for task in loop.state.open_tasks():
        if task.status == "awaiting_approval" and task.decision_id:
            for officer in officers:
                decision = await _call(
                    officer.mesh, "governance", "get_decision", Decision, decision_id=task.decision_id
                )
                approval = decision.approval
                if decision.outcome != "pending_approval" or approval is None:
                    break
                await _call(
                    officer.mesh,
                    "governance",
                    "submit_approval",
                    Decision,
                    approval_id=approval.approval_id,
                    approver=officer.address,
                    signature=_sign(officer.account, approval.to_sign["approve"]),
                )
                timeline.show(
                    "people", f"the {officer.role} approved {task.id} in governance", "an EIP-712 ApprovalVote"
                )
        elif task.status == "awaiting_signatures" and task.proposal_id:
            proposal = await loop.mesh.read(f"wallet://proposals/{task.proposal_id}", Proposal)
            for officer in officers:
                if proposal.status != "pending":
                    break
                proposal = await _call(
                    loop.mesh,
                    "wallet",
                    "sign_proposal",
                    Proposal,
                    proposal_id=task.proposal_id,
                    signer=officer.address,
                    signature=_sign(officer.account, proposal.typed_data),
                )
                timeline.show(
                    "people",
                    f"the {officer.role} co-signed the wallet proposal (the agent delivered the signature)",
                    "the threshold is reached: the wallet pays" if proposal.status == "executed" else "",
                )


def _sign(account: LocalAccount, typed_data: dict[str, Any]) -> str:
    return "0x" + bytes(account.sign_message(encode_typed_data(full_message=typed_data)).signature).hex()


@dataclass
class Outcome:
    """What the demo ends with (the test checks it)."""

    state: AgentState
    order: Task
    purchase_order: PurchaseOrder
    balance: Balance
    supplier: str


async def _outcome(
    operator: MeshClient, loop: AgentLoop, suppliers: dict[str, SupplierAgent], timeline: Timeline
) -> Outcome:
    state = loop.state
    timeline.section("the outcome")
    done = [t for t in state.tasks if t.action == "procure" and t.status == "done"]
    if len(done) != 1:
        raise DemoFailure(f"expected one finished order, found {[(t.id, t.status, t.notes) for t in state.tasks]}")
    order = done[0]
    chosen = order.params["supplier"]["name"]
    if chosen != "Frame Works":
        raise DemoFailure(f"the agent chose {chosen}; Frame Works is the best value that passes the constraints")
    balance = await _call(loop.mesh, "wallet", "get_balance", Balance, address=state.wallet)
    price = parse_usdc(suppliers[chosen].price)
    if balance.total != 1_000_000_000 - price:
        raise DemoFailure(f"the agent's wallet holds {format_usdc(balance.total)} USDC, not 1000 minus one payment")
    po = await _call(operator, "sap", "get_purchase_order", PurchaseOrder, id=order.purchase_order)
    opportunity = next(t for t in state.tasks if t.action == "update_opportunity")
    if opportunity.status != "done":
        raise DemoFailure(f"the opportunity update is {opportunity.status}: {opportunity.notes}")
    lines = [f"agent wallet: {format_usdc(balance.available)} USDC available of {format_usdc(balance.total)}"]
    for name, supplier in suppliers.items():
        supplier_balance = await _call(operator, "wallet", "get_balance", Balance, address=supplier.wallet)
        standing = await _call(
            operator, "reputation", "get_reputation", Reputation, agent_id=supplier.identity.agent_id
        )
        lines.append(
            f"{name}: {format_usdc(supplier_balance.total)} USDC, reputation {standing.score:.1f} "
            f"(lower bound {standing.lcb:.1f})"
        )
    lines.append(
        f"{state.name}: reputation {state.reputation.get('score', 0):.1f}; {state.metrics.cycles} cycles, "
        f"{state.metrics.actions} actions, {format_usdc(state.metrics.spent)} USDC spent"
    )
    item = po.items[0]
    timeline.show(
        "done",
        f"purchase order {po.id} for {item.quantity} {item.unit} from {chosen}, paid {format_usdc(price)} USDC",
        "\n".join(lines),
    )
    return Outcome(state, order, po, balance, chosen)
