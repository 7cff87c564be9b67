"""Any sequence of wallet operations conserves money and never makes a balance negative."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import anyio
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servers.common.auth import LOCAL_OPERATOR
from servers.common.db import Database
from servers.common.errors import MeshError
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer
from servers.common.keystore import KeyRing
from servers.wallet.authorizations import payment_proposal
from servers.wallet.limits import MultiSig, SpendingRules
from servers.wallet.schema import MIGRATIONS
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from servers.wallet.store import WalletStore
from tests.conftest import TEST_SCRYPT_N, ManualClock

USDC = 1_000_000
SIGNERS = [Account.create() for _ in range(2)]
OUTSIDER = Account.create().address
OPERATOR = LOCAL_OPERATOR  # the rules of money hold whoever acts; who may act is tested in test_access

# mostly payments a wallet can make, some it cannot (over a limit, over the multi-sig threshold, over its funds)
amounts = st.one_of(st.integers(1, 120 * USDC), st.integers(1, 400 * USDC))
wallet_index = st.integers(min_value=0, max_value=2)
operation = st.one_of(
    st.tuples(st.just("fund"), wallet_index, amounts),
    st.tuples(st.just("pay"), wallet_index, wallet_index, amounts),
    st.tuples(st.just("pay_out"), wallet_index, amounts),
    st.tuples(st.just("propose"), wallet_index, wallet_index, amounts),
    st.tuples(st.just("sign"), st.integers(0, 5), st.integers(0, 1)),
    st.tuples(st.just("wait"), st.integers(1, 30 * 3600)),
    st.tuples(st.just("treasury"), wallet_index, st.sampled_from(["conservative", "balanced", "aggressive"])),
    st.tuples(st.just("limits"), wallet_index, st.integers(150 * USDC, 3000 * USDC)),
)


async def run(steps: list[tuple[object, ...]]) -> None:
    clock = ManualClock()
    with tempfile.TemporaryDirectory() as scratch:
        async with Database.open(Path(scratch) / "wallet.db", MIGRATIONS) as db:
            service = WalletService(
                WalletStore(db),
                KeyRing("property-password", scrypt_n=TEST_SCRYPT_N),
                WalletSettings(),
                ChangeFeed(),
                chain_id=31337,
                clock=clock,
            )
            rules = SpendingRules(
                daily_limit=1000 * USDC,
                per_transaction_limit=200 * USDC,
                multi_sig=MultiSig(tuple(s.address for s in SIGNERS), 2, 150 * USDC),
            )
            wallets = [
                (
                    await service.create_wallet(
                        caller=OPERATOR, label=f"w{i}", owner=None, rules=rules, treasury_strategy="balanced"
                    )
                ).address
                for i in range(3)
            ]
            for address in wallets:
                await service.fund_wallet(address, 500 * USDC)
            proposals: list[str] = []
            for step in steps:
                with contextlib.suppress(MeshError):  # a refused operation must change nothing: checked below
                    await apply(service, clock, wallets, proposals, step)
                totals = await service.totals()
                assert totals["held"] + totals["paid_out"] == totals["funded"], (step, totals)
                for address in wallets:
                    balance = await service.get_balance(address, caller=OPERATOR)
                    buckets = (balance.available, balance.staked, balance.liquidity, balance.reserved)
                    assert min(buckets) >= 0 and sum(buckets) == balance.total


async def apply(
    service: WalletService, clock: ManualClock, wallets: list[str], proposals: list[str], step: tuple[object, ...]
) -> None:
    kind = step[0]
    if kind == "fund":
        await service.fund_wallet(wallets[step[1]], step[2])  # type: ignore[index, arg-type]
    elif kind in ("pay", "pay_out"):
        payee = OUTSIDER if kind == "pay_out" else wallets[step[2]]  # type: ignore[index]
        amount = step[-1]
        await service.execute_payment(
            from_address=wallets[step[1]],  # type: ignore[index]
            to_address=payee,
            amount=amount,  # type: ignore[arg-type]
            memo="",
            idempotency_key=None,
            approval=None,
            caller=OPERATOR,
        )
    elif kind == "propose":
        proposal = await service.propose_transaction(
            address=wallets[step[1]],  # type: ignore[index]
            to_address=wallets[step[2]],  # type: ignore[index]
            amount=step[3],  # type: ignore[arg-type]
            memo="",
            approval=None,
            caller=OPERATOR,
        )
        proposals.append(proposal.proposal_id)
    elif kind == "sign" and proposals:
        proposal = await service.get_proposal(proposals[step[1] % len(proposals)], caller=OPERATOR)  # type: ignore[operator]
        message = proposal.typed_data["message"]
        signer = SIGNERS[step[2]]  # type: ignore[index]
        typed = payment_proposal(
            31337,
            proposal_id=message["proposalId"],
            wallet=message["wallet"],
            payee=message["to"],
            amount=message["amount"],
            memo=message["memo"],
            expires_at=message["expiresAt"],
        )
        await service.sign_proposal(
            proposal_id=proposal.proposal_id, signer=signer.address, signature=Signer(signer).sign(typed)
        )
    elif kind == "wait":
        clock.advance(step[1])  # type: ignore[arg-type]
    elif kind == "treasury":
        await service.optimize_treasury(wallets[step[1]], caller=OPERATOR, strategy=step[2], apply=True)  # type: ignore[index, arg-type]
    elif kind == "limits":
        await service.set_spending_limits(
            wallets[step[1]],  # type: ignore[index]
            caller=OPERATOR,
            daily_limit=step[2],  # type: ignore[arg-type]
            per_transaction_limit=None,
        )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=1, max_size=25))
def test_any_sequence_of_operations_conserves_money_and_keeps_balances_non_negative(
    steps: list[tuple[object, ...]],
) -> None:
    anyio.run(run, steps)
